"""Writing split files (data_specs/hdf5.md): samples streamed into a new file, which appears
under its name, complete, on `close()`. The schema itself (names, checks, readers) is
`io/splitfile`.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .. import __version__
from ..errors import AgcnError
from .atomic import temp_path
from .splitfile import CHUNK_FRAMES, META_INT_FIELDS, SCHEMA_VERSION, SPLIT_FORMAT


@dataclass
class SampleMeta:
    name: str
    label: int  # 0-based class index
    setup: int = -1  # -1 where the source has no such field
    camera: int = -1
    subject: int = -1
    replication: int = -1


class SplitWriter:
    """Streams samples into a new split file; the file appears under its name on `close()`.

    Frames are buffered and appended in blocks, so memory stays bounded whatever the number
    of samples. Use as a context manager: an exception discards the temporary file.
    """

    def __init__(self, path: Path, attrs: dict, num_persons: int, num_joints: int, num_channels: int):
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        self.shape = (num_persons, num_joints, num_channels)
        self.file = h5py.File(self.tmp, "w")
        header = {"format": SPLIT_FORMAT, "schema_version": SCHEMA_VERSION, "created_by": f"agcn {__version__}"}
        for key, value in {**header, **attrs}.items():
            self.file.attrs[key] = value
        self.frames = create_stream(self.file, "joint", self.shape)
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.total = 0
        self.meta: list[SampleMeta] = []
        self.lengths: list[int] = []
        self.persons: list[int] = []
        self.extras: dict[str, list[np.ndarray]] = {}  # per-sample values of optional datasets, e.g. img_shape
        self.frame_extras: dict[str, list[np.ndarray]] = {}  # per-frame values, buffered until a flush
        self.frame_datasets: dict[str, h5py.Dataset] = {}

    def append(
        self,
        sample: np.ndarray,
        meta: SampleMeta,
        num_persons: int,
        extras: dict[str, np.ndarray] | None = None,
        frame_extras: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Add one person-major sample (M, T, V, C), with its values of optional per-sample datasets
        and of optional per-frame datasets ((T, ...) each, rows aligned with `joint`)."""
        frames = np.ascontiguousarray(sample.transpose(1, 0, 2, 3), dtype=np.float32)  # (T, M, V, C)
        if frames.shape[1:] != self.shape:
            raise AgcnError(f"{meta.name}: sample shape {sample.shape} does not fit {self.path} (M, V, C)={self.shape}")
        self.buffer.append(frames)
        self.buffered += len(frames)
        self.meta.append(meta)
        self.lengths.append(len(frames))
        self.persons.append(num_persons)
        for key, value in (extras or {}).items():
            self.extras.setdefault(key, []).append(value)
        for key, value in (frame_extras or {}).items():
            if len(value) != len(frames):
                raise AgcnError(f"{meta.name}: {key} has {len(value)} rows for {len(frames)} frames")
            self.frame_extras.setdefault(key, []).append(np.asarray(value))
        if self.buffered >= 16 * CHUNK_FRAMES:
            self._flush()

    def _flush(self, final: bool = False) -> None:
        """Write the buffered frames; before the end, only whole chunks, so that no compressed
        chunk is ever read back, completed and compressed again (BENCHMARKS.md, "Preprocessing")."""
        for key, values in self.frame_extras.items():  # small: appended whole at every flush
            rows = np.concatenate(values)
            out = self.frame_datasets.get(key)
            if out is None:
                out = self.frame_datasets[key] = self.file.create_dataset(
                    key, shape=(0, *rows.shape[1:]), maxshape=(None, *rows.shape[1:]), dtype=rows.dtype,
                    chunks=(16 * CHUNK_FRAMES, *rows.shape[1:]), shuffle=True, compression="lzf",
                )  # fmt: skip
            out.resize(len(out) + len(rows), axis=0)
            out[len(out) - len(rows) :] = rows
            values.clear()
        if not self.buffer:
            return
        block = np.concatenate(self.buffer)
        n = len(block) if final else len(block) - (self.total + len(block)) % CHUNK_FRAMES
        if n > 0:
            self.frames.resize(self.total + n, axis=0)
            self.frames[self.total :] = block[:n]
            self.total += n
        rest = block[max(n, 0) :]
        self.buffer, self.buffered = ([rest] if len(rest) else []), len(rest)

    def close(self) -> None:
        f = self.file
        for key, values in self.extras.items():
            if len(values) != len(self.meta):
                raise AgcnError(f"{self.path}: {key} given for {len(values)} of {len(self.meta)} samples")
            f.create_dataset(key, data=np.stack(values))
        self._flush(final=True)
        lengths = np.asarray(self.lengths, dtype=np.int64)
        for key, out in self.frame_datasets.items():
            if len(out) != self.total:
                raise AgcnError(f"{self.path}: {key} given for {len(out)} of {self.total} frames")
        f.create_dataset("num_frames", data=lengths.astype(np.int32))
        f.create_dataset("offset", data=np.cumsum(lengths) - lengths)
        f.create_dataset("name", data=[m.name for m in self.meta], dtype=h5py.string_dtype())
        for field in META_INT_FIELDS:
            values = self.persons if field == "num_persons" else [getattr(m, field) for m in self.meta]
            f.create_dataset(field, data=np.asarray(values, dtype=np.int32))
        f.attrs["num_samples"] = len(self.meta)
        f.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.file.id.valid:
            self.file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "SplitWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:  # a check of close(): no half-written file either
                self.discard()
                raise
        else:
            self.discard()


def create_stream(f: h5py.File, name: str, shape: tuple[int, int, int], data: np.ndarray | None = None):
    """A frame-concatenated stream dataset, chunked by frames, shuffled and LZF-compressed.

    LZF (built into h5py) writes and reads faster than gzip at a similar ratio on skeletons
    (BENCHMARKS.md, "Format choices"); `h5repack -f GZIP=4` converts for other readers.
    """
    rows = 0 if data is None else len(data)
    chunk_rows = max(1, min(CHUNK_FRAMES, rows)) if data is not None else CHUNK_FRAMES
    return f.create_dataset(
        name,
        shape=(rows, *shape),
        maxshape=(None, *shape),
        dtype=np.float32,
        chunks=(chunk_rows, *shape),
        shuffle=True,
        compression="lzf",
        data=data,
    )
