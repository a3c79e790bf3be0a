"""The 2s-AGCN pre-normalisation (`data_gen/preprocess.py` of lshiwjx/2s-AGCN), vectorised.

It runs once, at preprocessing time, on each sample in person-major layout (M, T, V, C):
1. pad: a person whose first frame is empty has its non-empty frames moved to the start;
   then trailing empty frames are filled by repeating the person's frames from the start;
2. centre: subtract joint `origin` of person 0 *in every frame* from every non-zero joint;
3. rotate so that joint z_axis[0] -> z_axis[1] of person 0 at frame 0 is parallel to +z;
4. then so that joint x_axis[1] -> x_axis[0] (left -> right shoulder) is parallel to +x.
"Empty" follows the reference exactly: a sum of coordinates equal to zero. Values are float32
as in the reference (which normalises a float32 array and rotates through float64).
"""

import math

import numpy as np


def rotation_matrix(axis: np.ndarray, theta: float) -> np.ndarray:
    """(3, 3) matrix of the rotation by `theta` about `axis` (identity for tiny axis/angle)."""
    axis = np.asarray(axis)
    if np.abs(axis).sum() < 1e-6 or np.abs(theta) < 1e-6:
        return np.eye(3)
    axis = axis / math.sqrt(np.dot(axis, axis))
    # Euler-Rodrigues parameters; this sign convention rotates vectors counter-clockwise.
    a = math.cos(theta / 2.0)
    b, c, d = -axis * math.sin(theta / 2.0)
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c + a * d), 2 * (b * d - a * c)],
            [2 * (b * c - a * d), a * a + c * c - b * b - d * d, 2 * (c * d + a * b)],
            [2 * (b * d + a * c), 2 * (c * d - a * b), a * a + d * d - b * b - c * c],
        ]
    )


def angle_between(v1: np.ndarray, v2: np.ndarray) -> float:
    """Angle in radians between two vectors (0 when either is tiny)."""
    v1, v2 = np.asarray(v1), np.asarray(v2)
    if np.abs(v1).sum() < 1e-6 or np.abs(v2).sum() < 1e-6:
        return 0.0
    u1 = v1 / np.linalg.norm(v1)
    u2 = v2 / np.linalg.norm(v2)
    return float(np.arccos(np.clip(np.dot(u1, u2), -1.0, 1.0)))


def align_matrix(vector: np.ndarray, target: tuple[float, float, float]) -> np.ndarray:
    """The rotation that turns `vector` parallel to `target`."""
    target_arr = np.asarray(target, dtype=np.float64)
    return rotation_matrix(np.cross(vector, target_arr), angle_between(vector, target_arr))


def pad_empty_frames(sample: np.ndarray) -> np.ndarray:
    """Step 1 on a (M, T, V, C) sample, in place; returns it."""
    M, T = sample.shape[:2]
    for p in range(M):  # M is 2: a loop over persons, everything inside is vectorised
        person = sample[p]  # (T, V, C) view
        frame_sums = person.sum(axis=(1, 2))
        if person.sum() == 0:
            continue
        if frame_sums[0] == 0:
            valid = person[frame_sums != 0].copy()
            person[:] = 0
            person[: len(valid)] = valid
            frame_sums = person.sum(axis=(1, 2))
        empty = frame_sums == 0
        # first frame from which every remaining frame is empty
        trailing = np.flip(np.cumprod(np.flip(empty)).astype(bool))
        if not trailing.any():
            continue
        start = int(np.argmax(trailing))
        if start == 0:
            continue
        rest = T - start
        person[start:] = np.resize(person[:start], (rest, *person.shape[1:]))
    return sample


def pre_normalize_2sagcn(
    sample: np.ndarray,
    origin: int = 1,
    z_axis: tuple[int, int] = (0, 1),
    x_axis: tuple[int, int] = (8, 4),
) -> np.ndarray:
    """The full 2s-AGCN pre-normalisation of one (M, T, V, C=3) float32 sample (a new array)."""
    s = np.array(sample, dtype=np.float32)
    if s.sum() == 0:
        return s
    pad_empty_frames(s)

    # centre on person 0's origin joint, frame by frame; zero joints stay zero
    center = s[0, :, origin : origin + 1, :].copy()  # (T, 1, C)
    for p in range(s.shape[0]):
        if s[p].sum() == 0:
            continue
        mask = s[p].sum(axis=-1, keepdims=True) != 0  # (T, V, 1)
        s[p] = (s[p] - center) * mask

    # The reference's conventions: z vector = z_axis[1] - z_axis[0] (spine base -> spine mid),
    # x vector = x_axis[0] - x_axis[1] (left shoulder -> right shoulder), both at frame 0.
    _rotate_nonempty(s, align_matrix(s[0, 0, z_axis[1]] - s[0, 0, z_axis[0]], (0.0, 0.0, 1.0)))
    _rotate_nonempty(s, align_matrix(s[0, 0, x_axis[0]] - s[0, 0, x_axis[1]], (1.0, 0.0, 0.0)))
    return s


def _rotate_nonempty(s: np.ndarray, rot: np.ndarray) -> None:
    """Rotate, in place, every non-empty frame of every non-empty person of (M, T, V, 3)."""
    for p in range(s.shape[0]):
        if s[p].sum() == 0:
            continue
        frames = s[p].sum(axis=(1, 2)) != 0  # (T,)
        s[p, frames] = (s[p, frames].astype(np.float64) @ rot.T).astype(np.float32)
