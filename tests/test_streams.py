"""Bone and motion streams (numpy): definitions, invariants, padding, score channels."""

import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.skeleton.streams import STREAMS, bone, compute_stream, motion

NTU = get_layout("ntu25")
COCO = get_layout("coco17")


def _data(layout, shape_prefix=(), t=6, m=2, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(*shape_prefix, len(layout.channels), t, layout.num_joints, m)).astype(np.float32)
    if layout.channels[-1] == "score":
        x[..., -1, :, :, :] = rng.uniform(size=x[..., -1, :, :, :].shape)
    return x


def _reference_bone(x: np.ndarray, layout) -> np.ndarray:
    """Slow transcription of MMAction2 JointToBone on (C, T, V, M) (it works on (M, T, V, C))."""
    kp = x.transpose(3, 1, 2, 0)
    out = np.zeros_like(kp)
    for child, parent in layout.bones:
        out[..., child, :] = kp[..., child, :] - kp[..., parent, :]
        if layout.channels[-1] == "score":
            out[..., child, 2] = (kp[..., child, 2] + kp[..., parent, 2]) / 2
    return out.transpose(3, 1, 2, 0)


def _reference_motion(x: np.ndarray, layout) -> np.ndarray:
    """Slow transcription of MMAction2 ToMotion on (C, T, V, M)."""
    kp = x.transpose(3, 1, 2, 0)
    out = np.zeros_like(kp)
    t = kp.shape[1]
    for i in range(t - 1):
        out[:, i] = kp[:, i + 1] - kp[:, i]
        if layout.channels[-1] == "score":
            out[:, i, :, 2] = (kp[:, i, :, 2] + kp[:, i + 1, :, 2]) / 2
    return out.transpose(3, 1, 2, 0)


def test_stream_names():
    assert STREAMS == ("joint", "bone", "joint-motion", "bone-motion")
    with pytest.raises(AgcnError, match="joint, bone, joint-motion, bone-motion"):
        compute_stream(_data(NTU), "bones", NTU)


def test_centre_joint_bone_is_zero():
    b = bone(_data(NTU), NTU)
    assert np.all(b[:, :, 20] == 0)  # spine-shoulder is its own parent: pair (20, 20)
    c = bone(_data(COCO), COCO)
    assert np.all(c[:2, :, 0] == 0)  # the nose's x, y; its score stays the nose's score


def test_bone_of_straight_chain_is_segment_vector():
    # Put NTU's left arm on a line: shoulder 4, elbow 5, wrist 6, hand 7 at x = 0, 1, 3, 6.
    x = np.zeros((3, 2, 25, 1), dtype=np.float32)
    for joint, pos in zip((4, 5, 6, 7), (0.0, 1.0, 3.0, 6.0), strict=True):
        x[0, :, joint, 0] = pos
    b = bone(x, NTU)
    np.testing.assert_array_equal(b[0, :, 5:8, 0], [[1.0, 2.0, 3.0]] * 2)
    assert np.all(b[1:] == 0)


@pytest.mark.parametrize("layout", [NTU, COCO], ids=lambda lay: lay.name)
def test_matches_reference_transcription(layout):
    x = _data(layout, t=7)
    np.testing.assert_allclose(bone(x, layout), _reference_bone(x, layout), rtol=0, atol=1e-6)
    np.testing.assert_allclose(motion(x, layout), _reference_motion(x, layout), rtol=0, atol=1e-6)
    bm = _reference_motion(_reference_bone(x, layout), layout)
    np.testing.assert_allclose(compute_stream(x, "bone-motion", layout), bm, rtol=0, atol=1e-6)


def test_score_channel_rule_coco():
    x = _data(COCO, t=4)
    b = bone(x, COCO)
    # left knee 13's parent is left hip 11
    np.testing.assert_allclose(b[2, :, 13], (x[2, :, 13] + x[2, :, 11]) / 2, rtol=1e-6)
    np.testing.assert_allclose(b[:2, :, 13], x[:2, :, 13] - x[:2, :, 11], rtol=1e-6)
    mo = motion(x, COCO)
    np.testing.assert_allclose(mo[2, :3], (x[2, 1:] + x[2, :3]) / 2, rtol=1e-6)
    assert np.all(mo[:, 3] == 0)  # the last frame, score included


def test_last_motion_frame_is_zero():
    for stream in ("joint-motion", "bone-motion"):
        out = compute_stream(_data(NTU), stream, NTU)
        assert np.all(out[:, -1] == 0)
        assert np.any(out[:, -2] != 0)


@pytest.mark.parametrize("layout", [NTU, COCO], ids=lambda lay: lay.name)
def test_bone_and_motion_commute(layout):
    x = _data(layout, (3,), t=8)
    nf = np.array([8, 5, 1])
    a = motion(bone(x, layout, nf), layout, nf)
    b = bone(motion(x, layout, nf), layout, nf)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("prefix", [(), (4,)], ids=["CTVM", "NCTVM"])
def test_shape_and_dtype_preserved(stream, prefix):
    x = _data(NTU, prefix)
    out = compute_stream(x, stream, NTU)
    assert out.shape == x.shape and out.dtype == np.float32
    out64 = compute_stream(x.astype(np.float64), stream, NTU)
    assert out64.dtype == np.float64


def test_batched_equals_per_sample():
    x = _data(COCO, (3,), t=5)
    nf = np.array([5, 2, 4])
    for stream in STREAMS:
        batch = compute_stream(x, stream, COCO, num_frames=nf)
        for n in range(3):
            np.testing.assert_array_equal(batch[n], compute_stream(x[n], stream, COCO, num_frames=int(nf[n])))


@pytest.mark.parametrize("layout", [NTU, COCO], ids=lambda lay: lay.name)
def test_frames_beyond_num_frames_stay_zero_and_do_not_leak(layout):
    real = _data(layout, t=4, seed=1)
    padded = np.concatenate([real, _data(layout, t=3, seed=2)], axis=1)  # junk padding, not zeros
    for stream in STREAMS:
        out = compute_stream(padded, stream, layout, num_frames=4)
        assert np.all(out[:, 4:] == 0)
        # the real frames equal the stream of the unpadded sequence (motion of frame 3 is zero)
        np.testing.assert_allclose(out[:, :4], compute_stream(real, stream, layout), rtol=0, atol=1e-6)


def test_input_not_modified_and_shape_errors():
    x = _data(COCO)
    before = x.copy()
    for stream in STREAMS:
        compute_stream(x, stream, COCO, num_frames=3)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(AgcnError, match="17 joints"):
        compute_stream(_data(COCO), "bone", NTU)
    with pytest.raises(AgcnError, match=r"\(C, T, V, M\)"):
        compute_stream(np.zeros((3, 4, 25)), "bone", NTU)
    with pytest.raises(AgcnError, match="2 entries"):
        compute_stream(_data(NTU, (3,)), "bone", NTU, num_frames=np.array([1, 2]))
