"""2s-AGCN's training augmentations (lshiwjx/2s-AGCN `feeders/tools.py`), vectorised over a batch.

The reference runs them per sample in its feeder, `random_choose` then `random_move`, on the
sample padded to the whole window (Kinetics-Skeleton: 300 frames, choose 150). Here each is
split in two: a draw from an explicit `np.random.Generator` for the whole batch, and a
deterministic transform of a batch `(N, C, T, V, M)` given the draws, so that a test can feed
the reference's transcription (tests/reference/feeder_tools.py) the same draws. For one sample,
the draws consume the generator as the transcription does.

- `random_choose`: a random run of `size` consecutive frames out of `total`
  (`random.randint(0, total - size)`; no draw when `size == total`). The reference's other
  branch, zero padding at a random place when the sample is shorter than `size`, never runs on
  a padded window, which is at least `size` long.
- `random_move` (with the reference's defaults, move_time 1): per clip an angle from
  {-10, -5, 0, 5, 10} degrees, a scale from {0.9, 1, 1.1} and x, y shifts from
  {-0.2, -0.1, 0, 0.1, 0.2} are drawn at the first and last frame and interpolated linearly
  (`np.linspace`) over the frames; each frame's x, y (channels 0 and 1; a score or z channel is
  left alone) are rotated, scaled and shifted: every joint, zero-padded ones included, as there.
"""

from dataclasses import dataclass

import numpy as np

MOVE_ANGLES = (-10.0, -5.0, 0.0, 5.0, 10.0)  # degrees
MOVE_SCALES = (0.9, 1.0, 1.1)
MOVE_SHIFTS = (-0.2, -0.1, 0.0, 0.1, 0.2)
MOVE_TIMES = (1,)  # segments per clip: the reference's move_time_candidate, one value


def draw_choose(rng: np.random.Generator, n: int, total: int, size: int) -> np.ndarray:
    """(n,) int64 first frames of `size`-frame runs out of `total` frames (zeros when equal)."""
    if size > total:
        raise ValueError(f"cannot choose {size} frames out of {total}")
    if size == total:  # the reference returns the sample as is, drawing nothing
        return np.zeros(n, dtype=np.int64)
    return rng.integers(0, total - size + 1, size=n).astype(np.int64)


@dataclass(frozen=True)
class MoveParams:
    """`random_move`'s draws for n clips of one length: values at the segment nodes, (n, nodes)."""

    nodes: np.ndarray  # (nodes,) frame index of each node, the last one = T
    angle: np.ndarray  # (n, nodes) degrees
    scale: np.ndarray  # (n, nodes)
    shift_x: np.ndarray  # (n, nodes)
    shift_y: np.ndarray  # (n, nodes)


def move_nodes(num_frames: int, move_time: int) -> np.ndarray:
    """The reference's segment boundaries: round(arange(0, T, T / move_time)), then T."""
    node = np.arange(0, num_frames, num_frames * 1.0 / move_time).round().astype(int)
    return np.append(node, num_frames)


def draw_move(rng: np.random.Generator, n: int, num_frames: int) -> MoveParams:
    """`random_move`'s draws for n clips of `num_frames` frames, in the reference's order.

    The reference first picks move_time from its one candidate, 1, which draws nothing.
    """
    nodes = move_nodes(num_frames, MOVE_TIMES[0])
    k = len(nodes)
    angle = rng.choice(MOVE_ANGLES, (n, k))
    scale = rng.choice(MOVE_SCALES, (n, k))
    shift_x = rng.choice(MOVE_SHIFTS, (n, k))
    shift_y = rng.choice(MOVE_SHIFTS, (n, k))
    return MoveParams(nodes, angle, scale, shift_x, shift_y)


def _interpolate(values: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """(n, nodes) node values -> (n, T): np.linspace between consecutive nodes, as the reference."""
    n, T = len(values), int(nodes[-1])
    out = np.zeros((n, T))
    for i in range(len(nodes) - 1):  # segments (1 with the reference's move_time), vectorised over n
        a, b = int(nodes[i]), int(nodes[i + 1])
        out[:, a:b] = np.linspace(values[:, i], values[:, i + 1], b - a, axis=1)
    return out


def random_move(x: np.ndarray, params: MoveParams) -> np.ndarray:
    """Rotate, scale and shift x, y of a batch (N, C, T, V, M) per frame; a new float32 array."""
    N, C, T, V, M = x.shape
    if T != params.nodes[-1] or N != len(params.angle):
        raise ValueError(f"draws for {len(params.angle)} clips of {params.nodes[-1]} frames, got {x.shape}")
    a = _interpolate(params.angle, params.nodes) * np.pi / 180  # (N, T) radians
    s = _interpolate(params.scale, params.nodes)
    # the per-frame coefficients in float64, as there; applied in float32 (the batch's dtype; the
    # reference rounds to it at the end): within 1e-6 of it, 2-3x faster
    cos = (np.cos(a) * s).astype(np.float32)[:, :, None, None]  # (N, T, 1, 1)
    sin = (np.sin(a) * s).astype(np.float32)[:, :, None, None]
    tx = _interpolate(params.shift_x, params.nodes).astype(np.float32)[:, :, None, None]
    ty = _interpolate(params.shift_y, params.nodes).astype(np.float32)[:, :, None, None]
    out = np.empty(x.shape, dtype=np.float32)
    out[:, 2:] = x[:, 2:]  # z or score: as it was
    px, py = x[:, 0], x[:, 1]  # (N, T, V, M)
    out[:, 0] = cos * px - sin * py + tx
    out[:, 1] = sin * px + cos * py + ty
    return out
