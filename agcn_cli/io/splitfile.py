"""The agcn HDF5 schema (data_specs/hdf5.md): its names, the checks of a file, its readers
(`io/splitwrite` writes it).

One file holds one benchmark split. Samples keep their real length: the frames of all samples
are concatenated along the first axis of each stream dataset, `(total_frames, M, V, C)`, and
`offset[i]`, `num_frames[i]` locate sample i. Per-sample metadata are 1-D datasets of length N.
"""

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from ..errors import AgcnError
from ..skeleton.layouts import Layout, resolve_layout
from ..skeleton.normalize import WindowPad
from ..skeleton.streams import DERIVED_STREAMS, STREAMS

SPLIT_FORMAT = "agcn-skeleton"
SCHEMA_VERSION = 1
CHUNK_FRAMES = 256  # frames per chunk: a typical sample spans one or two chunks
META_INT_FIELDS = ("label", "setup", "camera", "subject", "replication", "num_persons")
REQUIRED_DATASETS = ("joint", "offset", "num_frames", "name", *META_INT_FIELDS)
REQUIRED_ATTRS = (
    "format", "schema_version", "layout", "recipe", "normalized", "num_classes", "split", "num_samples",
)  # fmt: skip
# 2s-agcn NTU files: how each sample continues past its real frames in the reference's padded
# window (skeleton.normalize.WindowPad; data_specs/hdf5.md)
PAD_PERIOD = "pad_period"  # (N, M) int32: each person's period
PAD_CENTRE = "pad_centre"  # (total_frames, 3) float32: person 0's rotated centre joint, per frame


# ---- reading ------------------------------------------------------------------------------


def check_split_file(path: Path) -> dict:
    """Validate a split file against its schema; return its attributes. Raises AgcnError.

    Every attribute and dataset agcn reads is checked here by type and range (`ATTR_RULES`,
    `_check_datasets`), so readers may index with its offsets and labels unguarded. A failure is
    one line `FILE: field: problem`.
    """
    path = Path(path)
    if not path.exists():
        raise AgcnError(f"{path}: no such file. Run: agcn preprocess RAW_DIR OUT_DIR")
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.h5"))[:4]
        found = f"; it holds {', '.join(inside)}" if inside else ""
        raise AgcnError(f"{path}: a folder, not a split file{found}. Name one file, e.g. {path / 'train.h5'}")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            if not (isinstance(attrs.get("format"), str) and attrs["format"] == SPLIT_FORMAT):
                raise AgcnError(
                    f"{path}: not an agcn skeleton file ("
                    + (f"format attribute {attrs['format']!r}" if "format" in attrs else "no 'format' attribute")
                    + "); make one with agcn preprocess"
                )
            version = attrs.get("schema_version")
            if not _is_int(version) or version != SCHEMA_VERSION:
                raise AgcnError(
                    f"{path}: schema_version: {version!r} is not supported (expected {SCHEMA_VERSION}). "
                    "Run agcn preprocess again"
                )
            missing = [a for a in REQUIRED_ATTRS if a not in attrs] + [d for d in REQUIRED_DATASETS if d not in f]
            if missing:
                raise AgcnError(
                    f"{path}: {', '.join(missing)}: missing (an incomplete file). Run agcn preprocess again"
                )
            for key, (required, ok, expected) in ATTR_RULES.items():
                if (required or key in attrs) and not ok(attrs[key]):
                    raise AgcnError(f"{path}: {key}: expected {expected}, got {_shown(attrs[key])}")
            if not attrs["normalized"]:  # every agcn writer pre-normalises (data_specs/hdf5.md)
                raise AgcnError(
                    f"{path}: joints are not pre-normalised (normalized=False); agcn reads only the pre-normalised "
                    "files its writers produce. Re-create it with agcn preprocess"
                )
            layout = split_layout(attrs, path)
            attrs.setdefault("channels", ",".join(layout.channels))  # every writer stores it; readers use it
            split_label_names(attrs, path)
            _check_datasets(f, path, attrs, layout)
    except OSError as e:
        raise AgcnError(f"{path}: not a readable HDF5 file ({hdf5_error_reason(e)})") from None
    return attrs


def hdf5_error_reason(e: OSError) -> str:
    """The cause in an h5py open error, without HDF5's internals (times, buffers, descriptors):
    `Is a directory`, `file signature not found` (not HDF5), `truncated file`."""
    if e.errno:
        return os.strerror(e.errno)
    text = str(e)
    inner = text[text.rfind("(") + 1 : text.rfind(")")] if "(" in text and text.endswith(")") else text
    if "error message = '" in inner:
        return inner.split("error message = '", 1)[1].split("'", 1)[0]
    reason = inner.split(":", 1)[0].split(",", 1)[0].strip()
    return reason if reason else " ".join(text.split())[:120]


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _plain(v):
    """An attribute as a Python value: numpy scalars unwrapped, bytes decoded."""
    v = v.item() if isinstance(v, np.generic) else v
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _shown(v) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _text(v) -> bool:
    return isinstance(v, str)


