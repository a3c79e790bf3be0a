"""The data pipeline: shapes, streams materialised vs on the fly, sampling, loaders, normalisation."""

import shutil
import sys

import h5py
import numpy as np
import pytest
import torch
from test_streams_h5 import write_split

from agcn_cli.engine.data import BatchLoader, SkeletonDataset, make_loader
from agcn_cli.errors import AgcnError
from agcn_cli.io.streamfile import materialize_streams
from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.skeleton.normalize import pre_normalize_2d, pre_normalize_3d
from agcn_cli.skeleton.persons import fit_persons
from agcn_cli.skeleton.sampling import sample_batch_indices, uniform_sample_indices
from agcn_cli.skeleton.streams import DERIVED_STREAMS, STREAMS, compute_stream

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


def _items(ds, indices=None):
    return [ds[i] for i in (range(len(ds)) if indices is None else indices)]


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("in_memory", [False, True])
def test_materialised_equals_on_the_fly(files, stream, in_memory):
    plain, full = files
    for kw in ({"test_mode": True, "num_clips": 3}, {"test_mode": False, "seed": 7}):
        fly = SkeletonDataset(plain, stream, clip_len=8, in_memory=in_memory, **kw)
        mat = SkeletonDataset(full, stream, clip_len=8, in_memory=not in_memory, **kw)
        assert fly.derive == (stream != "joint") and not mat.derive
        for (a, ya, ia), (b, yb, ib) in zip(_items(fly), _items(mat), strict=True):
            assert torch.equal(a, b) and ya == yb and ia == ib


def test_on_the_fly_stream_is_derived_before_sampling(files):
    plain, _ = files
    lay = get_layout("ntu25")
    ds = SkeletonDataset(plain, "joint-motion", clip_len=8, num_clips=2, test_mode=True)
    with h5py.File(plain) as f:
        for i in (1, 3):  # 12 and 30 frames: the clip skips frames, so motion differs from x[t+1]-x[t] of the clip
            start, t = f["offset"][i], f["num_frames"][i]
            joints = f["joint"][start : start + t].transpose(3, 0, 2, 1)  # (C, T, V, M)
            full = compute_stream(joints, "joint-motion", lay)
            idx = uniform_sample_indices(t, 8, num_clips=2, test_mode=True)
            np.testing.assert_array_equal(ds[i][0].numpy(), full[:, idx].swapaxes(0, 1))


def test_shapes_dtypes_labels(files):
    plain, _ = files
    x, y, i = SkeletonDataset(plain, "bone", clip_len=8, seed=0)[3]
    assert x.shape == (3, 8, 25, 2) and x.dtype == torch.float32 and (y, i) == (0, 3)
    x, _, _ = SkeletonDataset(plain, clip_len=8, num_clips=4, test_mode=True)[2]  # a 1-frame sample
    assert x.shape == (4, 3, 8, 25, 2)
    assert torch.equal(x, x[:, :, :1].expand_as(x))  # looped
    x, y, i = next(iter(make_loader(SkeletonDataset(plain, clip_len=8, seed=0), 4)))
    assert x.shape == (4, 3, 8, 25, 2) and y.dtype == i.dtype == torch.int64


