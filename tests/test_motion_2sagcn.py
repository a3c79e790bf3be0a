"""Motion in 2s-AGCN's full window: joint-motion and bone-motion of 2s-agcn NTU data under
`--sampling full` are lshiwjx/2s-AGCN's gen_motion_data (and gen_bone_data) of the padded
300-frame array, against a transcription of those scripts (`tests/reference/gen_streams.py`),
in training, eval and predict; other data and uniform sampling keep motion of the real frames."""

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agcn_cli.engine.data import BatchLoader, SkeletonDataset, _EpochBatches
from agcn_cli.evaluation.scoring import checkpoint_views, scoring_dataset
from agcn_cli.io.checkpoint import DataInfo
from agcn_cli.io.splitwrite import SampleMeta, SplitWriter
from agcn_cli.io.streamfile import materialize_streams
from agcn_cli.skeleton.augment import draw_choose
from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.skeleton.streams import compute_stream, window_motion
from agcn_cli.skeleton.views import sample_views
from agcn_cli.skeleton.window import window_padding
from agcn_cli.sources.samples import open_input
from tests.helpers import write_split
from tests.reference.gen_streams import ref_gen_bone, ref_gen_motion
from tests.reference.preprocess import ref_2sagcn_sample

MOTIONS = ("joint-motion", "bone-motion")
# agcn's padded joint window equals the reference's to the float32 rounding of the normalisation
# (max 4.8e-7 here, recipes.md); motion differences two such frames (max 6.3e-7 here)
ATOL = 1e-6


def reference_stream(joint: np.ndarray, stream: str) -> np.ndarray:
    """The reference's `stream` array of one padded joint array (C, 300, V, M), as its scripts make it."""
    data = joint[None]  # (1, C, T, V, M), a file of one sample
    if stream == "bone-motion":
        data = ref_gen_bone(data)
    return ref_gen_motion(data)[0]


def whole_window(ds: SkeletonDataset) -> tuple[np.ndarray, np.ndarray]:
    (x, _, idx), *_ = BatchLoader(ds, len(ds), shuffle=False)
    return x.numpy(), idx.numpy()


def test_window_motion_is_the_transcription():
    """The definition itself, on any array: exactly the scripts' loops (agcn's NTU bone table is
    gen_bone_data's); `stop` ends the window early, as a run of it needs."""
    layout = get_layout("ntu25")
    x = np.random.default_rng(0).normal(size=(2, 3, 12, 25, 2)).astype(np.float32)
    np.testing.assert_array_equal(window_motion(x, "joint-motion", layout), ref_gen_motion(x))
    np.testing.assert_array_equal(window_motion(x, "bone-motion", layout), ref_gen_motion(ref_gen_bone(x)))
    cut = window_motion(x, "joint-motion", layout, stop=np.array([12, 5]))
    np.testing.assert_array_equal(cut[0], ref_gen_motion(x)[0])
    np.testing.assert_array_equal(cut[1, :, :4], ref_gen_motion(x)[1, :, :4])
    assert not cut[1, :, 4:].any()


@pytest.mark.parametrize("stream", MOTIONS)
def test_full_window_motion_is_the_references(ntu_2sagcn, stream):
    """Eval's view (one view of the whole window): the reference's motion of its padded array. The
    last real frame carries the jump into the padding, frame 299 is zero."""
    raw, split, cases = ntu_2sagcn
    ds = SkeletonDataset(split, stream, test_mode=True, window=300)
    assert ds.motion_after_padding and ds.base == ds.source == "joint" and not ds.derive
    joints, _ = whole_window(SkeletonDataset(split, "joint", test_mode=True, window=300))
    x, idx = whole_window(ds)
    assert x.shape == (len(cases), 3, 300, 25, 2)
    for n, i in enumerate(idx):
        name = ds.names[i]
        ref = reference_stream(ref_2sagcn_sample(raw / f"{name}.skeleton"), stream)
        np.testing.assert_allclose(x[n], ref, atol=ATOL, rtol=0, err_msg=cases[int(name[-3:]) - 1])
        # exactly the scripts' steps on agcn's own padded joints: the definition, without the rounding
        np.testing.assert_array_equal(x[n], reference_stream(joints[n], stream))
        t = int(ds.num_frames[i])
        assert not x[n, :, 299].any() and x[n, :, t - 1, :, 0].any()  # the padding restarts the person: a jump


