"""The original 2s-AGCN training recipe: the step schedule against main.py's formula, the full
padded window against the reference's preprocessing, random_choose / random_move against
transcriptions of feeders/tools.py with the same draws, the presets training, resuming and
testing on one view."""

import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.engine.config import TrainConfig, build_config
from agcn_cli.engine.data import BatchLoader, SkeletonDataset, _EpochBatches
from agcn_cli.engine.fit import fit
from agcn_cli.engine.schedule import build_scheduler
from agcn_cli.errors import AgcnError
from agcn_cli.evaluation.evaluate import EvalConfig, evaluate
from agcn_cli.evaluation.scoring import checkpoint_views
from agcn_cli.io.checkpoint import DataInfo
from agcn_cli.io.splitfile import PAD_CENTRE, PAD_PERIOD
from agcn_cli.io.splitwrite import SampleMeta, SplitWriter
from agcn_cli.io.streamfile import materialize_streams
from agcn_cli.skeleton.augment import MOVE_ANGLES, MOVE_SCALES, MOVE_SHIFTS, draw_choose, draw_move, random_move
from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.skeleton.streams import compute_stream
from agcn_cli.skeleton.views import sample_views
from agcn_cli.skeleton.window import window_padding
from agcn_cli.sources.samples import open_input
from tests.helpers import random_body, write_skeleton, write_split
from tests.reference.feeder_tools import feeder_item
from tests.reference.preprocess import ref_2sagcn_sample

ROOT = Path(__file__).resolve().parent.parent
NTU_PRESET = ROOT / "configs" / "2s-agcn-ntu.toml"
KINETICS_PRESET = ROOT / "configs" / "2s-agcn-kinetics.toml"


def quiet(_: str) -> None:
    pass


# ---- the schedule ------------------------------------------------------------------------------


def reference_lr(epoch: int, base_lr: float, steps: list[int], warm_up_epoch: int) -> float:
    """lshiwjx/2s-AGCN main.py `adjust_learning_rate`, set at the start of each epoch."""
    if epoch < warm_up_epoch:
        return base_lr * (epoch + 1) / warm_up_epoch
    return base_lr * (0.1 ** np.sum(epoch >= np.array(steps)))


