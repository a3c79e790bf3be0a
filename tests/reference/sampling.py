"""MMAction2's `UniformSampleFrames` in training mode, one sample at a time, written plainly.

The oracle of `agcn_cli.skeleton.sampling.sample_batch_indices`, which draws a whole batch at
once: the tests compare the structure and the distribution of its rows with these.
"""

import numpy as np


def train_clip(num_frames: int, clip_len: int, rng: np.random.Generator) -> np.ndarray:
    """One training clip's frame indices, (clip_len,) int64 in [0, num_frames)."""
    if num_frames < clip_len:  # consecutive frames from a uniform start, looping
        start = rng.integers(0, num_frames)
        idx = np.arange(start, start + clip_len)
    elif num_frames < 2 * clip_len:  # every frame but num_frames - clip_len skipped gaps of clip_len + 1
        skipped = rng.choice(clip_len + 1, num_frames - clip_len, replace=False)
        gaps = np.zeros(clip_len + 1, dtype=np.int64)
        gaps[skipped] = 1
        idx = np.arange(clip_len) + np.cumsum(gaps)[:clip_len]
    else:  # one uniform frame from each of clip_len segments
        bounds = np.arange(clip_len + 1, dtype=np.int64) * num_frames // clip_len
        idx = bounds[:-1] + rng.integers(0, np.diff(bounds))
    return np.mod(np.asarray(idx, dtype=np.int64), num_frames)
