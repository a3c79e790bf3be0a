"""Pre-normalisation of 3D (and 2D) skeletons: the 2s-AGCN recipe and MMAction2's transforms.

All functions work channel-last on one sample, `(M, T, V, C)` (persons, frames, joints,
channels), the layout of both references; transpose `(C, T, V, M)` data with
`x.transpose(3, 1, 2, 0)` before and after.

## 2s-AGCN (`pre_normalize_2sagcn`)
lshiwjx/2s-AGCN `data_gen/preprocess.py`, run once at preprocessing time:
1. pad: a person whose first frame is empty has its non-empty frames moved to the start;
   then trailing empty frames are filled by repeating the person's frames from the start;
2. centre: subtract joint `origin` of person 0 *in every frame* from every non-zero joint;
3. rotate so that joint z_axis[0] -> z_axis[1] of person 0 at frame 0 is parallel to +z;
4. then so that joint x_axis[1] -> x_axis[0] (left -> right shoulder) is parallel to +x.
"Empty" follows the reference exactly: a sum of coordinates equal to zero. Values are float32
as in the reference (which normalises a float32 array and rotates through float64).
`pre_normalize_2sagcn_padded` also returns the `WindowPad` of the sample: each person's period
(step 1) and person 0's centre track (step 2) rotated (steps 3-4), what continues the T frames
exactly as the reference's 300-frame array (data_specs/recipes.md, "The full window").

## MMAction2 (`pre_normalize_3d`, `pre_normalize_2d`), applied at load time

`pre_normalize_3d` (MMAction2 `PreNormalize3D`, adapted there from 2s-AGCN):

1. An all-zero sample is returned unchanged.
2. Only frames where the main person is present are kept (a frame counts as empty when
   every value is within 1e-8 of zero, `np.isclose(x, 0)`). With two persons the main one
   is the person present in more frames (person 0 on a tie); if that is person 1 the two
   are swapped. So T can shrink, also inside the sequence, not only at its ends.
3. `align_center`: subtract the origin joint of the main person at (new) frame 0 from every
   joint that is not all zero (zero joints stay zero). The origin is joint 1 (spine middle)
   for 25-joint skeletons and the last joint otherwise, as in the reference.
4. `align_spine`: rotate so that `x[z_axis[1]] - x[z_axis[0]]` of the main person at frame 0
   points along +z; rotation axis `v x z`, angle from `angle_between`.
5. `align_shoulder`: then rotate so that `x[x_axis[0]] - x[x_axis[1]]` (right shoulder minus
   left shoulder for NTU, i.e. the vector from joint 4 to joint 8) points along +x.

`rotation_matrix` returns the identity when the axis is (nearly) zero or the angle tiny
(both below 1e-6, summed absolute value for the axis), and `angle_between` returns 0 when
either vector sums to below 1e-6 in absolute value. A consequence kept from the reference: a
vector exactly opposite to the target gives a zero cross product, so no rotation at all.

Dtypes: the reference subtracts the centre in the input dtype and rotates with a float64
matrix, so it returns float64 (its `PoseDecode` casts to float32 later). Here the same steps
run in the same precisions and the result is cast back to the input's floating dtype.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import AgcnError

_SMALL = 1e-6  # the reference's threshold for a "zero" axis, vector or angle
_UNIT_Z = np.array([0.0, 0.0, 1.0])
_UNIT_X = np.array([1.0, 0.0, 0.0])


def angle_between(v1: np.ndarray, v2: np.ndarray) -> float:
    """Angle in radians between two vectors; 0 if either has an absolute sum below 1e-6."""
    v1, v2 = np.asarray(v1, dtype=np.float64), np.asarray(v2, dtype=np.float64)
    if np.abs(v1).sum() < _SMALL or np.abs(v2).sum() < _SMALL:
        return 0.0
    cos = np.dot(v1 / np.linalg.norm(v1), v2 / np.linalg.norm(v2))
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def rotation_matrix(axis: np.ndarray, theta: float) -> np.ndarray:
    """(3, 3) counterclockwise rotation by `theta` about `axis` (right-hand rule); p' = R @ p.

    Identity when the axis has an absolute sum below 1e-6 or |theta| < 1e-6.
    """
    axis = np.asarray(axis, dtype=np.float64)
    if np.abs(axis).sum() < _SMALL or abs(theta) < _SMALL:
        return np.eye(3)
    k = axis / np.linalg.norm(axis)
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    # Rodrigues' formula; the same matrix as the reference's Euler-Rodrigues parameters.
    return np.cos(theta) * np.eye(3) + np.sin(theta) * cross + (1.0 - np.cos(theta)) * np.outer(k, k)


def align_matrix(vector: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation taking `vector` onto the direction of `target` (identity in degenerate cases)."""
    return rotation_matrix(np.cross(vector, target), angle_between(vector, target))


