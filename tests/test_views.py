"""The one clip path (`skeleton.views`): the views of a batch of samples held back to back, and of one
sample (`agcn predict`'s batch of one), against the references: lshiwjx/2s-AGCN's padded 300-frame
arrays (`tests/reference/preprocess.py`), its gen_bone_data / gen_motion_data
(`tests/reference/gen_streams.py`) and its feeder's random_choose run; MMAction2's fixed-seed test
clips of each sample's stream of real frames, its `PadTo(mode='loop')`, Kinetics-Skeleton's zeros."""

from dataclasses import replace

import numpy as np
import pytest

from agcn_cli.engine.data import SkeletonDataset
from agcn_cli.errors import AgcnError
from agcn_cli.evaluation.scoring import checkpoint_views
from agcn_cli.io.checkpoint import DataInfo
from agcn_cli.io.splitfile import read_samples
from agcn_cli.skeleton.augment import draw_choose
from agcn_cli.skeleton.sampling import sample_test_clips
from agcn_cli.skeleton.streams import STREAMS, compute_stream
from agcn_cli.skeleton.views import ViewSpec, cut_views, sample_views
from tests.helpers import write_split
from tests.reference.gen_streams import ref_gen_bone, ref_gen_motion
from tests.reference.preprocess import ref_2sagcn_sample
from tests.test_motion_2sagcn import _kinetics

# agcn's padded joint window equals the reference's to the float32 rounding of the normalisation
# (recipes.md: max 4.8e-7 for joints, 6.3e-7 for motion, which differences two such frames)
ATOL = 1e-6


def reference(raw, name: str, stream: str, window: int) -> np.ndarray:
    """The reference's `stream` (C, window, V, M) of one sample: its padded array cut to the window
    (a shorter window keeps the first frames), bone and motion made by its scripts from that."""
    data = ref_2sagcn_sample(raw / f"{name}.skeleton")[None, :, :window]  # (1, C, W, V, M)
    if stream.startswith("bone"):
        data = ref_gen_bone(data)
    return (ref_gen_motion(data) if stream.endswith("motion") else data)[0]


def batch(ds: SkeletonDataset, order: np.ndarray, rng=None) -> np.ndarray:
    """`cut_views` of samples `order` of a dataset's frames in memory, as its loader calls it."""
    pads = None if ds.pads is None else ds.pads.take(order)
    return cut_views(ds.frames, ds.offset[order], ds.num_frames[order], ds.spec, pads, rng)


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("window", [300, 60])
def test_window_views_of_a_batch_are_the_references(ntu_2sagcn, stream, window):  # noqa: F811
    """One view of the whole window per sample, in any batch order (a sample twice): the
    reference's array, each person with its own period; motion that of the padded window; a
    window shorter than a sample keeps its first frames, the last of them zero in motion."""
    raw, split, cases = ntu_2sagcn
    ds = SkeletonDataset(split, stream, test_mode=True, window=window)
    order = np.array([3, 0, 10, 5, 5, 9, 1, 2, 4, 6, 7, 8])
    views = batch(ds, order)
    assert views.shape == (len(order), 1, 3, window, 25, 2) and views.dtype == np.float32
    assert max(ds.num_frames) > 60  # the long sample is cut by the short window
    for n, i in enumerate(order):
        want = reference(raw, ds.names[i], stream, window)
        np.testing.assert_allclose(views[n, 0], want, atol=ATOL, rtol=0, err_msg=cases[i])


@pytest.mark.parametrize("stream", ["joint", "bone", "bone-motion"])
def test_training_runs_are_the_references_random_choose(ntu_2sagcn, stream):  # noqa: F811
    """Training in the window: a run of random_choose frames drawn from the batch's generator,
    the run of the reference's array (of its motion array: the feeder crops what gen_motion made)."""
    raw, split, _ = ntu_2sagcn
    ds = SkeletonDataset(split, stream, window=300, random_choose=150)
    order = np.arange(len(ds))[::-1]
    views = batch(ds, order, np.random.default_rng(7))
    starts = draw_choose(np.random.default_rng(7), len(order), 300, 150)
    assert views.shape == (len(order), 1, 3, 150, 25, 2) and len(set(starts)) > 1
    for n, i in enumerate(order):
        want = reference(raw, ds.names[i], stream, 300)[:, starts[n] : starts[n] + 150]
        np.testing.assert_allclose(views[n, 0], want, atol=ATOL, rtol=0, err_msg=ds.names[i])


