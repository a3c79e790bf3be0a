"""PreNormalize3D / PreNormalize2D: geometry, equality with a slow transcription, edge cases."""

import math

import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.skeleton.normalize import angle_between, pre_normalize_2d, pre_normalize_3d, rotation_matrix

# --- a slow, loop-by-loop transcription of MMAction2 PreNormalize3D -------------------------


def _slow_angle(v1, v2):
    if sum(abs(float(a)) for a in v1) < 1e-6 or sum(abs(float(a)) for a in v2) < 1e-6:
        return 0.0
    n1 = math.sqrt(sum(float(a) ** 2 for a in v1))
    n2 = math.sqrt(sum(float(a) ** 2 for a in v2))
    cos = sum(float(a) * float(b) for a, b in zip(v1, v2, strict=True)) / (n1 * n2)
    return math.acos(min(1.0, max(-1.0, cos)))


def _slow_rotation(axis, theta):
    # Unit quaternion (w, x, y, z) = (cos theta/2, k sin theta/2) -> matrix: an independent
    # formula for the same counterclockwise rotation.
    if sum(abs(float(a)) for a in axis) < 1e-6 or abs(theta) < 1e-6:
        return np.eye(3)
    norm = math.sqrt(sum(float(a) ** 2 for a in axis))
    w = math.cos(theta / 2)
    x, y, z = (float(a) / norm * math.sin(theta / 2) for a in axis)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _slow_rotate_all(sk, rot):
    out = np.zeros(sk.shape, dtype=np.float64)
    for m in range(sk.shape[0]):
        for t in range(sk.shape[1]):
            for v in range(sk.shape[2]):
                out[m, t, v] = rot @ sk[m, t, v].astype(np.float64)
    return out


def _slow_prenorm3d(kp, zaxis=(0, 1), xaxis=(8, 4), align_center=True, align_spine=True, align_shoulder=True):
    if kp.sum() == 0:
        return kp
    m_count, t_count, v_count, _ = kp.shape
    frames = [[t for t in range(t_count) if not np.all(np.isclose(kp[m, t], 0))] for m in range(m_count)]
    if m_count == 2 and len(frames[0]) < len(frames[1]):
        sk = kp[:, frames[1]][[1, 0]]
    else:
        sk = kp[:, frames[0]]
    sk = sk.copy()
    if align_center:
        center = sk[0, 0, 1 if v_count == 25 else v_count - 1].copy()
        for m in range(sk.shape[0]):
            for t in range(sk.shape[1]):
                for v in range(v_count):
                    if np.any(sk[m, t, v] != 0):
                        sk[m, t, v] = sk[m, t, v] - center
    if align_spine:
        spine = sk[0, 0, zaxis[1]] - sk[0, 0, zaxis[0]]
        sk = _slow_rotate_all(sk, _slow_rotation(np.cross(spine, [0, 0, 1]), _slow_angle(spine, [0, 0, 1])))
    if align_shoulder:
        shoulders = sk[0, 0, xaxis[0]] - sk[0, 0, xaxis[1]]
        rot = _slow_rotation(np.cross(shoulders, [1, 0, 0]), _slow_angle(shoulders, [1, 0, 0]))
        sk = _slow_rotate_all(sk, rot)
    return sk


def _random_skeleton(m=2, t=6, v=25, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(m, t, v, 3)) + np.array([0.3, -0.2, 3.0])).astype(np.float32)


# --- helpers ------------------------------------------------------------------------------


def test_rotation_matrix_is_counterclockwise_and_orthonormal():
    rz = rotation_matrix([0, 0, 2.0], math.pi / 2)
    np.testing.assert_allclose(rz @ [1, 0, 0], [0, 1, 0], atol=1e-12)  # x -> y about +z
    r = rotation_matrix([0.3, -1.0, 0.5], 1.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(r), 1.0)
    np.testing.assert_allclose(r, _slow_rotation([0.3, -1.0, 0.5], 1.1), atol=1e-12)


