"""The data pipeline: shapes, streams materialised vs on the fly, sampling, loaders, normalisation."""

import shutil
import sys

import h5py
import numpy as np
import pytest
import torch

from agcn_cli.engine.data import BatchLoader, SkeletonDataset
from agcn_cli.errors import AgcnError
from agcn_cli.io.streamfile import materialize_streams
from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.skeleton.persons import fit_persons
from agcn_cli.skeleton.sampling import sample_batch_indices, sample_test_clips
from agcn_cli.skeleton.streams import DERIVED_STREAMS, STREAMS, compute_stream
from tests.helpers import write_split

LENGTHS = (5, 12, 1, 30, 17, 8, 23, 40, 9, 16)  # around clip_len 8: shorter, between, longer


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same split twice: joints only, and with all streams materialised."""
    d = tmp_path_factory.mktemp("data")
    plain = write_split(d / "plain.h5", LENGTHS)
    full = d / "full.h5"
    shutil.copyfile(plain, full)
    materialize_streams(full, list(DERIVED_STREAMS))
    return plain, full


def reference_clips(path, stream: str, i: int, frame_idx: np.ndarray) -> np.ndarray:
    """Sample i's clips computed the slow, obvious way: its joints read alone, persons fitted,
    the stream derived on the whole sequence, then frames picked: (..., C, L, V, M)."""
    with h5py.File(path) as f:
        start, t = int(f["offset"][i]), int(f["num_frames"][i])
        joints = fit_persons(f["joint"][start : start + t], axis=1).transpose(3, 0, 2, 1)  # (C, T, V, M)
        layout = get_layout(f.attrs["layout"])
    full = compute_stream(joints, stream, layout)
    return np.moveaxis(full[:, frame_idx], 0, -4)  # frame_idx (..., L) -> (..., C, L, V, M)


def all_batches(loader):
    return [(x.clone(), y, i) for x, y, i in loader]


@pytest.mark.parametrize("stream", STREAMS)
def test_materialised_equals_on_the_fly(files, stream, monkeypatch):
    """Three ways to the same batches, bit for bit: the stream stored by `agcn streams` and read into
    this process's memory; derived from the joints at load time into it (both with the joint cache
    off, as before issue 27); derived per batch from the shared joint cache (the default)."""
    plain, full = files
    for kw in ({"test_mode": True, "num_clips": 3}, {"test_mode": False}):
        shared = SkeletonDataset(full, stream, clip_len=8, **kw)
        monkeypatch.setenv("AGCN_JOINT_CACHE", "off")
        fly = SkeletonDataset(plain, stream, clip_len=8, **kw)
        mat = SkeletonDataset(full, stream, clip_len=8, **kw)
        monkeypatch.delenv("AGCN_JOINT_CACHE")
        assert shared.shared and not fly.shared and not mat.shared
        assert fly.derive == (stream != "joint") and not mat.derive
        np.testing.assert_array_equal(fly.frames, mat.frames)
        np.testing.assert_array_equal(shared.frames, mat.frames)
        loaders = [BatchLoader(ds, 4, seed=7) for ds in (fly, mat, shared)]
        for (a, ya, ia), (b, yb, ib), (c, yc, ic) in zip(*loaders, strict=True):
            assert torch.equal(a, b) and torch.equal(ya, yb) and torch.equal(ia, ib)
            assert torch.equal(a, c) and torch.equal(ya, yc) and torch.equal(ia, ic)


def test_on_the_fly_stream_is_derived_before_sampling(files):
    plain, _ = files
    ds = SkeletonDataset(plain, "joint-motion", clip_len=8, num_clips=2, test_mode=True)
    for i in (1, 3):  # 12 and 30 frames: the clip skips frames, so motion differs from x[t+1]-x[t] of the clip
        idx = sample_test_clips(int(ds.num_frames[i]), 8, num_clips=2)
        got = ds.gather(np.array([i]), ds.batch_frame_indices(np.array([i]), np.random.default_rng(0)))[0]
        np.testing.assert_array_equal(got.numpy(), reference_clips(plain, "joint-motion", i, idx))


def test_shapes_dtypes_labels(files):
    plain, _ = files
    x, y, i = next(iter(BatchLoader(SkeletonDataset(plain, "bone", clip_len=8), 4, seed=0)))
    assert x.shape == (4, 3, 8, 25, 2) and x.dtype == torch.float32 and y.dtype == i.dtype == torch.int64
    ds = SkeletonDataset(plain, clip_len=8, num_clips=4, test_mode=True)
    x = ds.gather(np.array([2]), ds.batch_frame_indices(np.array([2]), None))[0]  # a 1-frame sample
    assert x.shape == (4, 3, 8, 25, 2)
    assert torch.equal(x, x[:, :, :1].expand_as(x))  # looped


def test_test_clips_deterministic_across_instances_and_workers(files):
    plain, _ = files
    a = SkeletonDataset(plain, "bone", clip_len=8, num_clips=3, test_mode=True)
    b = SkeletonDataset(plain, "bone", clip_len=8, num_clips=3, test_mode=True)
    one = all_batches(BatchLoader(a, 3))
    two = all_batches(BatchLoader(b, 3, num_workers=2))
    assert len(one) == len(two) == 4
    for (x1, y1, i1), (x2, y2, i2) in zip(one, two, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(i1, i2)
    assert torch.equal(torch.cat([i for _, _, i in one]), torch.arange(len(a)))  # test mode: no shuffling


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")
def test_workers_share_the_in_memory_split(files, monkeypatch):
    plain, _ = files
    ds = SkeletonDataset(plain, clip_len=8, test_mode=True)
    expected = [x for x, _, _ in BatchLoader(ds, 4)]

    def refuse(self):
        raise RuntimeError("the dataset was pickled for a worker")

    monkeypatch.setattr(SkeletonDataset, "__getstate__", refuse, raising=False)  # forkserver or spawn would pickle it
    got = [x for x, _, _ in BatchLoader(ds, 4, num_workers=2)]
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_train_randomness_seeded(files):
    plain, _ = files
    ds = SkeletonDataset(plain, clip_len=8)

    def epochs(seed, **kw):
        torch.manual_seed(0)  # unrelated global state must not matter
        np.random.seed(0)
        loader = BatchLoader(ds, 4, seed=seed, **kw)
        return [torch.cat([x for x, _, _ in loader]) for _ in range(2)]

    e1, e2 = epochs(5)
    assert not torch.equal(e1, e2)  # a new order and new frames each epoch
    r1, r2 = epochs(5, num_workers=2)
    assert torch.equal(e1, r1) and torch.equal(e2, r2)  # reproducible, with workers too
    assert not torch.equal(e1, epochs(6)[0])


def test_gather_equals_per_sample(files):
    plain, full = files
    for stream in ("joint", "bone-motion"):
        mem = SkeletonDataset(full, stream, clip_len=8)
        indices = np.array([3, 0, 7, 2, 3])
        frames = sample_batch_indices(mem.num_frames[indices], 8, np.random.default_rng(0))
        batch = mem.gather(indices, frames)
        assert batch.shape == (5, 3, 8, 25, 2)
        for n, i in enumerate(indices):
            np.testing.assert_array_equal(batch[n].numpy(), reference_clips(plain, stream, i, frames[n]))


@pytest.mark.parametrize("num_clips", [1, 3])
def test_batch_loader_test_mode_equals_per_sample_clips(files, num_clips):
    plain, _ = files
    ds = SkeletonDataset(plain, "joint-motion", clip_len=8, num_clips=num_clips, test_mode=True)
    batches = list(BatchLoader(ds, 4, num_workers=0))
    assert len(batches) == 3
    assert batches[0][0].shape == ((4, 3, 8, 25, 2) if num_clips == 1 else (4, num_clips, 3, 8, 25, 2))
    for x, y, idx in batches:
        assert torch.equal(y, torch.from_numpy(ds.labels[idx.numpy()]))
        for n, i in enumerate(idx.tolist()):
            clips = sample_test_clips(int(ds.num_frames[i]), 8, num_clips=num_clips)
            expected = reference_clips(plain, "joint-motion", i, clips)
            np.testing.assert_array_equal(x[n].numpy(), expected[0] if num_clips == 1 else expected)


def test_batch_loader_training(files):
    plain, _ = files
    ds = SkeletonDataset(plain, "bone", clip_len=8)
    loader = BatchLoader(ds, 4, seed=1, prefetch=0)
    e0 = list(loader)
    e1 = list(loader)  # the epoch advanced by itself
    assert len(loader) == len(e0) == 3 and [len(y) for _, y, _ in e0] == [4, 4, 2]
    assert sorted(torch.cat([i for _, _, i in e0]).tolist()) == list(range(len(ds)))
    assert not torch.equal(torch.cat([i for _, _, i in e0]), torch.cat([i for _, _, i in e1]))
    for x, y, idx in e0:
        assert x.shape == (len(y), 3, 8, 25, 2) and torch.equal(y, torch.from_numpy(ds.labels[idx.numpy()]))
    # same epoch again: identical batches, whatever the workers or the prefetch thread
    for kw in ({"num_workers": 2}, {"prefetch": 2}):
        again = BatchLoader(ds, 4, seed=1, **kw)
        again.set_epoch(1)
        for (x1, _, i1), (x2, _, i2) in zip(e1, list(again), strict=True):
            assert torch.equal(x1, x2) and torch.equal(i1, i2)
    # drop_last, and a consumer that stops early does not hang
    assert len(list(BatchLoader(ds, 4, drop_last=True))) == len(BatchLoader(ds, 4, drop_last=True)) == 2
    for _ in BatchLoader(ds, 1, prefetch=1):
        break


def test_batch_loader_sharding(files):
    plain, _ = files
    ds = SkeletonDataset(plain, clip_len=8)  # 10 samples
    shards = [
        [i for _, _, idx in BatchLoader(ds, 2, seed=0, rank=r, world_size=3) for i in idx.tolist()] for r in range(3)
    ]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded by wrapping, as DistributedSampler
    assert set(sum(shards, [])) == set(range(10))
    dropped = [
        [i for _, _, idx in BatchLoader(ds, 2, seed=0, rank=r, world_size=3, drop_last=True) for i in idx.tolist()]
        for r in range(3)
    ]
    assert [len(s) for s in dropped] == [2, 2, 2] and len(set(sum(dropped, []))) == 6
    with pytest.raises(AgcnError, match="rank 3 is outside 0..2"):
        BatchLoader(ds, 2, rank=3, world_size=3)


def test_persons_padded_and_truncated(tmp_path):
    one = write_split(tmp_path / "one.h5", [6, 9], persons=1)
    three = write_split(tmp_path / "three.h5", [6, 9], persons=3)
    idx = sample_test_clips(9, 4)
    ds = SkeletonDataset(one, "bone", clip_len=4, test_mode=True)
    x = ds.gather(np.array([1]), idx[None])[0, 0]
    assert x.shape == (3, 4, 25, 2) and x[..., 1].abs().sum() == 0 and x[..., 0].abs().sum() > 0
    x3 = SkeletonDataset(three, clip_len=4, test_mode=True).gather(np.array([1]), idx[None])[0, 0]
    with h5py.File(three) as f:
        first_two = f["joint"][6:15, :2].transpose(3, 0, 2, 1)  # (C, T, V, M=2)
    np.testing.assert_array_equal(x3.numpy(), first_two[:, idx[0]])
    assert fit_persons(np.ones((3, 1, 25, 3)), axis=1).shape == (3, 2, 25, 3)


def test_errors_list_allowed_values(files, tmp_path):
    plain, _ = files
    with pytest.raises(
        AgcnError, match="unknown stream 'bones'; choose one of: joint, bone, joint-motion, bone-motion"
    ):
        SkeletonDataset(plain, "bones")
    with pytest.raises(AgcnError, match="no such file"):
        SkeletonDataset(tmp_path / "nope.h5")
    with pytest.raises(AgcnError, match="at least 1"):
        SkeletonDataset(plain, clip_len=0)


def test_not_normalized_files_are_refused(tmp_path):
    # every agcn writer pre-normalises; a file that says otherwise is refused where it is opened
    path = write_split(tmp_path / "raw.h5", [10, 14, 6], normalized=False)
    with pytest.raises(AgcnError, match=r"raw.h5: joints are not pre-normalised \(normalized=False\)"):
        SkeletonDataset(path, "bone-motion", clip_len=4, test_mode=True)
    with pytest.raises(AgcnError, match="normalized=False"):
        materialize_streams(path, ["bone"])