@pytest.mark.parametrize("stream", STREAMS)
def test_one_sample_is_a_batch_of_one(ntu_2sagcn, stream):  # noqa: F811
    """`agcn predict`'s views of a sample as read from the split file (its stream derived on the
    sequence, its window facts read with it) are the batch's, bit for bit."""
    _, split, _ = ntu_2sagcn
    for window in (0, 300):
        ds = SkeletonDataset(split, stream, clip_len=30, num_clips=1 if window else 4, test_mode=True, window=window)
        views = batch(ds, np.arange(len(ds)))
        spec = replace(ds.spec, layout=ds.layout)
        for n, (joint, _, pad) in enumerate(read_samples(split, range(len(ds)))):
            np.testing.assert_array_equal(sample_views(joint.transpose(3, 1, 2, 0), spec, pad), views[n])


@pytest.mark.parametrize("stream", STREAMS)
def test_clips_and_loops_of_a_batch_are_each_samples(tmp_path, stream):
    """Uniform clips: each sample's MMAction2 test clips (seed 255) of its stream of real frames.
    The window of other data: MMAction2's data looped (`PadTo`), Kinetics-Skeleton zero-padded."""
    mm, kin = write_split(tmp_path / "m.h5", (7, 20, 12, 1, 30)), _kinetics(tmp_path / "k.h5", (7, 20, 12))
    order = np.array([2, 0, 1, 1])
    for path, spec in (
        (mm, ViewSpec(stream, clip_len=8, num_clips=3)),
        (mm, ViewSpec(stream, window=16, padding="loop")),
        (kin, ViewSpec(stream, window=16, padding="zero")),
    ):
        ds = SkeletonDataset(
            path, stream, clip_len=spec.clip_len, num_clips=spec.num_clips, test_mode=True, window=spec.window
        )
        assert ds.spec == replace(spec, layout=ds.layout)
        views = batch(ds, order)
        joint = SkeletonDataset(path, "joint")
        for n, i in enumerate(order):
            t = int(joint.num_frames[i])
            real = compute_stream(joint.frames[:, joint.offset[i] : joint.offset[i] + t], stream, joint.layout)
            if not spec.window:
                want = real[:, sample_test_clips(t, 8, num_clips=3)].swapaxes(0, 1)  # (K, C, L, V, M)
            elif spec.padding == "loop":
                want = real[:, np.arange(16) % t][None]
            else:
                want = np.zeros((1, real.shape[0], 16, *real.shape[2:]), np.float32)
                want[0, :, : min(t, 16)] = real[:, :16]
            np.testing.assert_array_equal(views[n], want, err_msg=f"{path.name} {spec}")


def test_checkpoint_views_and_the_one_refusal():
    """The views a checkpoint asks for; --clips or --clip-len for a full-window checkpoint are
    refused, in agcn eval's words or, naming the checkpoint, agcn predict's."""
    assert checkpoint_views(DataInfo(modality="bone", clip_len=40)) == ViewSpec("bone", clip_len=40, num_clips=10)
    assert checkpoint_views(DataInfo(clip_len=40), clips=2, clip_len=8) == ViewSpec(clip_len=8, num_clips=2)
    window = DataInfo(modality="joint-motion", recipe="2s-agcn", test_window=300)
    assert checkpoint_views(window, clips=1) == ViewSpec("joint-motion", window=300)
    with pytest.raises(AgcnError, match=r"tested on one view of it; drop --clips 3 and --clip-len 9$"):
        checkpoint_views(window, clips=3, clip_len=9)
    with pytest.raises(AgcnError, match=r"^w\.pt: trained on .* drop --clips and --clip-len$"):
        checkpoint_views(window, clip_len=9, owner="w.pt")