def _name(v) -> bool:
    return isinstance(v, str) and v.strip() != ""


# attribute -> (required, check, what it must be); `format` and `schema_version` are checked first
ATTR_RULES = {
    "layout": (True, _name, "a layout name"),
    "layout_spec": (False, _text, "the layout's JSON text"),
    "recipe": (True, _name, "a recipe name"),
    "normalized": (True, lambda v: isinstance(v, bool) or (_is_int(v) and v in (0, 1)), "true or false"),
    "num_classes": (True, lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "num_samples": (True, lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "split": (True, _text, "text"),
    "benchmark": (False, _text, "text"),
    "channels": (False, _text, "text"),
    "label_names": (False, _text, "a JSON list of class names"),
}


def _check_datasets(f: h5py.File, path: Path, attrs: dict, layout: Layout) -> None:
    """The datasets against the schema, the attributes and the layout: types, shapes, ranges."""
    names = _check_per_sample(f, path, int(attrs["num_samples"]))
    frames = _check_frames(f, path, layout)
    _check_ranges(f, path, names, frames, int(attrs["num_classes"]))


def _fail(path: Path, field: str, problem: str) -> None:
    raise AgcnError(f"{path}: {field}: {problem}")


def _check_per_sample(f: h5py.File, path: Path, n: int) -> np.ndarray:
    """The per-sample datasets: one entry a sample, integers (names strings, non-empty, unique); the names."""
    for key in REQUIRED_DATASETS:
        d = f[key]
        if not isinstance(d, h5py.Dataset):
            _fail(path, key, "is a group, not a dataset")
        if key == "joint":
            continue
        if d.ndim != 1 or len(d) != n:
            _fail(path, key, f"shape {d.shape}, expected ({n},): one entry per sample (num_samples {n})")
        if key == "name":
            if h5py.check_string_dtype(d.dtype) is None:
                _fail(path, key, f"holds {d.dtype}, expected strings")
        elif d.dtype.kind not in "iu":
            _fail(path, key, f"holds {d.dtype}, expected integers")
    names = f["name"].asstr()[:]
    empty = [i for i, s in enumerate(names) if not s.strip()]
    if empty:
        _fail(path, "name", f"sample {empty[0]} has an empty name")
    if len(set(names)) != len(names):  # scores, --sample and fusion key samples by name
        seen: set[str] = set()
        twice = next(s for s in names if s in seen or seen.add(s))
        _fail(path, "name", f"sample {twice} appears more than once")
    return names


def _check_frames(f: h5py.File, path: Path, layout: Layout) -> int:
    """`joint` (F, M, V, C) float frames of the layout, stored streams of its shape; F."""
    joint = f["joint"]
    v, c = layout.num_joints, len(layout.channels)
    if joint.ndim != 4 or joint.dtype.kind != "f":
        _fail(path, "joint", f"{joint.dtype} {joint.shape}, expected float frames (F, M, V, C)")
    frames, persons, joints, channels = joint.shape
    if persons < 1:
        _fail(path, "joint", "0 persons per frame")
    if joints != v:
        _fail(path, "joint", f"{joints} joints per frame, layout {layout.name!r} has {v}")
    if channels != c:
        _fail(
            path,
            "joint",
            f"{channels} channels per joint, layout {layout.name!r} has {c} ({','.join(layout.channels)})",
        )
    for stream in DERIVED_STREAMS:
        if stream in f and (not isinstance(f[stream], h5py.Dataset) or f[stream].shape != joint.shape):
            _fail(path, stream, f"shape {getattr(f[stream], 'shape', None)}, expected that of joint {joint.shape}")
    return frames


def _check_ranges(f: h5py.File, path: Path, names: np.ndarray, frames: int, k: int) -> None:
    """Per-sample values in range, and the samples stored back to back filling `joint`."""
    # (dataset, lowest, highest) per sample, compared in the stored dtype (no wrap-around of uint64)
    for key, low, high in (
        ("num_frames", 1, frames),
        ("offset", 0, max(frames - 1, 0)),
        ("label", 0, k - 1),
        ("num_persons", 0, np.iinfo(np.int32).max),
    ):
        values = f[key][:]
        bad = np.flatnonzero((values < low) | (values > high))
        if len(bad):
            i = bad[0]
            why = (
                f" (num_classes {k})" if key == "label" else f" (joint holds {frames} frames)" if high == frames else ""
            )
            _fail(path, key, f"sample {names[i]} has {key} {values[i]}, expected {low}..{high}{why}")
    offset, lengths = f["offset"][:].astype(np.int64), f["num_frames"][:].astype(np.int64)
    bad = np.flatnonzero(offset != np.cumsum(lengths) - lengths)
    if len(bad):
        i = bad[0]
        _fail(
            path,
            "offset",
            f"sample {names[i]} starts at frame {offset[i]}, expected {np.sum(lengths[:i])} "
            "(samples are stored back to back). Run agcn preprocess again",
        )
    total = int(lengths.sum())
    if frames != total:
        _fail(path, "joint", f"{frames} frames, but num_frames adds up to {total} (offsets past the end)")


def split_layout(attrs: dict, path: Path | str) -> Layout:
    """The skeleton layout of a split file: its stored `layout_spec`, else (files written before
    layouts were stored) the built-in layout named by `layout`."""
    try:
        return resolve_layout(
            str(attrs["layout"]), str(attrs.get("layout_spec", "") or ""), source=f"{path}: layout_spec"
        )
    except AgcnError as e:  # a built-in name's error does not name the file
        message = str(e)
        raise AgcnError(message if message.startswith(str(path)) else f"{path}: layout: {message}") from None


def split_label_names(attrs: dict, path: Path | str) -> tuple[str, ...]:
    """The class names of a split file's `label_names` (JSON list, from --label-map); () when absent."""
    text = attrs.get("label_names")
    if text is None or text == "":
        return ()
    try:
        names = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise AgcnError(f"{path}: label_names: not a JSON list of class names")
    return tuple(names)


# ---- readers of a file `check_split_file` accepted -------------------------------------------


def read_sample(f: h5py.File, index: int, stream: str = "joint") -> np.ndarray:
    """One sample as (C, T, V, M) float32 from an open split file (checked by `check_split_file`)."""
    if not 0 <= index < len(f["offset"]):
        raise AgcnError(f"{f.filename}: no sample {index} (the file has {len(f['offset'])})")
    start = int(f["offset"][index])
    length = int(f["num_frames"][index])
    frames = f[stream][start : start + length]  # (T, M, V, C)
    return np.ascontiguousarray(frames.transpose(3, 0, 2, 1))


def read_samples(
    path: Path, indices: Sequence[int], stream: str = "joint"
) -> Iterator[tuple[np.ndarray, int, WindowPad | None]]:
    """Samples `indices` of a split file, in order, the file open while they are read: each one's
    `stream` (C, T, V, M) float32, its label and its window facts (None when the file has none)."""
    with h5py.File(path, "r") as f:
        labels = f["label"]
        for i in indices:
            yield read_sample(f, i, stream), int(labels[i]), _read_sample_pad(f, i)


def _read_sample_pad(f: h5py.File, index: int) -> WindowPad | None:
    """One sample's window facts from an open split file (None when the file has none)."""
    if PAD_PERIOD not in f or PAD_CENTRE not in f:
        return None
    start, length = int(f["offset"][index]), int(f["num_frames"][index])
    return WindowPad(f[PAD_PERIOD][index].astype(np.int64), f[PAD_CENTRE][start : start + length].astype(np.float32))


def read_window_pad(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The window facts of a 2s-agcn NTU file, `(periods (N, M) int64, centre (total_frames, 3)
    float32)`, or None for a file without them (other recipes, or written before 2026-12-01)."""
    with h5py.File(path, "r") as f:
        if PAD_PERIOD not in f or PAD_CENTRE not in f:
            return None
        periods, centre = f[PAD_PERIOD], f[PAD_CENTRE]
        n, total = len(f["offset"]), int(f["num_frames"][:].sum()) if len(f["offset"]) else 0
        if periods.shape[0] != n or periods.ndim != 2 or centre.shape != (total, 3):
            raise AgcnError(
                f"{path}: {PAD_PERIOD} {periods.shape} / {PAD_CENTRE} {centre.shape} do not fit {n} samples of "
                f"{total} frames in all (expected (N, M) and ({total}, 3))"
            )
        return periods[:].astype(np.int64), centre[:].astype(np.float32)


def stored_streams(path: Path) -> list[str]:
    """The streams a split file stores (`joint`, and those `agcn streams` added), in STREAMS order."""
    with h5py.File(path, "r") as f:
        return [s for s in STREAMS if s in f]


def refuse_nonfinite(frames: np.ndarray, frame_axis: int, first_row: int, offset: np.ndarray, names: Sequence[str],
                     path: Path) -> None:  # fmt: skip
    """NaN or inf in frames would train on garbage (or stop at a non-finite loss): AgcnError naming
    the first sample with one. `frames`: the split's rows `first_row`, ... along `frame_axis`."""
    # a frame is bad iff its float64 sum is non-finite (finite float32 values cannot overflow it);
    # no full-size boolean copy of the frames
    axes = tuple(a for a in range(frames.ndim) if a != frame_axis % frames.ndim)
    bad = ~np.isfinite(frames.sum(axis=axes, dtype=np.float64))
    if bad.any():
        sample = int(np.searchsorted(offset, first_row + int(np.argmax(bad)), side="right")) - 1
        raise AgcnError(f"{path}: sample {names[sample]!r} holds NaN or infinite values; re-create the split file")


def read_meta(path: Path, keys: Sequence[str] | None = None, *, check: bool = True) -> dict[str, np.ndarray]:
    """Per-sample metadata of a split file as arrays (names as str): `keys` of offset, num_frames,
    name and META_INT_FIELDS (None: all). The file is checked first unless `check` is False (for a
    caller that checked it already: once per command)."""
    if check:
        check_split_file(path)
    keys = ("offset", "num_frames", *META_INT_FIELDS, "name") if keys is None else keys
    with h5py.File(path, "r") as f:
        return {key: np.asarray(f[key].asstr()[:], dtype=object) if key == "name" else f[key][:] for key in keys}


def list_samples(path: Path, *, check: bool = True) -> list[dict]:
    """Each sample of a split file, in file order: index, name, label, frames and persons (the
    file checked first unless `check` is False): what to pass to `agcn show --sample` or `agcn
    predict --sample`."""
    meta = read_meta(path, check=check)
    return [
        {"index": i, "name": str(name), "label": int(label), "frames": int(frames), "persons": int(persons)}
        for i, (name, label, frames, persons) in enumerate(
            zip(meta["name"], meta["label"], meta["num_frames"], meta["num_persons"], strict=True)
        )
    ]


def summarize(path: Path) -> dict:
    """A JSON-friendly summary of a split file: attributes, sizes, classes, streams."""
    attrs = check_split_file(path)
    meta = read_meta(path, check=False)
    streams = stored_streams(path)
    frames = meta["num_frames"]
    labels = meta["label"]
    summary = {
        k: attrs[k] for k in ("benchmark", "split", "layout", "recipe", "normalized", "num_classes") if k in attrs
    }
    summary.update(
        samples=int(len(frames)),
        frames_total=int(frames.sum()),
        frames_min=int(frames.min()) if len(frames) else 0,
        frames_mean=round(float(frames.mean()), 1) if len(frames) else 0.0,
        frames_max=int(frames.max()) if len(frames) else 0,
        classes_present=int(len(np.unique(labels))),
        two_person_samples=int((meta["num_persons"] >= 2).sum()),
        streams=", ".join(streams),
        schema_version=attrs["schema_version"],
        **({"label_names": list(split_label_names(attrs, path))} if attrs.get("label_names") else {}),
        size_mb=round(Path(path).stat().st_size / 2**20, 2),
    )
    return summary


def read_blocks(
    dataset: h5py.Dataset, offset: np.ndarray, num_frames: np.ndarray, source: str = "split file"
) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """`(a, b, r0, r1, frames)` per block of whole samples: samples a..b-1 are rows r0:r1 of
    `dataset`, read as `frames` (r1 - r0, M, V, C). The one block walk of a stream's readers."""
    for a, b in sample_blocks(offset, num_frames, source=source):
        r0, r1 = int(offset[a]), int(offset[b - 1] + num_frames[b - 1])
        yield a, b, r0, r1, dataset[r0:r1]


def read_stream_blocks(
    path: Path, stream: str, offset: np.ndarray, num_frames: np.ndarray
) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """`read_blocks` of the stored `stream` of a split file, the file open for the walk."""
    with h5py.File(path, "r") as f:
        yield from read_blocks(f[stream], offset, num_frames, str(path))


def sample_blocks(
    offset: np.ndarray, num_frames: np.ndarray, max_frames: int = 64 * CHUNK_FRAMES, source: str = "split file"
) -> list[tuple[int, int]]:
    """Consecutive sample ranges [a, b) of at most `max_frames` frames (at least one sample each).

    Reading a stream block by block keeps memory bounded; a block's rows are
    `offset[a] : offset[b - 1] + num_frames[b - 1]`. Needs the samples stored back to back, as
    `SplitWriter` writes them.
    """
    lengths = np.asarray(num_frames, dtype=np.int64)
    ends = np.cumsum(lengths)
    if not np.array_equal(np.asarray(offset, dtype=np.int64), ends - lengths):
        raise AgcnError(
            f"{source}: samples are not stored back to back (offset != cumulative num_frames). "
            "Run agcn preprocess again"
        )
    blocks, a, n = [], 0, len(lengths)
    while a < n:
        start = ends[a] - lengths[a]
        b = max(a + 1, int(np.searchsorted(ends, start + max_frames, side="right")))
        blocks.append((a, b))
        a = b
    return blocks
