"""Temporal sampling: MMAction2's `UniformSampleFrames`, without global random state.

A sequence of `num_frames` frames is cut into `clip_len` clips-worth of indices by one of
three rules, chosen by its length:

- shorter than the clip (`num_frames < clip_len`): `clip_len` consecutive frames from a
  start frame, wrapping around (`mod num_frames`), so short samples loop;
- between one and two clip lengths (`clip_len <= num_frames < 2 * clip_len`): every frame
  in order except `num_frames - clip_len` skipped ones, the skips a uniform random subset of
  the `clip_len + 1` gaps (before each kept frame, or after the last);
- longer: the sequence is split into `clip_len` segments at `i * num_frames // clip_len`
  and one frame is drawn uniformly from each segment.

Test clips follow the same rules with the reference's fixed seed: MMAction2 calls
`np.random.seed(255)` before each sample's test clips and then draws with the legacy
`choice` / `randint`, so a fresh `np.random.RandomState(seed)` per sample making the same
calls in the same order gives the very same indices, without touching global state. For a
short sequence the test clips are deterministic: clip `i` starts at `i * num_frames //
num_clips` (or at `i` when `num_frames < num_clips`).

Training draws from an explicit `np.random.Generator`. MMAction2 draws training offsets
from numpy's legacy global generator, whose stream we cannot (and do not want to)
reproduce; the distribution and structure of the indices are the same.

Defaults match the MMAction2 2s-AGCN configs: `clip_len=100`, one clip for training and
validation, `num_clips=10` for testing, seed 255. The reference adds the dataset's
`start_index` after the `mod` (0 for `PoseDataset`, so nothing is added here), and its
"transitional frame" rounding is a no-op on integer indices; `keep_tail_frames` belongs to
`SampleFrames`, not to this sampler.
"""

import numpy as np

from ..errors import AgcnError

TEST_SEED = 255  # MMAction2 UniformSampleFrames(seed=255)


def _check(num_frames: int, clip_len: int, num_clips: int) -> None:
    if num_frames < 1:
        raise AgcnError(f"cannot sample a clip from a sequence of {num_frames} frames; expected at least 1")
    if clip_len < 1:
        raise AgcnError(f"clip length must be at least 1, got {clip_len}")
    if num_clips < 1:
        raise AgcnError(f"number of clips must be at least 1, got {num_clips}")


def _segment_starts(num_frames: int | np.ndarray, clip_len: int) -> np.ndarray:
    """(..., clip_len + 1) segment boundaries i * num_frames // clip_len (num_frames broadcasts)."""
    return np.arange(clip_len + 1, dtype=np.int64) * num_frames // clip_len


def _skip_offsets(skipped: np.ndarray, clip_len: int) -> np.ndarray:
    """Kept-frame indices 0..clip_len-1 shifted by the number of skipped gaps up to each one."""
    gaps = np.zeros(clip_len + 1, dtype=np.int64)
    gaps[skipped] = 1
    return np.arange(clip_len) + np.cumsum(gaps)[:clip_len]


def _test_clip(num_frames: int, clip_len: int, num_clips: int, i: int, rs: np.random.RandomState) -> np.ndarray:
    # Calls on `rs` mirror the reference one for one; their order fixes the indices.
    if num_frames < clip_len:
        start = i if num_frames < num_clips else i * num_frames // num_clips
        return np.arange(start, start + clip_len)
    if num_frames < 2 * clip_len:
        return _skip_offsets(rs.choice(clip_len + 1, num_frames - clip_len, replace=False), clip_len)
    bounds = _segment_starts(num_frames, clip_len)
    return bounds[:-1] + rs.randint(np.diff(bounds))


def sample_test_clips(num_frames: int, clip_len: int, *, num_clips: int = 1, seed: int = TEST_SEED) -> np.ndarray:
    """Frame indices of one sample's test clips, shape (num_clips, clip_len), int64 in [0, num_frames).

    Deterministic: a fresh legacy `RandomState(seed)` per call, as the reference reseeds per sample.
    """
    num_frames, clip_len, num_clips = int(num_frames), int(clip_len), int(num_clips)
    _check(num_frames, clip_len, num_clips)
    rs = np.random.RandomState(seed)
    clips = [_test_clip(num_frames, clip_len, num_clips, i, rs) for i in range(num_clips)]
    return np.mod(np.stack(clips).astype(np.int64), num_frames)


def sample_batch_indices(num_frames: np.ndarray, clip_len: int, rng: np.random.Generator) -> np.ndarray:
    """One training clip per sample for a batch, shape (N, clip_len), int64.

    Vectorised over samples (no per-sample loop); each row has the distribution of MMAction2's
    per-sample rule (transcribed in `tests/reference/sampling.py`, which the tests compare with).
    """
    nf = np.asarray(num_frames, dtype=np.int64).reshape(-1)
    _check(int(nf.min()) if nf.size else 1, clip_len, 1)
    n, steps = nf.shape[0], np.arange(clip_len, dtype=np.int64)
    out = np.empty((n, clip_len), dtype=np.int64)

    short = nf < clip_len
    mid = (nf >= clip_len) & (nf < 2 * clip_len)
    long = nf >= 2 * clip_len

    if short.any():  # a uniform start, then consecutive frames (wrapped below)
        start = rng.integers(0, nf[short])
        out[short] = start[:, None] + steps

    if mid.any():  # a uniform k-subset of the clip_len + 1 gaps, k = num_frames - clip_len
        k = nf[mid] - clip_len
        keys = rng.random((k.shape[0], clip_len + 1))
        rank = np.argsort(np.argsort(keys, axis=1), axis=1)  # rank of each gap in a random permutation
        skipped = (rank < k[:, None]).astype(np.int64)
        out[mid] = steps + np.cumsum(skipped, axis=1)[:, :clip_len]

    if long.any():  # one uniform frame per segment
        bounds = _segment_starts(nf[long][:, None], clip_len)  # (n_long, clip_len + 1)
        out[long] = bounds[:, :-1] + rng.integers(0, np.diff(bounds, axis=1))

    return np.mod(out, nf[:, None])