def test_helper_thresholds():
    assert np.array_equal(rotation_matrix([1e-7, 2e-7, 3e-7], 1.0), np.eye(3))  # |axis| sum < 1e-6
    assert np.array_equal(rotation_matrix([0, 0, 1], 9e-7), np.eye(3))  # |theta| < 1e-6
    assert not np.array_equal(rotation_matrix([0, 0, 1], 2e-6), np.eye(3))
    assert angle_between([5e-7, 0, 0], [0, 1, 0]) == 0.0  # tiny vector: angle 0
    assert math.isclose(angle_between([2, 0, 0], [0, 3, 0]), math.pi / 2)
    assert math.isclose(angle_between([1, 1, 0], [-1, -1, 0]), math.pi, abs_tol=1e-7)


# --- 3D -----------------------------------------------------------------------------------


def _body(rng) -> np.ndarray:
    """One person, 25 joints, shoulders perpendicular to the spine, randomly posed in space."""
    body = rng.normal(scale=0.3, size=(25, 3))
    body[0], body[1] = [0, -0.3, 0], [0, 0, 0]  # spine base below spine middle
    body[4], body[8] = [-0.2, 0.3, 0.05], [0.2, 0.3, 0.05]  # left / right shoulder, 8 - 4 along x
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))  # a proper rotation
    return body @ q.T + rng.normal(size=3) * 2


def test_3d_aligns_spine_to_z_shoulders_to_x_origin_to_zero():
    rng = np.random.default_rng(5)
    kp = np.stack([np.stack([_body(rng) for _ in range(4)]), np.stack([_body(rng) for _ in range(4)])])
    out = pre_normalize_3d(kp.astype(np.float32))
    assert out.shape == kp.shape and out.dtype == np.float32
    first = out[0, 0]
    np.testing.assert_allclose(first[1], 0, atol=1e-6)  # origin joint 1 at (0, 0, 0)
    spine = first[1] - first[0]  # float32 data a few metres from the camera: allow 1e-5
    assert spine[2] > 0 and np.allclose(spine[:2], 0, atol=1e-5)  # along +z
    shoulders = first[8] - first[4]
    assert shoulders[0] > 0 and np.allclose(shoulders[1:], 0, atol=1e-5)  # along +x