def lrs(config: TrainConfig, steps_per_epoch: int) -> np.ndarray:
    """(epochs, steps_per_epoch) lr of every iteration, as the loop steps the scheduler."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.scaled_lr())
    scheduler = build_scheduler(config, optimizer, steps_per_epoch)
    out = []
    for _ in range(config.epochs * steps_per_epoch):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(out).reshape(config.epochs, steps_per_epoch)


@pytest.mark.parametrize("warmup", [0, 3])
def test_step_schedule_is_the_references(warmup):
    config = TrainConfig(data="d", epochs=50, lr=0.1, schedule="step", lr_steps="30,40", warmup_epochs=warmup)
    got = lrs(config, steps_per_epoch=3)
    assert (got == got[:, :1]).all()  # constant within an epoch, as the reference sets it per epoch
    want = [reference_lr(e, 0.1, [30, 40], warmup) for e in range(50)]
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-12)
    assert got[29, 0] == pytest.approx(0.1) and got[30, 0] == pytest.approx(0.01) and got[40, 0] == pytest.approx(1e-3)


def test_cosine_schedule_unchanged_and_with_warmup():
    plain = TrainConfig(data="d", epochs=4, lr=0.1)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert isinstance(build_scheduler(plain, optimizer, 5), torch.optim.lr_scheduler.CosineAnnealingLR)
    warm = lrs(TrainConfig(data="d", epochs=6, lr=0.1, min_lr=0.001, warmup_epochs=2), steps_per_epoch=4)
    np.testing.assert_allclose(warm[:2, 0], [0.05, 0.1])
    assert warm[2, 0] == pytest.approx(0.1) and (np.diff(warm[2:].ravel()) < 0).all()
    assert warm[-1, -1] == pytest.approx(0.001, abs=2e-3)


def test_schedule_options_are_checked():
    for bad, needle in (
        ({"schedule": "linear"}, "unknown schedule 'linear'; choose one of: cosine, step"),
        ({"schedule": "step", "lr_steps": "30,x"}, "lr_steps must be epochs separated by commas"),
        ({"lr_steps": "30"}, "--lr-steps is for --schedule step"),
        ({"sampling": "all"}, "unknown sampling 'all'"),
        ({"random_move": True}, "apply to --sampling full"),
        ({"sampling": "full", "window": 100, "random_choose": 150}, "exceeds the window"),
    ):
        with pytest.raises(AgcnError, match=needle):
            TrainConfig(data="d", **bad).check()


# ---- the full window ---------------------------------------------------------------------------


def _ntu_files(raw: Path, rng: np.random.Generator) -> dict[str, str]:
    """.skeleton files of the padding cases, each a name -> what it tests."""
    raw.mkdir()
    a, b = random_body(rng, 40), random_body(rng, 40, (0.8, 0.0, 3.2))
    cases = {
        "one person, all frames": [[(1, a[t])] for t in range(40)],
        "one person leaving at 25 (padded within T)": [[(1, a[t])] if t < 25 else [] for t in range(40)],
        "one person entering at 6": [[(1, a[t])] if t >= 6 else [] for t in range(40)],
        "two persons, same span": [[(1, a[t]), (2, b[t])] for t in range(40)],
        "two persons leaving at 31": [[(1, a[t]), (2, b[t])] if t < 31 else [] for t in range(40)],
        "a short second body (frames 10-19)": [[(1, a[t])] + [(2, b[t])] * (10 <= t < 20) for t in range(40)],
        "a second body leaving at 22": [[(1, a[t])] + [(2, b[t])] * (t < 22) for t in range(40)],
        "a second body entering at 15": [[(1, a[t])] + [(2, b[t])] * (t >= 15) for t in range(40)],
        "a second body with a gap (frames 5-9)": [[(1, a[t])] + [(2, b[t])] * (not 5 <= t < 10) for t in range(40)],
        "the first body leaving at 28": [[(1, a[t])] * (t < 28) + [(2, b[t])] for t in range(40)],
    }
    c, d = random_body(rng, 130), random_body(rng, 130, (-0.7, 0.1, 2.9))
    long = [[(1, c[t])] + [(2, d[t])] * (50 <= t < 57) for t in range(130)]
    cases["a short second body in a long sample (frames 50-56)"] = long
    for i, frames in enumerate(cases.values()):
        write_skeleton(raw / f"S001C001P001R001A{i + 1:03d}.skeleton", frames)
    return dict(enumerate(cases))


def test_full_window_is_the_references_padded_sample(ntu_2sagcn):
    raw, split, cases = ntu_2sagcn
    ds = SkeletonDataset(split, "joint", test_mode=True, window=300)
    (x, _, idx), *_ = BatchLoader(ds, len(ds), shuffle=False)
    assert x.shape == (len(cases), 3, 300, 25, 2)
    for i, name in enumerate(ds.names):
        ref = ref_2sagcn_sample(raw / f"{name}.skeleton")  # (C, 300, V, M)
        case, ours = cases[int(name[-3:]) - 1], x[int(np.flatnonzero(idx.numpy() == i)[0])].numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0, err_msg=case)
    periods = ds.pads.persons
    assert ((periods[:, 1] > 0) & (periods[:, 1] != periods[:, 0])).sum() >= 4  # persons of their own period
    # training: a random run of the same window (random_choose), drawn from the batch's generator
    train = SkeletonDataset(split, "joint", window=300, random_choose=150)
    batches = BatchLoader(train, len(train), seed=2).batches(0)
    x, _, idx = _EpochBatches(train, batches, (2, 0, 0))[0]
    starts = draw_choose(np.random.default_rng([2, 0, 0, 0]), len(train), 300, 150)
    for n, i in enumerate(idx.numpy()):
        ref = ref_2sagcn_sample(raw / f"{train.names[i]}.skeleton")[:, starts[n] : starts[n] + 150]
        np.testing.assert_allclose(x[n].numpy(), ref, atol=1e-4, rtol=0, err_msg=train.names[i])


def test_split_writer_checks_per_frame_extras(tmp_path):
    attrs = {"layout": "ntu25", "recipe": "2s-agcn", "normalized": True, "num_classes": 3, "split": "train"}
    sample = np.ones((2, 4, 25, 3), np.float32)
    with pytest.raises(AgcnError, match="pad_centre has 3 rows for 4 frames"):
        with SplitWriter(tmp_path / "a.h5", attrs, 2, 25, 3) as w:
            w.append(sample, SampleMeta("a", 0), 2, frame_extras={PAD_CENTRE: np.zeros((3, 3), np.float32)})
    with pytest.raises(AgcnError, match="pad_centre given for 4 of 8 frames"):
        with SplitWriter(tmp_path / "b.h5", attrs, 2, 25, 3) as w:
            w.append(sample, SampleMeta("a", 0), 2, frame_extras={PAD_CENTRE: np.zeros((4, 3), np.float32)})
            w.append(sample, SampleMeta("b", 0), 2)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_full_window_bone_and_streams_file_keep_the_facts(ntu_2sagcn, tmp_path):
    """Bone, derived at load or stored by `agcn streams`, is the reference's gen_bone_data of the
    padded array (every joint present here); `agcn streams` keeps the window facts."""
    raw, split, _ = ntu_2sagcn
    layout = get_layout("ntu25")
    copy = tmp_path / "train.h5"
    shutil.copy(split, copy)
    for stored in (False, True):
        if stored:
            materialize_streams(copy, ["bone"])
            with h5py.File(copy) as f:
                assert {PAD_PERIOD, PAD_CENTRE, "bone"} <= set(f)
        ds = SkeletonDataset(copy, "bone", test_mode=True, window=300)
        assert ds.derive is not stored and ds.pads.centre is None and ds.pads.persons is not None
        (x, _, idx), *_ = BatchLoader(ds, len(ds), shuffle=False)
        for n, i in enumerate(idx.numpy()):
            ref = compute_stream(ref_2sagcn_sample(raw / f"{ds.names[i]}.skeleton"), "bone", layout)
            np.testing.assert_allclose(x[n].numpy(), ref, atol=1e-4, rtol=0, err_msg=ds.names[i])


def test_full_window_of_files_without_the_facts(ntu_2sagcn, tmp_path):
    """Split files written before the facts: person 0 exact, every person on person 0's period."""
    raw, split, cases = ntu_2sagcn
    old = tmp_path / "old.h5"
    shutil.copy(split, old)
    with h5py.File(old, "a") as f:
        del f[PAD_PERIOD], f[PAD_CENTRE]
    ds = SkeletonDataset(old, "joint", test_mode=True, window=300)
    assert ds.pads.persons is None
    (x, _, idx), *_ = BatchLoader(ds, len(ds), shuffle=False)
    for n, i in enumerate(idx.numpy()):
        ref = ref_2sagcn_sample(raw / f"{ds.names[i]}.skeleton")
        np.testing.assert_allclose(x[n, ..., 0].numpy(), ref[..., 0], atol=1e-4, rtol=0)
        t = int(ds.num_frames[i])
        np.testing.assert_allclose(x[n, :, :t].numpy(), ref[:, :t], atol=1e-4, rtol=0)
    bad = tmp_path / "bad.h5"
    shutil.copy(split, bad)
    with h5py.File(bad, "a") as f:
        f[PAD_CENTRE].resize(10, axis=0)
    with pytest.raises(AgcnError, match=r"pad_period .* do not fit 11 samples"):
        SkeletonDataset(bad, "joint", window=300)