def test_last_real_frame_carries_the_jump_into_the_padding(ntu_2sagcn):
    """Where motion of the real frames (agcn's before, and still for other data) has zero, at each
    sample's last real frame, the reference's array holds the jump to the first padding frame."""
    raw, split, _ = ntu_2sagcn
    ds = SkeletonDataset(split, "joint-motion", test_mode=True, window=300)
    joint = SkeletonDataset(split, "joint")
    x, idx = whole_window(ds)
    for n, i in enumerate(idx):
        t = int(ds.num_frames[i])
        assert not real_motion(joint, i, "joint-motion")[:, t - 1].any()
        ref = reference_stream(ref_2sagcn_sample(raw / f"{ds.names[i]}.skeleton"), "joint-motion")
        assert np.abs(ref[:, t - 1]).max() > 0.01
        np.testing.assert_allclose(x[n, :, t - 1], ref[:, t - 1], atol=ATOL, rtol=0)


@pytest.mark.parametrize(("stream", "choose"), [("joint-motion", 150), ("bone-motion", 299)])
def test_training_runs_are_runs_of_the_references_motion(ntu_2sagcn, stream, choose):
    """random_choose crops the reference's motion array, as its feeder crops the motion .npy; a
    run ending at the window's end ends with its zero frame."""
    raw, split, _ = ntu_2sagcn
    train = SkeletonDataset(split, stream, window=300, random_choose=choose)
    batches = BatchLoader(train, len(train), seed=2).batches(0)
    x, _, idx = _EpochBatches(train, batches, (2, 0, 0))[0]
    starts = draw_choose(np.random.default_rng([2, 0, 0, 0]), len(train), 300, choose)
    assert x.shape == (len(train), 3, choose, 25, 2)
    if choose == 299:
        assert set(starts) == {0, 1}  # both a run inside the window and one ending with it
    for n, i in enumerate(idx.numpy()):
        ref = reference_stream(ref_2sagcn_sample(raw / f"{train.names[i]}.skeleton"), stream)
        want = ref[:, starts[n] : starts[n] + choose]
        np.testing.assert_allclose(x[n].numpy(), want, atol=ATOL, rtol=0, err_msg=train.names[i])


def test_stored_motion_is_not_used_in_the_window(ntu_2sagcn, tmp_path):
    """`agcn streams` stores motion of the real frames: the window derives its own from joint."""
    _, split, _ = ntu_2sagcn
    copy = tmp_path / "train.h5"
    shutil.copy(split, copy)
    materialize_streams(copy, list(MOTIONS))
    for stream in MOTIONS:
        plain = SkeletonDataset(split, stream, test_mode=True, window=300)
        stored = SkeletonDataset(copy, stream, test_mode=True, window=300)
        assert stored.source == "joint" and not stored.derive
        np.testing.assert_array_equal(whole_window(stored)[0], whole_window(plain)[0])
        # outside the window: derived per batch from the shared joints (data_specs/hdf5.md, "Joint
        # cache"); with the cache off, the stored stream is read, as before
        assert SkeletonDataset(copy, stream, test_mode=True).source == "joint"


