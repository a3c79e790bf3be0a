"""The shared joint cache (io/jointcache.py): one read-only joint array per machine, whatever the
streams and processes; rebuilt when the split file changes; two processes at once; no room."""

import errno
import multiprocessing as mp
import os

import h5py
import numpy as np
import pytest
import torch

from agcn_cli.engine.data import BatchLoader, SkeletonDataset
from agcn_cli.errors import AgcnError
from agcn_cli.io.jointcache import cache_path, shared_joints
from agcn_cli.skeleton.persons import fit_persons
from tests.helpers import one_error_line, write_split

LENGTHS = (5, 12, 1, 30, 17, 8, 23, 40)


def joints_of(path):
    with h5py.File(path) as f:
        return fit_persons(f["joint"][:], axis=1).astype(np.float32)  # (F, M, V, C)


def test_one_read_only_map_for_every_stream(tmp_path):
    path = write_split(tmp_path / "train.h5", LENGTHS, persons=1)  # one person stored: fitted to 2 in the cache
    sets = [SkeletonDataset(path, s, clip_len=8) for s in ("joint", "bone", "joint-motion", "bone-motion")]
    cache = cache_path(path)
    assert cache.exists() and [p.name for p in tmp_path.glob(".train.h5.joints-*")] == [cache.name]
    for ds in sets:
        assert ds.shared and isinstance(ds.joints, np.memmap) and not ds.joints.flags.writeable
        assert os.path.samefile(ds.joints.filename, cache)  # the same file, mapped: its pages are the kernel's, once
    np.testing.assert_array_equal(sets[0].joints, joints_of(path))
    x, _, _ = next(iter(BatchLoader(sets[2], 4, seed=1)))
    assert x.shape == (4, 3, 8, 25, 2) and torch.isfinite(x).all()


def test_a_rewritten_split_file_gets_a_new_cache(tmp_path):
    path = write_split(tmp_path / "train.h5", LENGTHS)
    old = SkeletonDataset(path, clip_len=8)
    first = cache_path(path)
    write_split(path, LENGTHS, seed=5)  # the same name, other values (a new file renamed into place)
    new = SkeletonDataset(path, clip_len=8)
    assert cache_path(path) != first and not first.exists()  # the stale one is gone
    np.testing.assert_array_equal(new.joints, joints_of(path))
    assert not np.array_equal(np.asarray(old.joints), np.asarray(new.joints))  # the old map still reads its pages


def _load(path, queue):
    j = shared_joints(path, *_meta(path))
    queue.put(float(np.asarray(j, np.float64).sum()))


def _meta(path):
    with h5py.File(path) as f:
        n = f["num_frames"][:].astype(np.int64)
        names = [str(x) for x in f["name"].asstr()[:]]
    return np.concatenate([[0], np.cumsum(n)[:-1]]), n, names, (25, 3)


def test_two_processes_at_once_make_it_once(tmp_path):
    path = write_split(tmp_path / "train.h5", LENGTHS * 50)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_load, args=(path, q)) for _ in range(2)]
    for p in procs:
        p.start()
    sums = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sums[0] == sums[1] == pytest.approx(float(joints_of(path).astype(np.float64).sum()))
    assert len(list(tmp_path.glob(".train.h5.joints-*"))) == 1 and not list(tmp_path.glob("*.tmp*"))


def test_no_room_is_one_line_and_the_switch_loads_as_before(tmp_path, monkeypatch):
    path = write_split(tmp_path / "train.h5", LENGTHS)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("agcn_cli.io.jointcache._append", full)
    with pytest.raises(
        AgcnError, match=r"cannot write its joint cache .*No space left on device.*AGCN_JOINT_CACHE=off"
    ):
        SkeletonDataset(path, clip_len=8)
    assert not list(tmp_path.glob(".train.h5.joints-*"))  # nothing half-written
    line = one_error_line(["train", str(path), "--out", str(tmp_path / "run"), "--epochs", "1", "--clip-len", "8",
                           "--no-tensorboard"])  # fmt: skip
    assert "AGCN_JOINT_CACHE=off" in line
    monkeypatch.setenv("AGCN_JOINT_CACHE", "off")
    ds = SkeletonDataset(path, clip_len=8)
    assert not ds.shared and ds.joints is None and ds.frames.shape == (3, sum(LENGTHS), 25, 2)


def test_nan_in_the_split_is_named_when_the_cache_is_written(tmp_path):
    path = write_split(tmp_path / "train.h5", LENGTHS)
    with h5py.File(path, "r+") as f:
        f["joint"][20, 0, 3, 1] = np.nan  # row 20: in the fourth sample (rows 18-47)
    with pytest.raises(AgcnError, match=r"sample 'S001C001P001R001A004' holds NaN"):
        SkeletonDataset(path, clip_len=8)
    assert not list(tmp_path.glob(".train.h5.joints-*"))


@pytest.mark.parametrize("modality", ["bone-motion", "all"])
def test_losses_equal_today_s(tiny, tmp_path, monkeypatch, modality):
    """The same seed, the same batches (bit for bit): the same losses and checkpoints, exactly."""
    import json

    from agcn_cli.engine.fit import fit
    from tests.helpers import tiny_config

    def losses(run):
        fit(tiny_config(tiny, run, modality=modality, epochs=1), log=lambda _: None)
        metrics = sorted(run.rglob("metrics.jsonl"))
        return [[{k: v for k, v in json.loads(line).items() if "loss" in k or "top" in k}
                 for line in m.read_text().splitlines()] for m in metrics]  # fmt: skip

    shared = losses(tmp_path / "shared")
    monkeypatch.setenv("AGCN_JOINT_CACHE", "off")
    assert losses(tmp_path / "private") == shared and shared