def test_predict_full_window_is_the_references(ntu_2sagcn):
    """`agcn predict`'s view of a full-window checkpoint: raw .skeleton files (facts computed from
    the file) and the split file (facts read from it) both give the reference's padded array."""
    raw, split, cases = ntu_2sagcn
    layout = get_layout("ntu25")
    data = DataInfo(recipe="2s-agcn", test_window=300)
    for path in (raw, split):
        inp = open_input(path, recipe="2s-agcn", layout=layout)
        padding = window_padding({"source": inp.source, "recipe": inp.recipe})
        seen = 0
        for item in inp.samples():
            assert item.pad is not None
            (view,) = sample_views(item.data, replace(checkpoint_views(data), padding=padding, layout=layout), item.pad)
            ref = ref_2sagcn_sample(raw / f"{item.name}.skeleton")
            np.testing.assert_allclose(view, ref, atol=1e-4, rtol=0, err_msg=f"{path.name}: {item.name}")
            seen += 1
        assert seen == len(cases)


def _write(path: Path, lengths, attrs: dict, layout="openpose18", channels="x,y,score", joints=18) -> Path:
    rng = np.random.default_rng(5)
    base = {"layout": layout, "channels": channels, "normalized": True, "num_classes": 3, "split": "train"}
    with SplitWriter(path, {**base, **attrs}, num_persons=2, num_joints=joints, num_channels=3) as w:
        for i, t in enumerate(lengths):
            w.append(rng.normal(size=(2, t, joints, 3)).astype(np.float32), SampleMeta(f"v{i:03d}", i % 3), 2)
    return path


