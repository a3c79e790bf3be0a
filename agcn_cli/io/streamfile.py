"""Materialised streams: bone and motion stored next to `joint` in a split file (`agcn streams`)."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import AgcnError
from ..skeleton.streams import DERIVED_STREAMS, compute_stream_frames
from . import atomic, splitfile, splitwrite


def materialize_streams(
    path: str | Path, streams: list[str], force: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Store derived streams as datasets next to `joint` in a split file, atomically.

    Each stream is derived from each sample's real frames before any temporal sampling (as
    MMAction2's GenSkeFeat), block by block so memory stays bounded, into datasets of the same
    shape, chunking and compression as `joint`. The file is rebuilt under a temporary sibling
    name (its other datasets copied chunk by chunk) and renamed over the original at the end,
    so an interrupted run leaves the original untouched. A stream already in the file is left
    alone and reported as already present, unless `force` rewrites it. The whole read and
    rewrite holds the file's lock (`atomic.locked`): a second `agcn streams` on the same file
    waits, then reads the file the first one wrote, so neither loses the other's stream.

    `progress(n)` is called as n more samples are done. Returns `{"path", "written",
    "already_present", "samples", "frames", "seconds"}`.
    """
    t0 = time.perf_counter()
    path = Path(path)
    wanted = list(dict.fromkeys(streams))
    unknown = [s for s in wanted if s not in DERIVED_STREAMS]
    if unknown or not wanted:
        found = repr(unknown[0]) if unknown else "no stream"
        raise AgcnError(f"cannot materialise {found}; choose from: {', '.join(DERIVED_STREAMS)}")
    splitfile.check_split_file(path)  # a bad file is refused before waiting for its lock
    with atomic.locked(path, wait=True):
        report = _materialize(path, wanted, force, progress)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report


def _materialize(path: Path, wanted: list[str], force: bool, progress: Callable[[int], None] | None) -> dict[str, Any]:
    """`materialize_streams` under the lock: read the file as it is now, rebuild it with `wanted`."""
    attrs = splitfile.check_split_file(path)
    layout = splitfile.split_layout(attrs, path)
    stored = splitfile.stored_streams(path)
    present = [s for s in wanted if s in stored]
    meta = splitfile.read_meta(path, ("offset", "num_frames"), check=False)
    offset, lengths = meta["offset"], meta["num_frames"].astype(np.int64)
    todo = wanted if force else [s for s in wanted if s not in present]
    report = {
        "path": str(path),
        "written": todo,
        "already_present": [] if force else present,
        "samples": int(len(lengths)),
        "frames": int(lengths.sum()),
    }
    if todo:
        with atomic.atomic_output(path) as tmp, h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for key in src:
                if key not in todo:
                    src.copy(src[key], dst, name=key)
            joint = src["joint"]
            outputs = {s: splitwrite.create_stream(dst, s, joint.shape[1:]) for s in todo}
            for out in outputs.values():
                out.resize(joint.shape[0], axis=0)
            for a, b, r0, r1, block in splitfile.read_blocks(joint, offset, lengths, str(path)):  # (F, M, V, C)
                for s, out in outputs.items():
                    out[r0:r1] = compute_stream_frames(block, s, layout, lengths[a:b])
                if progress:
                    progress(b - a)
    return report
