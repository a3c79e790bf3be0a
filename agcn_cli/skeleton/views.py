"""The views a model sees of its samples: the one clip path of training, `agcn eval` and `agcn predict`.

Pure numpy. `cut_views` cuts the views `(N, K, C, L, V, M)` of a batch of samples held back to
back in a `(C, F, V, M)` array (a split's stream in memory, `engine.data.SkeletonDataset`; or one
sample, `sample_views`, as `agcn predict` reads it), as a `ViewSpec` says:

- uniform clips (MMAction2's `UniformSampleFrames`): K = `num_clips` clips of L = `clip_len`
  frames, the fixed-seed test clips (`sampling.sample_test_clips`, seed 255) or, given a
  generator, training's draws (`sampling.sample_batch_indices`);
- the full window (`window > 0`, 2s-AGCN's recipe): one view of L = `window` frames, each
  sample continued past its real frames as its data's padding says (`skeleton/window.py`), its
  motion that of the padded window where `window.motion_of_window` says; given a generator
  (training), a random run of `random_choose` frames of it (2s-AGCN's `random_choose`).

Frames are gathered with one `np.take` per channel straight into place (a batch takes ~2 ms,
BENCHMARKS.md, "Data pipeline"); nothing loops over samples or frames.
"""

from dataclasses import dataclass
from functools import cache

import numpy as np

from .augment import draw_choose
from .layouts import Layout
from .normalize import WindowPad
from .sampling import TEST_SEED, sample_batch_indices, sample_test_clips
from .streams import compute_stream, sampled_stream, window_motion
from .window import PadPeriods, motion_of_window, pad_periods, repeat_persons, window_rows


@dataclass(frozen=True)
class ViewSpec:
    """Which views of a sample a model sees: a checkpoint's test sampling, or training's."""

    stream: str = "joint"  # the stream the views show (skeleton.streams.STREAMS)
    clip_len: int = 100  # frames per uniform clip
    num_clips: int = 1  # uniform clips per sample; the window is one view
    window: int = 0  # > 0: one view of the whole window of this many frames (2s-AGCN), no clips
    random_choose: int = 0  # training in the window: a random run of this many frames of it
    padding: str = "loop"  # how samples continue past their real frames (`window.window_padding`)
    layout: Layout | None = None  # the skeleton, for bone streams (`sample_views`, the window's motion)

    @property
    def padded_motion(self) -> bool:
        """Whether the views are the motion of the padded window (`window.motion_of_window`),
        differenced view by view from the joints."""
        return bool(self.window) and motion_of_window(self.padding, self.stream)

    @property
    def base(self) -> str:
        """The stream the views are cut from: joint for the motion of the padded window."""
        return "joint" if self.padded_motion else self.stream


@cache
def _test_clips(num_frames: int, clip_len: int, num_clips: int) -> np.ndarray:
    """Test clips depend on the length alone (fixed seed): computed once per length."""
    idx = sample_test_clips(num_frames, clip_len, num_clips=num_clips, seed=TEST_SEED)
    idx.flags.writeable = False
    return idx


def clip_indices(lengths: np.ndarray, spec: ViewSpec, rng: np.random.Generator | None = None) -> np.ndarray:
    """(N, num_clips, clip_len) frame indices of the uniform clips of samples `lengths` (N,) frames
    long: the fixed-seed test clips, or training's draws from `rng`."""
    if rng is None:
        unique, inverse = np.unique(lengths, return_inverse=True)  # one lookup per length, not per sample
        return np.stack([_test_clips(int(t), spec.clip_len, spec.num_clips) for t in unique])[inverse.reshape(-1)]
    return np.stack([sample_batch_indices(lengths, spec.clip_len, rng) for _ in range(spec.num_clips)], axis=1)


def window_positions(n: int, spec: ViewSpec, rng: np.random.Generator | None = None) -> np.ndarray:
    """(N, L) positions in the window of n samples: all of it (L = window), or, given `rng`
    (training), a random run of L = random_choose frames; always consecutive (`cut_views` relies
    on it for the motion of the padded window)."""
    if spec.random_choose and rng is not None:
        starts = draw_choose(rng, n, spec.window, spec.random_choose)  # (N,)
        return starts[:, None] + np.arange(spec.random_choose)  # (N, L)
    return np.broadcast_to(np.arange(spec.window), (n, spec.window))