def test_full_window_zero_for_kinetics_loop_for_mmaction2(tmp_path):
    kin = _write(tmp_path / "k.h5", (7, 20, 12), {"recipe": "2s-agcn", "source": "kinetics-skeleton"})
    mm = write_split(tmp_path / "m.h5", (7, 20, 12))  # recipe mmaction2
    for path, expect in ((kin, "zero"), (mm, "loop")):
        ds = SkeletonDataset(path, "joint", test_mode=True, window=16)
        x = ds.gather(np.arange(3), ds.batch_frame_indices(np.arange(3), np.random.default_rng(0)))[:, 0].numpy()
        for i, t in enumerate(ds.num_frames):
            real = ds.gather([i], np.arange(t)[None])[0].numpy()  # (C, T, V, M)
            want = np.zeros((*real.shape[:1], 16, *real.shape[2:]), np.float32)
            if expect == "zero":
                want[:, : min(t, 16)] = real[:, :16]
            else:
                want = real[:, np.arange(16) % t]  # a sample longer than the window keeps its first frames
            np.testing.assert_array_equal(x[i], want, err_msg=f"{expect} {i}")


# ---- random_choose and random_move -------------------------------------------------------------


class Replay:
    """A generator stand-in for the transcription: answers with one sample's draws of a batch."""

    def __init__(self, start: int, angle, scale, shift_x, shift_y):
        self.start, self.choices = start, [angle, scale, shift_x, shift_y]

    def integers(self, low, high=None):
        return 0 if high is None else self.start  # move_time's one candidate, or random_choose's begin

    def choice(self, candidates, n):
        return self.choices.pop(0)


def kinetics_window(ds: SkeletonDataset, i: int, window: int = 300) -> np.ndarray:
    """The reference's (C, 300, V, M) Kinetics array: the real frames, then zeros."""
    t = int(ds.num_frames[i])
    out = np.zeros((ds.frames.shape[0], window, *ds.frames.shape[2:]), np.float32)
    out[:, :t] = ds.frames[:, ds.offset[i] : ds.offset[i] + t]
    return out