def pre_normalize_3d(
    keypoint: np.ndarray,
    *,
    z_axis: tuple[int, int] = (0, 1),
    x_axis: tuple[int, int] = (8, 4),
    origin: int | None = None,
    align_center: bool = True,
    align_spine: bool = True,
    align_shoulder: bool = True,
    dtype: np.dtype | None = None,
) -> np.ndarray:
    """MMAction2 `PreNormalize3D` on one sample (M, T, V, 3) -> (M, T', V, 3), T' <= T.

    M must be 1 or 2. `origin=None` picks joint 1 for 25 joints, else the last joint.
    """
    kp = np.asarray(keypoint)
    if kp.ndim != 4 or kp.shape[-1] != 3:
        raise AgcnError(f"expected 3D keypoints of shape (M, T, V, 3), got {kp.shape}")
    m, _, v, _ = kp.shape
    if m not in (1, 2):
        raise AgcnError(f"3D pre-normalisation handles 1 or 2 persons, got {m}")
    # the reference returns float64 that PoseDecode casts to float32; `dtype` picks the output
    out_dtype = dtype or (kp.dtype if np.issubdtype(kp.dtype, np.floating) else np.dtype(np.float32))
    if kp.sum() == 0:
        return kp.astype(out_dtype)

    present = ~np.all(np.isclose(kp, 0), axis=(2, 3))  # (M, T)
    main = 1 if m == 2 and present[0].sum() < present[1].sum() else 0
    if not present[main].any():  # values all within 1e-8 of zero; the reference fails here
        return kp.astype(out_dtype)
    sk = kp[:, present[main]]
    if main == 1:
        sk = sk[::-1]

    if align_center:
        center = sk[0, 0, (1 if v == 25 else v - 1) if origin is None else origin].copy()
        sk = (sk - center) * np.any(sk != 0, axis=-1, keepdims=True)

    rot = np.eye(3)
    if align_spine:
        rot = align_matrix(sk[0, 0, z_axis[1]] - sk[0, 0, z_axis[0]], _UNIT_Z)
    if align_shoulder:
        shoulders = rot @ (sk[0, 0, x_axis[0]].astype(np.float64) - sk[0, 0, x_axis[1]])
        rot = align_matrix(shoulders, _UNIT_X) @ rot
    if align_spine or align_shoulder:
        sk = np.einsum("mtvc,kc->mtvk", sk.astype(np.float64), rot)
    return sk.astype(out_dtype)


PRENORM_2D_MODES = ("fix", "auto")
DEFAULT_IMG_SHAPE = (1080, 1920)  # (height, width): PreNormalize2D's default, NTU's RGB frames


def pre_normalize_2d(
    keypoint: np.ndarray,
    img_shape: tuple[int, int] = DEFAULT_IMG_SHAPE,
    *,
    score: np.ndarray | None = None,
    threshold: float | None = None,
    mode: str = "fix",
    dtype: np.dtype | None = None,
) -> np.ndarray:
    """MMAction2 `PreNormalize2D`: pixel coordinates (..., 2 or 3) to [-1, 1]; float32 copy.

    `img_shape` is (height, width). A third channel (or `score`, appended as one) is a
    detection score and is kept. With the defaults this is MMAction2's transform: x and y are
    rescaled, nothing is masked. Given a `threshold`, x, y of joints scoring <= it are set to
    0 and mode "auto" maps the box around the scored joints (if wider and taller than 10
    pixels) instead of the image box ("fix"): the masking variant some pipelines use.
    `dtype` is the arithmetic's for x and y (None: float32; MMAction2 computes in the stored
    dtype, float16 in its .pkl files); the score is never rounded through it.
    """
    if mode not in PRENORM_2D_MODES:
        raise AgcnError(f"unknown 2D normalisation mode {mode!r}; choose one of: {', '.join(PRENORM_2D_MODES)}")
    keypoint = np.asarray(keypoint)
    if keypoint.shape[-1] not in (2, 3) or (score is not None and keypoint.shape[-1] != 2):
        raise AgcnError(f"expected 2D keypoints (..., 2) or (..., 3) with a score, got {keypoint.shape}")
    xy = np.array(keypoint[..., :2], dtype=np.float32 if dtype is None else dtype)  # a copy
    if score is None and keypoint.shape[-1] == 3:
        score = keypoint[..., 2]
    score = None if score is None else np.asarray(score, dtype=np.float32)
    keep = score > threshold if score is not None and threshold is not None else None
    x, y = xy[..., 0], xy[..., 1]  # views into xy

    if mode == "fix":
        h, w = float(img_shape[0]), float(img_shape[1])  # Python floats keep the arithmetic in xy's dtype
        x[...] = (x - w / 2) / (w / 2)
        y[...] = (y - h / 2) / (h / 2)
    else:
        if keep is None:
            box = (x.max(), x.min(), y.max(), y.min())
        elif keep.any():
            box = (x[keep].max(), x[keep].min(), y[keep].max(), y[keep].min())
        else:
            box = (0, 0, 0, 0)
        x_max, x_min, y_max, y_min = box
        if x_max - x_min > 10 and y_max - y_min > 10:
            x[...] = (x - (x_max + x_min) / 2) / (x_max - x_min) * 2
            y[...] = (y - (y_max + y_min) / 2) / (y_max - y_min) * 2

    if keep is not None:
        x[~keep] = 0
        y[~keep] = 0
    xy = xy.astype(np.float32, copy=False)
    return xy if score is None else np.concatenate([xy, score[..., None]], axis=-1)