@pytest.mark.parametrize("stream", MOTIONS)
def test_eval_and_predict_use_the_checkpoints_definition(ntu_2sagcn, stream):
    """A checkpoint's recipe and window fix the definition: eval's batches and predict's view of raw
    .skeleton files and of the split file (the one clip path, a batch of one) are the reference's."""
    raw, split, cases = ntu_2sagcn
    layout = get_layout("ntu25")
    data = DataInfo(modality=stream, recipe="2s-agcn", test_window=300)
    ds = scoring_dataset(split, data)
    assert ds.motion_after_padding
    x, idx = whole_window(ds)
    evaluated = {ds.names[i]: x[n] for n, i in enumerate(idx)}
    for path in (raw, split):
        inp = open_input(path, recipe="2s-agcn", layout=layout)
        padding = window_padding({"source": inp.source, "recipe": inp.recipe})
        seen = 0
        for item in inp.samples():
            (view,) = sample_views(item.data, replace(checkpoint_views(data), padding=padding, layout=layout), item.pad)
            ref = reference_stream(ref_2sagcn_sample(raw / f"{item.name}.skeleton"), stream)
            np.testing.assert_allclose(view, ref, atol=ATOL, rtol=0, err_msg=f"{path.name}: {item.name}")
            if path == split:
                np.testing.assert_array_equal(view, evaluated[item.name])
            seen += 1
        assert seen == len(cases)


# ---- the other data and uniform sampling: motion of the real frames, as before ------------------


def _kinetics(path: Path, lengths) -> Path:
    rng = np.random.default_rng(5)
    attrs = {"layout": "openpose18", "channels": "x,y,score", "normalized": True, "num_classes": 3,
             "split": "train", "recipe": "2s-agcn", "source": "kinetics-skeleton"}  # fmt: skip
    with SplitWriter(path, attrs, num_persons=2, num_joints=18, num_channels=3) as w:
        for i, t in enumerate(lengths):
            w.append(rng.normal(size=(2, t, 18, 3)).astype(np.float32), SampleMeta(f"v{i:03d}", i % 3), 2)
    return path


def real_motion(joint: SkeletonDataset, i: int, stream: str) -> np.ndarray:
    """(C, T, V, M) motion of sample i's real frames, as agcn has always derived it."""
    t = int(joint.num_frames[i])
    real = joint.frames[:, joint.offset[i] : joint.offset[i] + t]
    return compute_stream(real, stream, joint.layout)


@pytest.mark.parametrize("stream", MOTIONS)
def test_other_data_keep_motion_of_the_real_frames(tmp_path, stream):
    """MMAction2 data loop the real frames' motion, Kinetics pads it with zeros (full window)."""
    mm = write_split(tmp_path / "m.h5", (7, 20, 12))  # recipe mmaction2, looped
    kin = _kinetics(tmp_path / "k.h5", (7, 20, 12))  # recipe 2s-agcn, source kinetics-skeleton: zeros
    for path, padding in ((mm, "loop"), (kin, "zero")):
        ds = SkeletonDataset(path, stream, test_mode=True, window=16)
        assert not ds.motion_after_padding and ds.base == stream and ds.derive
        joint = SkeletonDataset(path, "joint")
        x, idx = whole_window(ds)
        for n, i in enumerate(idx):
            motion = real_motion(joint, i, stream)
            t = motion.shape[1]
            if padding == "loop":
                want = motion[:, np.arange(16) % t]
            else:
                want = np.zeros((motion.shape[0], 16, *motion.shape[2:]), np.float32)
                want[:, : min(t, 16)] = motion[:, :16]
            np.testing.assert_array_equal(x[n], want, err_msg=f"{padding} {i}")


@pytest.mark.parametrize("stream", MOTIONS)
def test_uniform_sampling_keeps_motion_of_the_real_frames(ntu_2sagcn, stream):
    """2s-agcn data under uniform clips: motion of the real frames at the test clips' frames."""
    _, split, _ = ntu_2sagcn
    ds = SkeletonDataset(split, stream, clip_len=20, num_clips=2, test_mode=True)
    assert not ds.motion_after_padding and ds.derive
    joint = SkeletonDataset(split, "joint")
    indices = np.arange(len(ds))
    frames = ds.batch_frame_indices(indices, None)  # (N, K, L)
    x = ds.clips(indices, None).numpy()  # (N, K, C, L, V, M)
    for i in indices:
        np.testing.assert_array_equal(x[i], real_motion(joint, i, stream)[:, frames[i]].swapaxes(0, 1))