def test_augmentations_match_the_reference_with_the_same_draws(tmp_path):
    kin = _write(tmp_path / "k.h5", (40, 300, 120, 1, 77), {"recipe": "2s-agcn", "source": "kinetics-skeleton"})
    ds = SkeletonDataset(kin, "joint", window=300, random_choose=150, random_move=True)
    # one sample: a real generator, consumed in the same order by both
    for seed in range(4):
        ref = feeder_item(kinetics_window(ds, 1), np.random.default_rng(seed), True, True, 150)
        g = np.random.default_rng(seed)
        start = int(draw_choose(g, 1, 300, 150)[0])
        ours = random_move(kinetics_window(ds, 1)[None, :, start : start + 150], draw_move(g, 1, 150))[0]
        assert np.abs(ours - ref).max() < 1e-5
    # a whole training batch through the loader vs the transcription fed the batch's draws
    batches = BatchLoader(ds, 5, seed=3).batches(0)
    x, _, idx = _EpochBatches(ds, batches, (3, 0, 0))[0]
    assert x.shape == (5, 3, 150, 18, 2)
    g = np.random.default_rng([3, 0, 0, 0])
    starts, p = draw_choose(g, 5, 300, 150), draw_move(g, 5, 150)
    for n, i in enumerate(idx.numpy()):
        replay = Replay(starts[n], p.angle[n], p.scale[n], p.shift_x[n], p.shift_y[n])
        ref = feeder_item(kinetics_window(ds, i), replay, True, True, 150)
        assert np.abs(x[n].numpy() - ref).max() < 1e-5
    assert set(p.angle.ravel()) <= set(MOVE_ANGLES) and set(p.scale.ravel()) <= set(MOVE_SCALES)
    assert set(p.shift_x.ravel()) <= set(MOVE_SHIFTS) and ((starts >= 0) & (starts <= 150)).all()
    # test mode: no augmentation, the whole window
    val = SkeletonDataset(kin, "joint", test_mode=True, window=300)
    (xv, _, iv), *_ = BatchLoader(val, 5, shuffle=False)
    np.testing.assert_array_equal(xv[1].numpy(), kinetics_window(val, 1))


# ---- the presets: train, resume, test on one view ----------------------------------------------


def preset(path: Path, data: Path, out: Path, **kw) -> TrainConfig:
    small = dict(data=str(data), out=str(out), epochs=2, batch_size=4, window=16, lr_steps="1", val_every=1,
                 deterministic=True, tensorboard=False, drop_last=False)  # fmt: skip
    return build_config({**small, **kw}, path)


def test_ntu_preset_trains_resumes_and_tests_on_one_view(tmp_path, one_thread):
    data = tmp_path / "data"
    data.mkdir()
    write_split(data / "train.h5", (5, 9, 12, 7, 10, 6, 8, 11))
    write_split(data / "test.h5", (7, 9, 5, 8), seed=1)
    whole = fit(preset(NTU_PRESET, data, tmp_path / "whole"), log=quiet)
    assert whole["epoch"] == 2
    split = tmp_path / "split"
    fit(preset(NTU_PRESET, data, split, stop_after=1), log=quiet)
    fit(build_config({"out": str(split), "resume": True}), log=quiet)
    a, b = (torch.load(p / "last.pt", weights_only=True) for p in (tmp_path / "whole", split))
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 4  # 2 epochs x 2 batches
    # lr 0.1 for batch 64, scaled to batch 4, x 0.1 from (0-based) epoch 1 on
    assert b["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.1 * 4 / 64 * 0.1)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    assert a["data"]["test_window"] == 16 and a["train_config"]["schedule"] == "step"
    # eval: one view of the 16-frame window; more clips are refused
    result = evaluate(EvalConfig(tmp_path / "whole" / "last.pt", data / "test.h5", device="cpu"))
    assert (result.scores.attrs["clips"], result.scores.attrs["clip_len"]) == (1, 16)
    with pytest.raises(AgcnError, match="one view of it; drop --clips 10"):
        evaluate(EvalConfig(tmp_path / "whole" / "last.pt", data / "test.h5", clips=10, device="cpu"))
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "whole" / "last.pt"), str(data / "test.h5"), "--json"])
    assert res.exit_code == 0 and '"clips": 1' in res.stdout and '"clip_len": 16' in res.stdout


def test_kinetics_preset_trains_one_epoch(tmp_path, one_thread):
    kin = _write(tmp_path / "train.h5", (12, 30, 7, 20, 16, 9), {"recipe": "2s-agcn", "source": "kinetics-skeleton"})
    config = preset(KINETICS_PRESET, kin, tmp_path / "run", epochs=1, window=24, random_choose=12, val_batch_size=2)
    assert (config.random_choose, config.random_move, config.variant) == (12, True, "2s-agcn")
    summary = fit(config, log=quiet)
    assert summary["epoch"] == 1 and np.isfinite(summary["last"]["train_loss"])
    assert summary["last"]["lr"] == pytest.approx(0.1 * 4 / 128)  # lr 0.1 for batch 128, before step 1