def _pad_empty_frames(sample: np.ndarray) -> np.ndarray:
    """Step 1 in place; returns each person's period (M,) int64: the frames its padding repeats
    (its frames, after a move to the start, up to its first empty trailing frame; T when it has
    no empty trailing frame; 0 for an empty person)."""
    M, T = sample.shape[:2]
    periods = np.zeros(M, dtype=np.int64)
    for p in range(M):  # M is 2: a loop over persons, everything inside is vectorised
        person = sample[p]  # (T, V, C) view
        frame_sums = person.sum(axis=(1, 2))
        if person.sum() == 0:
            continue
        periods[p] = T
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
        periods[p] = start
        rest = T - start
        person[start:] = np.resize(person[:start], (rest, *person.shape[1:]))
    return periods


@dataclass(frozen=True)
class WindowPad:
    """How a 2s-agcn sample continues past its real T frames in the reference's padded array.

    There each person p's empty trailing frames repeat its own first `periods[p]` frames, and
    then every person has person 0's centre joint of the same (repeated) frame subtracted and is
    rotated: window frame t >= T of person p is R(p[t % Lp] - c0[t % L0]) on p's non-zero joints.
    From the stored frames R(p[t] - c0[t]) that is stored_p[t % Lp] + centre[t % Lp] -
    centre[t % L0], with `centre` the rotated centre track R c0 (data_specs/recipes.md).
    """

    periods: np.ndarray  # (M,) int64: each person's period Lp (0: an empty person)
    centre: np.ndarray  # (T, 3) float32: R c0[t], person 0's centre joint of frame t, rotated


def pre_normalize_2sagcn(
    sample: np.ndarray,
    origin: int = 1,
    z_axis: tuple[int, int] = (0, 1),
    x_axis: tuple[int, int] = (8, 4),
) -> np.ndarray:
    """The full 2s-AGCN pre-normalisation of one (M, T, V, C=3) float32 sample (a new array)."""
    return pre_normalize_2sagcn_padded(sample, origin, z_axis, x_axis)[0]


def pre_normalize_2sagcn_padded(
    sample: np.ndarray,
    origin: int = 1,
    z_axis: tuple[int, int] = (0, 1),
    x_axis: tuple[int, int] = (8, 4),
) -> tuple[np.ndarray, WindowPad]:
    """`pre_normalize_2sagcn`, and the facts that continue the sample past T as the reference's
    300-frame array does (`WindowPad`)."""
    s = np.array(sample, dtype=np.float32)
    T = s.shape[1]
    if s.sum() == 0:
        return s, WindowPad(np.zeros(s.shape[0], np.int64), np.zeros((T, 3), np.float32))
    periods = _pad_empty_frames(s)

    # centre on person 0's origin joint, frame by frame; zero joints stay zero
    center = s[0, :, origin : origin + 1, :].copy()  # (T, 1, C)
    for p in range(s.shape[0]):
        if s[p].sum() == 0:
            continue
        mask = s[p].sum(axis=-1, keepdims=True) != 0  # (T, V, 1)
        s[p] = (s[p] - center) * mask

    # The reference's conventions: z vector = z_axis[1] - z_axis[0] (spine base -> spine mid),
    # x vector = x_axis[0] - x_axis[1] (left shoulder -> right shoulder), both at frame 0.
    # The centre track goes through the same two rotations, in the same precisions.
    track = center[:, 0]  # (T, 3) float32
    for a, b, target in ((z_axis[1], z_axis[0], (0.0, 0.0, 1.0)), (x_axis[0], x_axis[1], (1.0, 0.0, 0.0))):
        rot = align_matrix(s[0, 0, a] - s[0, 0, b], target)
        _rotate_nonempty(s, rot)
        track = (track.astype(np.float64) @ rot.T).astype(np.float32)
    return s, WindowPad(periods, track)


def _rotate_nonempty(s: np.ndarray, rot: np.ndarray) -> None:
    """Rotate, in place, every non-empty frame of every non-empty person of (M, T, V, 3)."""
    for p in range(s.shape[0]):
        if s[p].sum() == 0:
            continue
        frames = s[p].sum(axis=(1, 2)) != 0  # (T,)
        s[p, frames] = (s[p, frames].astype(np.float64) @ rot.T).astype(np.float32)