def test_test_clips_deterministic_across_instances_and_workers(files):
    plain, _ = files
    a = SkeletonDataset(plain, "bone", clip_len=8, num_clips=3, test_mode=True)
    b = SkeletonDataset(plain, "bone", clip_len=8, num_clips=3, test_mode=True, in_memory=True)
    for (xa, _, _), (xb, _, _) in zip(_items(a), _items(b), strict=True):
        assert torch.equal(xa, xb)
    one = list(make_loader(a, 3))
    two = list(make_loader(a, 3, num_workers=2))
    assert len(one) == len(two) == 4
    for (x1, y1, i1), (x2, y2, i2) in zip(one, two, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(i1, i2)
    assert torch.equal(torch.cat([i for _, _, i in one]), torch.arange(len(a)))  # test mode: no shuffling


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")
def test_workers_share_the_in_memory_split(files, monkeypatch):
    plain, _ = files
    ds = SkeletonDataset(plain, clip_len=8, test_mode=True, in_memory=True)
    expected = [x for x, _, _ in BatchLoader(ds, 4)]

    def refuse(self):
        raise RuntimeError("the dataset was pickled for a worker")

    monkeypatch.setattr(SkeletonDataset, "__getstate__", refuse)  # forkserver or spawn would pickle it
    for loader in (BatchLoader(ds, 4, num_workers=2), make_loader(ds, 4, num_workers=2)):
        got = [x for x, _, _ in loader]
        assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_train_randomness_seeded(files):
    plain, _ = files
    long = [1, 3, 6, 7]  # samples longer than the clip

    def epoch(ds):
        return torch.stack([ds[i][0] for i in long])

    a, b = SkeletonDataset(plain, clip_len=8, seed=1), SkeletonDataset(plain, clip_len=8, seed=1, in_memory=True)
    first = epoch(a)
    assert torch.equal(first, epoch(b))  # same seed, same clips (also lazy vs in memory)
    assert not torch.equal(first, epoch(a))  # the next epoch draws new frames
    assert not torch.equal(first, epoch(SkeletonDataset(plain, clip_len=8, seed=2)))

    def loader_epochs(seed):
        torch.manual_seed(0)  # unrelated global state must not matter
        loader = make_loader(SkeletonDataset(plain, clip_len=8, seed=3), 4, num_workers=2, seed=seed)
        return [torch.cat([x for x, _, _ in loader]) for _ in range(2)]

    e1, e2 = loader_epochs(5)
    assert not torch.equal(e1, e2)  # new worker seeds each epoch
    r1, r2 = loader_epochs(5)
    assert torch.equal(e1, r1) and torch.equal(e2, r2)  # reproducible with workers too


def test_gather_equals_per_sample(files):
    plain, full = files
    for stream in ("joint", "bone-motion"):
        lazy = SkeletonDataset(plain, stream, clip_len=8)
        mem = SkeletonDataset(full, stream, clip_len=8, in_memory=True)
        indices = np.array([3, 0, 7, 2, 3])
        frames = sample_batch_indices(mem.num_frames[indices], 8, np.random.default_rng(0))
        batch = mem.gather(indices, frames)
        assert batch.shape == (5, 3, 8, 25, 2)
        for n, i in enumerate(indices):
            np.testing.assert_array_equal(batch[n].numpy(), lazy.sequence(i)[:, frames[n]])


@pytest.mark.parametrize("num_clips", [1, 3])
def test_batch_loader_test_mode_equals_per_sample_loader(files, num_clips):
    plain, _ = files
    ds = SkeletonDataset(plain, "joint-motion", clip_len=8, num_clips=num_clips, test_mode=True, in_memory=True)
    fast = list(BatchLoader(ds, 4, num_workers=0))
    slow = list(make_loader(ds, 4))
    assert len(fast) == len(slow) == 3
    for (x1, y1, i1), (x2, y2, i2) in zip(fast, slow, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(i1, i2)
    assert fast[0][0].shape == ((4, 3, 8, 25, 2) if num_clips == 1 else (4, num_clips, 3, 8, 25, 2))


def test_batch_loader_training(files):
    plain, _ = files
    ds = SkeletonDataset(plain, "bone", clip_len=8, in_memory=True)
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
    ds = SkeletonDataset(plain, clip_len=8, in_memory=True)  # 10 samples
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
    with pytest.raises(AgcnError, match="in_memory=True"):
        BatchLoader(SkeletonDataset(plain, clip_len=8), 2)


def test_persons_padded_and_truncated(tmp_path):
    one = write_split(tmp_path / "one.h5", [6, 9], persons=1)
    three = write_split(tmp_path / "three.h5", [6, 9], persons=3)
    for in_memory in (False, True):
        x, _, _ = SkeletonDataset(one, "bone", clip_len=4, test_mode=True, in_memory=in_memory)[1]
        assert x.shape == (3, 4, 25, 2) and x[..., 1].abs().sum() == 0 and x[..., 0].abs().sum() > 0
        x3, _, _ = SkeletonDataset(three, clip_len=4, test_mode=True, in_memory=in_memory)[1]
        with h5py.File(three) as f:
            first_two = f["joint"][6:15, :2].transpose(3, 0, 2, 1)  # (C, T, V, M=2)
        idx = uniform_sample_indices(9, 4, test_mode=True)[0]
        np.testing.assert_array_equal(x3.numpy(), first_two[:, idx])
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


def test_not_normalized_3d_is_normalised_at_load(tmp_path):
    path = write_split(tmp_path / "raw.h5", [10, 14, 6], normalized=False)
    with h5py.File(path, "r+") as f:  # person 0 absent in frames 2-4 of sample 1: PreNormalize3D drops them
        f["joint"][10 + 2 : 10 + 5, 0] = 0
        f["joint"][10 + 2 : 10 + 5, 1] = 0
    lay = get_layout("ntu25")
    lazy = SkeletonDataset(path, "bone-motion", clip_len=4, test_mode=True)
    mem = SkeletonDataset(path, "bone-motion", clip_len=4, test_mode=True, in_memory=True)
    assert mem.num_frames.tolist() == [10, 11, 6] and mem.offset.tolist() == [0, 10, 21]
    with h5py.File(path) as f:
        raw = f["joint"][10:24]  # (T, M, V, C)
    norm = pre_normalize_3d(raw.transpose(1, 0, 2, 3), dtype=np.float32)  # (M, T', V, C)
    expected = compute_stream(norm.transpose(3, 1, 2, 0), "bone-motion", lay)  # (C, T', V, M)
    np.testing.assert_array_equal(lazy.sequence(1), expected)
    np.testing.assert_array_equal(mem.sequence(1), expected)
    for a, b in zip(_items(lazy), _items(mem), strict=True):
        assert torch.equal(a[0], b[0])


def test_not_normalized_2d_uses_img_shape(tmp_path):
    path = write_split(tmp_path / "raw2d.h5", [5, 7], layout="coco17", normalized=False)
    with h5py.File(path, "r+") as f:
        f["joint"][..., :2] = np.abs(f["joint"][..., :2]) * 100  # pixels
        f.create_dataset("img_shape", data=np.array([[480, 640], [1080, 1920]], dtype=np.int32))
        raw = f["joint"][5:12]
    ds = SkeletonDataset(path, "joint", clip_len=7, test_mode=True)
    expected = pre_normalize_2d(raw.transpose(1, 0, 2, 3), (1080, 1920))  # (M, T, V, C)
    np.testing.assert_array_equal(ds.sequence(1), expected.transpose(3, 1, 2, 0))
    first = ds.sequence(0)
    assert first[0].min() >= -1 and first[0].max() > -0.75  # x scaled by 640, not 1920