def test_3d_on_random_data_puts_shoulders_exactly_on_x():
    # With shoulders not perpendicular to the spine the second rotation tilts the spine off z
    # (as in the reference); the shoulder vector itself ends on +x.
    out = pre_normalize_3d(_random_skeleton())
    shoulders = out[0, 0, 8] - out[0, 0, 4]
    assert shoulders[0] > 0 and np.allclose(shoulders[1:], 0, atol=1e-5)


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"align_center": False},
        {"align_spine": False},
        {"align_shoulder": False},
        {"align_spine": False, "align_shoulder": False},
    ],
)
def test_3d_equals_slow_transcription(flags):
    kp = _random_skeleton(m=2, t=9, seed=1)
    kp[0, [0, 4, 8]] = 0  # person 0 absent at frames 0, 4 (inside the sequence) and 8
    kp[1, [5, 6, 7]] = 0  # also present in 6 frames: a tie keeps person 0 as the main one
    kp[0, 2, [3, 10]] = 0  # missing joints stay zero after centring
    expected = _slow_prenorm3d(kp, **flags)
    got = pre_normalize_3d(kp, **flags)
    assert got.shape == (2, 6, 25, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
    assert np.all(got[0, 1, [3, 10]] == 0)


def test_3d_second_person_present_longer_becomes_main():
    kp = _random_skeleton(m=2, t=7, seed=2)
    kp[0, 3:] = 0  # person 0 in 3 frames, person 1 in all 7
    got = pre_normalize_3d(kp)
    assert got.shape == (2, 7, 25, 3)
    np.testing.assert_allclose(got, _slow_prenorm3d(kp), rtol=0, atol=2e-5)
    np.testing.assert_allclose(got[0, 0, 1], 0, atol=1e-6)  # centred on the former person 1
    assert np.all(got[1, 3:] == 0)


def test_3d_single_person_non_ntu_layout_and_dtypes():
    kp = _random_skeleton(m=1, t=5, v=17, seed=3)
    got = pre_normalize_3d(kp, z_axis=(11, 5), x_axis=(6, 5))
    np.testing.assert_allclose(got, _slow_prenorm3d(kp, zaxis=(11, 5), xaxis=(6, 5)), rtol=0, atol=2e-5)
    np.testing.assert_allclose(got[0, 0, -1], 0, atol=1e-6)  # non-25-joint origin: last joint
    got64 = pre_normalize_3d(kp.astype(np.float64))
    assert got64.dtype == np.float64
    got_origin = pre_normalize_3d(kp, origin=0)
    np.testing.assert_allclose(got_origin[0, 0, 0], 0, atol=1e-6)


def test_3d_degenerate_inputs():
    zeros = np.zeros((2, 4, 25, 3), dtype=np.float32)
    np.testing.assert_array_equal(pre_normalize_3d(zeros), zeros)
    with pytest.raises(AgcnError, match="1 or 2 persons"):
        pre_normalize_3d(np.ones((3, 2, 25, 3)))
    with pytest.raises(AgcnError, match=r"\(M, T, V, 3\)"):
        pre_normalize_3d(np.ones((2, 2, 25, 2)))
    kp = _random_skeleton(m=1, t=3, seed=4)
    before = kp.copy()
    pre_normalize_3d(kp)
    np.testing.assert_array_equal(kp, before)  # input untouched


# --- 2D -----------------------------------------------------------------------------------


def _slow_prenorm2d(kp, h, w, threshold=0.0):
    out = kp.astype(np.float32).copy()
    for idx in np.ndindex(out.shape[:-1]):
        out[idx][0] = (out[idx][0] - w / 2) / (w / 2)
        out[idx][1] = (out[idx][1] - h / 2) / (h / 2)
        if out.shape[-1] == 3 and out[idx][2] <= threshold:
            out[idx][0] = out[idx][1] = 0
    return out


def test_2d_maps_image_box_to_unit_square():
    corners = np.array([[0, 0, 1], [1920, 1080, 1], [960, 540, 1], [480, 810, 0.5]], dtype=np.float32)
    out = pre_normalize_2d(corners)
    np.testing.assert_allclose(out[:, :2], [[-1, -1], [1, 1], [0, 0], [-0.5, 0.5]], atol=1e-7)
    np.testing.assert_array_equal(out[:, 2], corners[:, 2])  # scores kept
    out2 = pre_normalize_2d(corners[:, :2], img_shape=(100, 200))
    np.testing.assert_allclose(out2[1], [18.2, 20.6], rtol=1e-6)  # no score channel, no masking


def test_2d_equals_slow_transcription_with_masking_and_separate_score():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [640, 480], size=(2, 5, 17, 2)).astype(np.float32)
    score = rng.uniform(size=(2, 5, 17)).astype(np.float32)
    score[0, 1, :4] = 0
    got = pre_normalize_2d(xy, (480, 640), score=score, threshold=0.3)
    expected = _slow_prenorm2d(np.concatenate([xy, score[..., None]], -1), 480, 640, threshold=0.3)
    assert got.dtype == np.float32 and got.shape == (2, 5, 17, 3)
    np.testing.assert_array_equal(got, expected)
    assert np.all(got[0, 1, :4, :2] == 0)


def test_2d_auto_mode_uses_the_scored_joints_box():
    kp = np.array([[100, 50, 1], [300, 250, 1], [1000, 1000, 0]], dtype=np.float32)
    out = pre_normalize_2d(kp, mode="auto", threshold=0.0)
    np.testing.assert_allclose(out, [[-1, -1, 1], [1, 1, 1], [0, 0, 0]], atol=1e-7)
    unmasked = pre_normalize_2d(kp)  # MMAction2's default: nothing is zeroed
    assert unmasked[2, 0] > 0 and unmasked[2, 1] > 0
    small = np.array([[100, 50, 1], [105, 250, 1]], dtype=np.float32)  # box 5 px wide: left alone
    np.testing.assert_array_equal(pre_normalize_2d(small, mode="auto"), small)
    with pytest.raises(AgcnError, match="fix, auto"):
        pre_normalize_2d(kp, mode="box")