def frame_indices(
    lengths: np.ndarray, spec: ViewSpec, pads: PadPeriods | None = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(N, K, L) frame indices of the views of samples `lengths` (N,) frames long; -1: a zero frame.
    In the window every person follows person 0's period here (`cut_views` repeats the others
    with their own)."""
    if spec.window:
        return window_rows(window_positions(len(lengths), spec, rng), lengths, pads.period)[:, None]
    return clip_indices(lengths, spec, rng)


def gather_frames(frames: np.ndarray, starts: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
    """Clips of the samples whose rows of `frames` (C, F, V, M) start at `starts` (N,), at their
    frames `frame_idx` (N, L) or (N, K, L); index -1: a zero frame.

    Returns (N, C, L, V, M) or (N, K, C, L, V, M) float32, a new array.
    """
    frame_idx = np.asarray(frame_idx, dtype=np.int64)
    zero = frame_idx < 0  # (N, [K,] L): padding past the real frames
    rows = starts.reshape(-1, *[1] * (frame_idx.ndim - 1)) + np.maximum(frame_idx, 0)  # (N, [K,] L)
    c, _, v, m = frames.shape
    out = np.empty((*rows.shape[:-1], c, rows.shape[-1], v, m), dtype=np.float32)  # (N, [K,] C, L, V, M)
    # One take per channel, straight into place, no thread pool competing with the model's
    for ch in range(c):
        np.take(frames[ch], rows, axis=0, out=out[..., ch, :, :, :])
    if zero.any():
        *lead, frame = np.nonzero(zero)
        out[(*lead, slice(None), frame)] = 0
    return out


def cut_views(
    frames: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    spec: ViewSpec,
    pads: PadPeriods | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The views (N, K, C, L, V, M) float32 of the samples whose rows of `frames` (C, F, V, M), a
    `spec.base` stream, start at `starts` (N,) and are `lengths` (N,) long.

    K = num_clips uniform clips of L = clip_len frames; or, for the window, one view of L = window
    frames (random_choose in training), each sample continued past its real frames as `pads`
    (theirs, `PadPeriods.take`) say. `rng`: training's draws; None: the test views (the fixed-seed
    clips, the whole window).
    """
    if not spec.window:
        return gather_frames(frames, starts, clip_indices(lengths, spec, rng))
    if pads is None:  # a caller's mistake, not the user's: the window needs to know how samples continue
        raise ValueError("cut_views: a full-window ViewSpec needs the samples' pads (window.pad_periods)")
    pos = window_positions(len(starts), spec, rng)  # (N, L)
    if not spec.padded_motion:
        return _window(frames, starts, lengths, pads, pos)
    # the run's joints and the window frame after it (the last frame again at the window's end)
    after = np.minimum(pos[:, -1:] + 1, spec.window - 1)  # (N, 1)
    joints = _window(frames, starts, lengths, pads, np.concatenate([pos, after], axis=1))[:, 0]  # (N, C, L + 1, V, M)
    stop = spec.window - pos[:, 0]  # (N,) frames of the run inside the window
    out = window_motion(joints, spec.stream, spec.layout, stop)[:, :, :-1]  # (N, C, L, V, M)
    return np.ascontiguousarray(out[:, None])  # (N, 1, C, L, V, M)


def _window(frames: np.ndarray, starts: np.ndarray, lengths: np.ndarray, pads: PadPeriods,
            pos: np.ndarray) -> np.ndarray:  # fmt: skip
    """(N, 1, C, L, V, M) window frames at positions `pos` (N, L), each person of a 2s-agcn file
    with its own period."""
    out = gather_frames(frames, starts, window_rows(pos, lengths, pads.period)[:, None])
    if pads.persons is not None:
        repeat_persons(out[:, 0], frames, pads.centre, starts, lengths, pads.persons, pos)
    return out


def sample_views(sample: np.ndarray, spec: ViewSpec, pad: WindowPad | None = None) -> np.ndarray:
    """(K, C, L, V, M) float32 test views of one sample's joints (M, T, V, C), as a split file
    stores them: `spec.base` derived on the whole sequence (`streams.compute_stream`, as at load
    time), then `cut_views` of a batch of one; `pad`: a 2s-agcn sample's window facts."""
    x = compute_stream(sample.transpose(3, 1, 2, 0), spec.base, spec.layout)  # (C, T, V, M)
    starts, lengths = np.zeros(1, np.int64), np.array([x.shape[1]], np.int64)
    pads = None
    if spec.window:
        facts = None if pad is None else (pad.periods[None], pad.centre)  # (1, M), (T, 3)
        pads = pad_periods(x, starts, lengths, spec.padding, facts, spec.base)
    return cut_views(x, starts, lengths, spec, pads)[0]


def views_from_joints(joints: np.ndarray, starts: np.ndarray, lengths: np.ndarray, frame_idx: np.ndarray,
                      stream: str, layout: Layout) -> np.ndarray:  # fmt: skip
    """The `stream` at frames `frame_idx` (N, L) or (N, K, L) (-1: a zero frame) of the samples whose
    rows of `joints` (F, M, V, C), a split file's joints (the shared joint cache, read-only), start at
    `starts` (N,) and are `lengths` (N,) long: (N, [K,] C, L, V, M) float32, a new array.

    Bit for bit the views `cut_views` cuts from the stream derived on whole samples at load time
    (`streams.sampled_stream`): the joints at the frames, and for motion those at the frame after.
    """
    idx = np.asarray(frame_idx, dtype=np.int64)
    shape = (-1, *[1] * (idx.ndim - 1))
    starts, lengths = np.asarray(starts).reshape(shape), np.asarray(lengths).reshape(shape)
    zero = idx < 0
    rows = starts + np.maximum(idx, 0)

    def take(r: np.ndarray) -> np.ndarray:  # (..., L, M, V, C) -> (..., C, L, V, M)
        x = joints[r]
        n = x.ndim
        x = x.transpose(*range(n - 4), n - 1, n - 4, n - 2, n - 3)  # (..., C, L, V, M)
        return np.ascontiguousarray(x, dtype=np.float32)

    now = take(rows)
    if zero.any():
        now[np.broadcast_to(zero[..., None, :, None, None], now.shape)] = 0
    after = None
    if stream.endswith("motion"):
        last = zero | (idx >= lengths - 1)  # the motion of a sample's last real frame is zero
        after = take(np.where(last, rows, rows + 1))
    else:
        last = zero
    return sampled_stream(now, after, stream, layout, last)
