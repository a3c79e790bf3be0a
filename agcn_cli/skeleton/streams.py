"""Bone and motion streams, vectorised numpy.

Every function takes one sample `(C, T, V, M)` or a batch `(N, C, T, V, M)` and returns the
same shape and dtype.

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

Motion has two definitions where a sample is padded to a window:
- of the real frames (the above, MMAction2's): derived on the sequence, then padded;
- of the padded window (`window_motion`, lshiwjx/2s-AGCN's `gen_motion_data`, which
  differences its 300-frame arrays): the padding is differenced too, so the last real frame
  carries the jump into the padding and only the window's last frame is zero. Bone-motion
  there is the motion of the bone of the padded joints (`gen_bone_data` runs first).
"""

from enum import StrEnum
from typing import Any

import numpy as np

from ..errors import AgcnError
from .layouts import Layout

STREAMS = ("joint", "bone", "joint-motion", "bone-motion")
# the command line's type for a stream (Typer checks and lists the values); files keep the plain strings
Stream = StrEnum("Stream", {s: s for s in STREAMS})

# Axes counted from the end, valid for (C, T, V, M) and (N, C, T, V, M).
_C, _T, _V = -4, -3, -2


def _prepare(x: Any, layout: Layout) -> tuple[np.ndarray, bool]:
    """Validate the shape against the layout; return float data and whether it has a score channel."""
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
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return x, layout.channels[-1] == "score"


def _frame_mask(x: np.ndarray, num_frames: Any, shift: int = 0) -> np.ndarray:
    """Boolean mask broadcastable to x: True where t + shift < num_frames (per sample)."""
    steps = np.arange(x.shape[_T]) + shift
    nf = np.asarray(num_frames).reshape(-1)
    if x.ndim == 5:
        if nf.shape[0] not in (1, x.shape[0]):
            raise AgcnError(f"num_frames has {nf.shape[0]} entries for a batch of {x.shape[0]} samples")
        return (steps[None, :] < nf[:, None])[:, None, :, None, None]  # (N, 1, T, 1, 1)
    if nf.shape[0] != 1:
        raise AgcnError(f"num_frames has {nf.shape[0]} entries for a single sample")
    return (steps < nf)[None, :, None, None]  # (1, T, 1, 1)


def _where(mask: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.where(mask, x, np.zeros((), dtype=x.dtype))


def _bone(x: np.ndarray, layout: Layout, has_score: bool) -> np.ndarray:
    parent = np.take(x, layout.bone_parents(), axis=_V)  # the same copy as x[..., parents, :], ~6x faster
    bone = x - parent
    if has_score:
        bone[..., -1, :, :, :] = (x[..., -1, :, :, :] + parent[..., -1, :, :, :]) / 2
    return bone


def _motion(x: np.ndarray, has_score: bool) -> np.ndarray:
    motion = np.zeros_like(x)
    motion[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
    if has_score:
        motion[..., -1, :-1, :, :] = (x[..., -1, 1:, :, :] + x[..., -1, :-1, :, :]) / 2
    return motion


def bone(joints: Any, layout: Layout, num_frames: Any = None) -> np.ndarray:
    """Bone stream of joints (C, T, V, M) or (N, C, T, V, M); same shape and dtype."""
    x, has_score = _prepare(joints, layout)
    out = _bone(x, layout, has_score)
    return out if num_frames is None else _where(_frame_mask(x, num_frames), out)


def motion(data: Any, layout: Layout, num_frames: Any = None) -> np.ndarray:
    """Temporal difference x[t+1] - x[t] of any stream, last real frame zero; same shape and dtype."""
    x, has_score = _prepare(data, layout)
    out = _motion(x, has_score)
    if num_frames is None:
        return out
    return _where(_frame_mask(x, num_frames, shift=1), out)  # t + 1 must be a real frame


def compute_stream(joints: Any, stream: str, layout: Layout, num_frames: Any = None) -> np.ndarray:
    """Derive `stream` (one of STREAMS) from joints (C, T, V, M) or (N, C, T, V, M).

    `num_frames`: real length per sample (int, or (N,) array); frames at or after it
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


def window_motion(joints: Any, stream: str, layout: Layout, stop: Any = None) -> np.ndarray:
    """`stream` (joint-motion or bone-motion) of padded-window joints (C, T, V, M) or (N, C, T, V,
    M), as lshiwjx/2s-AGCN derives it from its padded 300-frame arrays: bone frame by frame, then
    m[t] = x[t + 1] - x[t] across the padding, the window's last frame zero; same shape and dtype.

    `joints` are consecutive frames of the window, padding included; `stop` (int, or one per
    sample) counts those inside it, from the first: the motion of frame stop - 1 (the window's
    last) and of any later frame is zero. None: the frames end with the window's last.
    """
    if stream not in ("joint-motion", "bone-motion"):
        raise AgcnError(f"window_motion derives joint-motion or bone-motion, not {stream!r}")
    x = bone(joints, layout) if stream == "bone-motion" else joints
    return motion(x, layout, stop)


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


def sampled_stream(now: np.ndarray, after: np.ndarray | None, stream: str, layout: Layout,
                   last: np.ndarray) -> np.ndarray:  # fmt: skip
    """`stream` at sampled frames, from the joints there: what `compute_stream_frames` gives at those
    frames, bit for bit (MMAction2's order: the stream of the whole sequence, then the clip's frames).

    `now` (..., C, L, V, M): the joints at the sampled frames; `after`: the joints of the frame after
    each (motion streams; None for joint and bone); `last` (..., L) bool: where the sampled frame is
    its sample's last real frame (or no frame), whose motion is zero.
    """
    if stream not in STREAMS:
        raise AgcnError(f"unknown stream {stream!r}; choose one of: {', '.join(STREAMS)}")
    if stream == "joint":
        return now
    has_score = layout.channels[-1] == "score"
    if stream == "bone":
        return _bone(now, layout, has_score)
    if stream == "bone-motion":
        now, after = _bone(now, layout, has_score), _bone(after, layout, has_score)
    out = after - now
    if has_score:
        out[..., -1, :, :, :] = (after[..., -1, :, :, :] + now[..., -1, :, :, :]) / 2
    out[np.broadcast_to(last[..., None, :, None, None], out.shape)] = 0
    return out
