"""Bone and motion streams, vectorised, for numpy arrays and torch tensors alike.

Every function takes one sample `(C, T, V, M)` or a batch `(N, C, T, V, M)` and returns the
same shape and dtype, as the same kind of array (torch tensors stay on their device, so
training can derive streams on the fly).

- bone: `bone[v] = x[v] - x[parent(v)]` over the layout's bone table; a joint that is its
  own parent (NTU's spine-shoulder, COCO's nose) has a zero bone.
- motion: `m[t] = x[t + 1] - x[t]`, the last real frame zero.

For layouts whose last channel is a detection score (COCO-17: x, y, score) the score is
not differenced: a bone's score is the mean of its two joints' scores and a motion's score
the mean of its two frames' scores, as in MMAction2's `JointToBone` / `ToMotion` (which
apply that rule for their 2D layouts `coco` and `openpose` when C == 3, never for
`nturgb+d`). With that rule bone and motion still commute, so bone-motion is both the
motion of the bone and the bone of the motion.

`num_frames` (an int, or one per sample) marks the real frames: frames at or after it are
padding and come out zero in every stream, and the motion of the last real frame is zero
rather than a jump into the padding. MMAction2 derives streams on the unpadded sequence
before sampling frames; computing them on a padded array with the true length gives the
same values on the real frames.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AgcnError
from .layouts import Layout

STREAMS = ("joint", "bone", "joint-motion", "bone-motion")

# Axes counted from the end, valid for (C, T, V, M) and (N, C, T, V, M).
_C, _T, _V = -4, -3, -2


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")  # never import torch here just to check
    return torch is not None and isinstance(x, torch.Tensor)


def _prepare(x: Any, layout: Layout) -> tuple[Any, bool]:
    """Validate the shape against the layout; return float data and whether it has a score channel."""
    if not _is_torch(x):
        x = np.asarray(x)
    if x.ndim not in (4, 5):
        raise AgcnError(f"expected skeleton data of shape (C, T, V, M) or (N, C, T, V, M), got {tuple(x.shape)}")
    c, v = x.shape[_C], x.shape[_V]
    if v != layout.num_joints:
        raise AgcnError(f"data has {v} joints but layout {layout.name} has {layout.num_joints}")
    if c != len(layout.channels):
        raise AgcnError(
            f"data has {c} channels but layout {layout.name} has {len(layout.channels)} ({', '.join(layout.channels)})"
        )
    if _is_torch(x):
        if not x.is_floating_point():
            x = x.float()
    elif not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return x, layout.channels[-1] == "score"


def _frame_mask(x: Any, num_frames: Any, shift: int = 0) -> Any:
    """Boolean mask broadcastable to x: True where t + shift < num_frames (per sample)."""
    t = x.shape[_T]
    if _is_torch(x):
        import torch

        steps = torch.arange(t, device=x.device) + shift
        nf = torch.as_tensor(num_frames, device=x.device).reshape(-1)
    else:
        steps = np.arange(t) + shift
        nf = np.asarray(num_frames).reshape(-1)
    if x.ndim == 5:
        if nf.shape[0] not in (1, x.shape[0]):
            raise AgcnError(f"num_frames has {nf.shape[0]} entries for a batch of {x.shape[0]} samples")
        return (steps[None, :] < nf[:, None])[:, None, :, None, None]  # (N, 1, T, 1, 1)
    if nf.shape[0] != 1:
        raise AgcnError(f"num_frames has {nf.shape[0]} entries for a single sample")
    return (steps < nf)[None, :, None, None]  # (1, T, 1, 1)


def _zeros_like(x: Any) -> Any:
    if _is_torch(x):
        import torch

        return torch.zeros_like(x)
    return np.zeros_like(x)


def _where(mask: Any, x: Any) -> Any:
    if _is_torch(x):
        import torch

        return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return np.where(mask, x, np.zeros((), dtype=x.dtype))


def _bone(x: Any, layout: Layout, has_score: bool) -> Any:
    parents = layout.bone_parents()
    if _is_torch(x):
        import torch

        parents = torch.as_tensor(parents, device=x.device)
    parent = x[..., parents, :]
    bone = x - parent
    if has_score:
        bone[..., -1, :, :, :] = (x[..., -1, :, :, :] + parent[..., -1, :, :, :]) / 2
    return bone


def _motion(x: Any, has_score: bool) -> Any:
    motion = _zeros_like(x)
    motion[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
    if has_score:
        motion[..., -1, :-1, :, :] = (x[..., -1, 1:, :, :] + x[..., -1, :-1, :, :]) / 2
    return motion


def bone(joints: Any, layout: Layout, num_frames: Any = None) -> Any:
    """Bone stream of joints (C, T, V, M) or (N, C, T, V, M); same shape and dtype."""
    x, has_score = _prepare(joints, layout)
    out = _bone(x, layout, has_score)
    return out if num_frames is None else _where(_frame_mask(x, num_frames), out)


def motion(data: Any, layout: Layout, num_frames: Any = None) -> Any:
    """Temporal difference x[t+1] - x[t] of any stream, last real frame zero; same shape and dtype."""
    x, has_score = _prepare(data, layout)
    out = _motion(x, has_score)
    if num_frames is None:
        return out
    return _where(_frame_mask(x, num_frames, shift=1), out)  # t + 1 must be a real frame


def compute_stream(joints: Any, stream: str, layout: Layout, num_frames: Any = None) -> Any:
    """Derive `stream` (one of STREAMS) from joints (C, T, V, M) or (N, C, T, V, M).

    `num_frames`: real length per sample (int, or (N,) array/tensor); frames at or after it
    are zero in the result. Without it every frame counts as real and "joint" returns the
    input itself.
    """
    if stream not in STREAMS:
        raise AgcnError(f"unknown stream {stream!r}; choose one of: {', '.join(STREAMS)}")
    if stream == "joint":
        if num_frames is None:
            return joints
        x, _ = _prepare(joints, layout)
        return _where(_frame_mask(x, num_frames), x)
    if stream == "bone":
        return bone(joints, layout, num_frames)
    if stream == "joint-motion":
        return motion(joints, layout, num_frames)
    return motion(bone(joints, layout, num_frames), layout, num_frames)


# ---- frame-concatenated samples and materialised streams ---------------------------------

DERIVED_STREAMS = STREAMS[1:]  # what `agcn streams` can store next to `joint`


def compute_stream_frames(frames: np.ndarray, stream: str, layout: Layout, num_frames: Any) -> np.ndarray:
    """`stream` of samples stored back to back, (F, M, V, C) as in a split file; same shape.

    Equals `compute_stream` on each sample's real frames `(C, T, V, M)` separately, in one
    vectorised call: bone works frame by frame, and the motion across the boundary between two
    samples is replaced by the zero of each sample's last frame. `num_frames`: (N,) lengths,
    summing to F.
    """
    lengths = np.asarray(num_frames, dtype=np.int64).reshape(-1)
    if int(lengths.sum()) != frames.shape[0]:
        raise AgcnError(f"num_frames sum to {int(lengths.sum())} but the block holds {frames.shape[0]} frames")
    x = np.asarray(frames).transpose(3, 0, 2, 1)  # (C, F, V, M) view
    out = compute_stream(x, stream, layout)
    if stream.endswith("motion"):
        out[:, np.cumsum(lengths)[lengths > 0] - 1] = 0  # each sample's last frame
    return np.ascontiguousarray(out.transpose(1, 3, 2, 0))  # (F, M, V, C)


def materialize_streams(
    path: str | Path, streams: list[str], force: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Store derived streams as datasets next to `joint` in a split file, atomically.

    Each stream is derived from each sample's real frames before any temporal sampling (as
    MMAction2's GenSkeFeat), block by block so memory stays bounded, into datasets of the same
    shape, chunking and compression as `joint`. The file is rebuilt under a temporary sibling
    name (its other datasets copied chunk by chunk) and renamed over the original at the end,
    so an interrupted run leaves the original untouched. A stream already in the file is left
    alone and reported as already present, unless `force` rewrites it.

    `progress(n)` is called as n more samples are done. Returns `{"path", "written",
    "already_present", "samples", "frames", "seconds"}`.
    """
    import time

    import h5py  # here, not at the top: streams stays light for torch-only users

    from . import h5io
    from .layouts import get_layout

    t0 = time.perf_counter()
    path = Path(path)
    wanted = list(dict.fromkeys(streams))
    unknown = [s for s in wanted if s not in DERIVED_STREAMS]
    if unknown or not wanted:
        found = repr(unknown[0]) if unknown else "no stream"
        raise AgcnError(f"cannot materialise {found}; choose from: {', '.join(DERIVED_STREAMS)}")
    attrs = h5io.check_split_file(path)
    if not attrs["normalized"]:
        raise AgcnError(
            f"{path}: joints are not pre-normalised (normalized=False), and streams must be derived after "
            "normalisation; training derives them on the fly for this file, or re-create it with agcn preprocess"
        )
    layout = get_layout(attrs["layout"])
    with h5py.File(path, "r") as f:
        present = [s for s in wanted if s in f]
        offset, lengths = f["offset"][:], f["num_frames"][:].astype(np.int64)
    todo = wanted if force else [s for s in wanted if s not in present]
    report = {
        "path": str(path),
        "written": todo,
        "already_present": [] if force else present,
        "samples": int(len(lengths)),
        "frames": int(lengths.sum()),
    }
    if todo:
        blocks = h5io.sample_blocks(offset, lengths, source=str(path))
        with h5io.atomic_output(path) as tmp, h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for key in src:
                if key not in todo:
                    src.copy(src[key], dst, name=key)
            joint = src["joint"]
            outputs = {s: h5io.create_stream(dst, s, joint.shape[1:]) for s in todo}
            for out in outputs.values():
                out.resize(joint.shape[0], axis=0)
            for a, b in blocks:
                r0, r1 = int(offset[a]), int(offset[b - 1] + lengths[b - 1])
                block = joint[r0:r1]  # (F, M, V, C)
                for s, out in outputs.items():
                    out[r0:r1] = compute_stream_frames(block, s, layout, lengths[a:b])
                if progress:
                    progress(b - a)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report
