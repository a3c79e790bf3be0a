"""One joint array per machine: a split file's joints as an uncompressed `.npy` beside it, memory-mapped
read-only by every process and stream that trains or tests on it (data_specs/hdf5.md, "Joint cache").

The HDF5 file stores the joints compressed in chunks, so each process would otherwise decompress
its own copy into its own memory (and one per stream, the derived streams too). The cache is the
joints `(F, M, V, C)` float32 as `engine/data` reads them (persons fitted to 2), written once by the
first process that needs it, under a lock, to a temporary name, checked for NaN and inf block by
block, and renamed whole: a process never sees a half-written cache, and a killed writer leaves
only a temporary that the next one sweeps. The operating system's page cache holds the mapped pages
once for all processes, so `torchrun --nproc-per-node 8` with four streams holds one copy.

The file's name carries a key of the split file's size, modification time and inode, so a split
file rewritten after its cache was made gets a new one (the old one is removed; a process still
mapping it keeps its pages). Where the split file's folder cannot be written (a read-only dataset
mount), the cache goes to the user's cache folder (`$XDG_CACHE_HOME/agcn/joints/`, by default
`~/.cache/agcn/joints/`), named by a hash of the split file's path. `AGCN_JOINT_CACHE=off` loads
into each process's memory instead (as before), for a file system without room.
"""

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..skeleton.persons import NUM_PERSONS, fit_persons
from .atomic import atomic_output, locked
from .splitfile import read_stream_blocks, refuse_nonfinite

CACHE_ENV = "AGCN_JOINT_CACHE"  # "off": no cache, each process loads the joints into its memory


def cache_enabled() -> bool:
    return os.environ.get(CACHE_ENV, "").lower() not in ("off", "0", "no", "false")


def _prefix(path: Path) -> Path:
    """Where a split file's caches go, before their KEY: beside it, or, where its folder cannot be
    written (a read-only dataset mount), in the user's cache folder under a hash of its path."""
    if os.access(path.parent, os.W_OK):
        return path.with_name(f".{path.name}.joints-")
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agcn" / "joints"
    home.mkdir(parents=True, exist_ok=True)
    where = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return home / f"{where}-{path.name}.joints-"


def cache_path(path: Path) -> Path:
    """`.NAME.joints-KEY.npy` beside the split file (see `_prefix`); KEY changes when the file does."""
    st = path.stat()
    key = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode()).hexdigest()[:16]
    prefix = _prefix(path)
    return prefix.with_name(f"{prefix.name}{key}.npy")


def _stale(path: Path, keep: Path) -> list[Path]:
    prefix = _prefix(path)
    return [p for p in prefix.parent.glob(f"{prefix.name}*.npy") if p != keep]


def shared_joints(path: Path, offset: np.ndarray, num_frames: np.ndarray, names: list[str],
                  shape: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """(F, M, V, C) float32, read-only, memory-mapped from the split file's joint cache (made if
    needed). `shape`: (V, C) of the layout. AgcnError, one line saying what to do, when it cannot be
    written."""
    path = Path(path)
    cache = cache_path(path)
    if not cache.exists():
        try:
            with locked(cache, wait=True, holder="agcn process", hint="wait for it to end"):
                if not cache.exists():  # another process may have made it while this one waited
                    _write(path, cache, offset, num_frames, names, shape)
        except OSError as e:
            need = int(num_frames.sum()) * NUM_PERSONS * shape[0] * shape[1] * 4
            raise AgcnError(
                f"{path}: cannot write its joint cache {cache.name} ({need / 2**20:,.0f} MiB: "
                f"{e.strerror or e}); free space there, or set {CACHE_ENV}=off to load the joints into each "
                "process's memory"
            ) from None
        for old in _stale(path, cache):
            old.unlink(missing_ok=True)
    joints = np.load(cache, mmap_mode="r")
    expected = (int(num_frames.sum()), NUM_PERSONS, *shape)
    if joints.shape != expected or joints.dtype != np.float32:
        raise AgcnError(f"{cache}: holds {joints.shape} {joints.dtype}, expected {expected} float32; delete it")
    return joints


def _write(path: Path, cache: Path, offset: np.ndarray, num_frames: np.ndarray, names: list[str],
           shape: tuple[int, int]) -> None:  # fmt: skip
    """Block by block into a plain file (written, not mapped: the writer's memory stays one block)."""
    total = int(num_frames.sum())
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (total, NUM_PERSONS, *shape)}  # fmt: skip
    with atomic_output(cache) as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for _a, _b, r0, _r1, block in read_stream_blocks(path, "joint", offset, num_frames):
            block = np.ascontiguousarray(fit_persons(block, axis=1), dtype=np.float32)  # (F, M, V, C)
            refuse_nonfinite(block, 0, r0, offset, names, path)
            _append(f, block)


def _append(f, block: np.ndarray) -> None:
    f.write(memoryview(block).cast("B"))
