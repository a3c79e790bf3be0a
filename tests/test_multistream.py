"""`agcn train --modality all`: several streams in one process, each the same function as its
single-stream run (engine/fit.py)."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli import app
from agcn_cli.engine import fit as driver
from agcn_cli.engine import loop
from agcn_cli.engine.config import TrainConfig
from agcn_cli.engine.fit import fit
from agcn_cli.engine.fit import fit as fit_streams
from agcn_cli.engine.fit import fit as train
from agcn_cli.errors import AgcnError
from agcn_cli.io.checkpoint import read_checkpoint
from agcn_cli.skeleton.streams import STREAMS
from tests.helpers import tiny_config


def quiet(_: str) -> None:
    pass


def config(tiny: Path, out: Path, **kw) -> TrainConfig:
    # dropout: the streams draw from the global RNG inside the model, so their RNG states must
    # be kept apart for the steps to match separate runs
    return tiny_config(tiny, out, **{"dropout": 0.3, **kw})


def record_steps(monkeypatch) -> dict[int, list]:
    """Each optimizer's steps: (the model's weights before its first step, then per step the
    sample indices, the clip and the loss)."""
    steps: dict[int, list] = {}
    original = loop.train_step

    def spy(model, batch, optimizer, *args, **kw):
        mine = steps.setdefault(id(optimizer), [])
        if not mine:
            mine.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        before = kw["stats"].loss_sum if "stats" in kw else args[2].loss_sum
        stop = original(model, batch, optimizer, *args, **kw)
        stats = kw["stats"] if "stats" in kw else args[2]
        mine.append((batch[2].clone(), batch[0].clone(), (stats.loss_sum - before) / len(batch[1])))
        return stop

    monkeypatch.setattr(loop, "train_step", spy)  # train_one_epoch's
    return steps


def test_each_stream_is_its_single_stream_run(tiny, tmp_path, monkeypatch):
    steps = record_steps(monkeypatch)
    separate = {}
    for s in STREAMS:
        fit(config(tiny, tmp_path / "one" / s, modality=s), log=quiet)
        separate[s] = steps.pop(next(iter(steps)))
    summary = fit_streams(config(tiny, tmp_path / "all", modality="all"), log=quiet)
    assert set(summary["streams"]) == set(STREAMS) and not summary["failed"]
    together = list(steps.values())  # in stream order: the optimizers were built in that order
    assert len(together) == 4
    for s, mine in zip(STREAMS, together, strict=True):
        alone = separate[s]
        # initial weights, then every step's samples, clip and loss: bit for bit (same float32 ops on
        # the same inputs in the same order on the CPU, so no tolerance is needed)
        assert alone[0].keys() == mine[0].keys()
        assert all(torch.equal(alone[0][k], mine[0][k]) for k in alone[0]), s
        assert len(alone) == len(mine) == 1 + 2 * 3  # 2 epochs of 3 batches (12 samples, batch 4)
        for (idx_a, x_a, loss_a), (idx_b, x_b, loss_b) in zip(alone[1:], mine[1:], strict=True):
            assert torch.equal(idx_a, idx_b) and torch.equal(x_a, x_b), s
            assert loss_a == loss_b, s
        # the checkpoints: ordinary single-stream ones, the same weights
        a = read_checkpoint(tmp_path / "one" / s / "last.pt")
        b = read_checkpoint(tmp_path / "all" / s / "last.pt")
        assert b["data"]["modality"] == s and b["train_config"]["modality"] == s
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), s
        rows_a = [json.loads(line) for line in (tmp_path / "one" / s / "metrics.jsonl").read_text().splitlines()]
        rows_b = [json.loads(line) for line in (tmp_path / "all" / s / "metrics.jsonl").read_text().splitlines()]
        for ra, rb in zip(rows_a, rows_b, strict=True):
            assert {k: ra[k] for k in ("train_loss", "train_acc", "val_top1", "val_loss")} == {
                k: rb[k] for k in ("train_loss", "train_acc", "val_top1", "val_loss")
            }
    saved = json.loads((tmp_path / "all" / "config.json").read_text())
    assert saved["modality"] == "all"


def test_interrupted_and_resumed_matches_uninterrupted(tiny, tmp_path):
    fit_streams(config(tiny, tmp_path / "whole", modality="joint,bone-motion"), log=quiet)
    fit_streams(config(tiny, tmp_path / "split", modality="joint,bone-motion", stop_after=1), log=quiet)
    lines = []
    summary = train(config(tiny, tmp_path / "split", modality="joint,bone-motion", resume=True), log=lines.append)
    assert summary["streams"]["joint"]["epoch"] == 2
    assert any(line.startswith("[bone-motion] resuming") for line in lines), lines
    for s in ("joint", "bone-motion"):
        a = read_checkpoint(tmp_path / "whole" / s / "last.pt")["model"]
        b = read_checkpoint(tmp_path / "split" / s / "last.pt")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), s


def test_resume_with_one_stream_behind(tiny, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    fit_streams(config(tiny, whole, modality="joint,bone"), log=quiet)
    fit_streams(config(tiny, split, modality="joint,bone", stop_after=1), log=quiet)
    fit(config(tiny, split / "joint", modality="joint", resume=True), log=quiet)  # joint alone to the end
    summary = train(config(tiny, split, modality="joint,bone", resume=True), log=quiet)
    assert summary["streams"]["bone"]["epoch"] == 2 and summary["streams"]["joint"]["epoch"] == 2
    for s in ("joint", "bone"):
        a = read_checkpoint(whole / s / "last.pt")["model"]
        b = read_checkpoint(split / s / "last.pt")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), s


def test_nonfinite_stream_fails_alone(tiny, tmp_path, monkeypatch):
    first: dict = {}  # each stream's first EpochStats, set up by setup_run
    real_setup, real_step = driver.setup_run, loop.train_step

    def setup(cfg, *a, **kw):
        run = real_setup(cfg, *a, **kw)
        first[cfg.modality] = run.stats
        return run

    def poisoned(model, batch, optimizer, scheduler, device, stats, **kw):
        if stats is first["bone"]:  # bone's first step: a NaN loss
            stats.nonfinite = True
            return True
        return real_step(model, batch, optimizer, scheduler, device, stats, **kw)

    monkeypatch.setattr(driver, "setup_run", setup)
    monkeypatch.setattr(loop, "train_step", poisoned)
    with pytest.raises(AgcnError, match=r"^bone: non-finite training loss at epoch 1, batch 1"):
        fit_streams(config(tiny, tmp_path / "run", modality="joint,bone"), log=quiet)
    assert read_checkpoint(tmp_path / "run" / "joint" / "last.pt")["epoch"] == 2  # the other went on
    joint_log = (tmp_path / "run" / "joint" / "train.log").read_text()
    assert "non-finite" not in joint_log and "saved" not in joint_log  # no interruption of its own
    rows = [json.loads(line) for line in (tmp_path / "run" / "joint" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["train_samples"]) for r in rows] == [(1, 12), (2, 12)]  # whole epochs, every batch
    assert not (tmp_path / "run" / "bone" / "last.pt").exists()
    assert "error: non-finite training loss" in (tmp_path / "run" / "bone" / "train.log").read_text()


@pytest.mark.parametrize(
    ("modality", "message"),
    [
        ("joint,joint", "a stream named twice"),
        ("joint,elbow", "unknown stream 'elbow'"),
        ("", "unknown stream ''"),
    ],
)
def test_bad_modality_lists(tiny, tmp_path, modality, message):
    with pytest.raises(AgcnError, match=message):
        config(tiny, tmp_path / "run", modality=modality).check()


def test_cli_all_and_refusals(tiny, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(tiny), "--out", str(run), "--clip-len", "4", "--epochs", "1", "--batch-size", "4",
            "--no-tensorboard", "--modality", "joint,bone"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("1 epochs, best val top-1") == 2
    assert f"{run / 'joint'}:" in result.stdout and f"{run / 'bone'}:" in result.stdout
    assert "[bone] training bone on" in result.stderr
    again = CliRunner().invoke(app, args)  # the stream folders hold runs
    assert again.exit_code == 1 and "already holds a run" in again.stderr
    single = tmp_path / "single"
    one = ["train", str(tiny), "--out", str(single), "--clip-len", "4", "--epochs", "1", "--batch-size", "4",
           "--no-tensorboard"]  # fmt: skip
    assert CliRunner().invoke(app, one).exit_code == 0
    into = CliRunner().invoke(app, [*one, "--modality", "all", "--overwrite"])
    assert into.exit_code == 1 and "holds a single-stream run" in into.stderr
    nothing = CliRunner().invoke(app, [*args[:3], str(tmp_path / "none"), *args[4:], "--resume"])
    assert nothing.exit_code == 1 and "none: no STREAM/last.pt of joint, bone to resume from" in nothing.stderr
    assert not (tmp_path / "none").exists()
    changed = CliRunner().invoke(app, ["train", "--resume", "--out", str(run), "--lr", "0.2", "--no-tensorboard"])
    assert changed.exit_code == 1 and "--resume with a different config: lr 0.2" in changed.stderr
    # --epochs grows a run on resume (issue 23): each stream goes on to epoch 2
    resumed = CliRunner().invoke(app, ["train", "--resume", "--out", str(run), "--epochs", "2", "--no-tensorboard"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout.count("2 epochs, best val top-1") == 2
    assert "[joint] --epochs 2: the run was planned for 1 epochs" in resumed.stderr


def test_eval_run_dir_scores_each_stream_and_fuses(tiny, tmp_path):
    run = tmp_path / "run"
    fit_streams(config(tiny, run, modality="all", epochs=1), log=quiet)
    scores = tmp_path / "scores"
    args = ["eval", str(run), str(tiny / "test.h5"), "--clips", "2", "--out", str(scores), "--json", "--device", "cpu"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert list(data["streams"]) == list(STREAMS) and list(data["fusions"]) == ["joint+bone", "four-stream"]
    assert data["fusions"]["four-stream"]["weights"] == [2, 1, 2, 1]
    assert {p.name for p in scores.iterdir()} == {f"{n}.h5" for n in (*STREAMS, "joint+bone", "four-stream")}
    # the same numbers as agcn eval on each checkpoint and agcn fuse on the score files
    for s in STREAMS:
        one = CliRunner().invoke(app, ["eval", str(run / s / "last.pt"), str(tiny / "test.h5"), "--clips", "2",
                                       "--json", "--device", "cpu"])  # fmt: skip
        assert json.loads(one.stdout)["top1"] == data["streams"][s]["top1"], s
    files = [str(scores / f"{s}.h5") for s in ("joint", "joint-motion", "bone", "bone-motion")]
    fused = CliRunner().invoke(app, ["fuse", *files, "--weights", "2,1,2,1", "--json"])
    assert json.loads(fused.stdout)["fused"]["top1"] == data["fusions"]["four-stream"]["top1"]
    again = CliRunner().invoke(app, ["eval", str(run), str(tiny / "test.h5"), "--out", str(scores)])
    assert again.exit_code == 1 and "already exists; pass --overwrite" in again.stderr
    wrong = CliRunner().invoke(app, ["eval", str(run), str(tiny / "test.h5"), "--confusion", "c.csv"])
    assert wrong.exit_code == 1 and "--confusion applies to one checkpoint" in wrong.stderr
    empty = CliRunner().invoke(app, ["eval", str(tmp_path), str(tiny / "test.h5")])
    assert empty.exit_code == 1 and "no STREAM/last.pt in this folder" in empty.stderr


@pytest.mark.slow
def test_ddp_two_processes_gloo(tiny, tmp_path):
    """Under torchrun each stream is DDP as alone: the same weights as the single-stream DDP run."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--clip-len", "4", "--epochs", "1", "--batch-size", "4", "--no-tensorboard", "--device", "cpu",
              "--deterministic"]  # fmt: skip
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "agcn_cli",
            "train", str(tiny)]  # fmt: skip
    for out, modality in ((tmp_path / "all", "joint,bone"), (tmp_path / "joint", "joint")):
        proc = subprocess.run([*head, "--out", str(out), "--modality", modality, *common], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["bone", "config.json", "joint"]  # lock files go
    together = read_checkpoint(tmp_path / "all" / "joint" / "last.pt")
    alone = read_checkpoint(tmp_path / "joint" / "last.pt")
    assert together["world_size"] == 2 and read_checkpoint(tmp_path / "all" / "bone" / "last.pt")["world_size"] == 2
    assert all(torch.equal(alone["model"][k], together["model"][k]) for k in alone["model"])


@pytest.mark.parametrize(
    ("units", "force", "said"),
    [("", "1", "without bfloat16 units (AGCN_FORCE_CPU_BF16=1)"), ("AMX-BF16", None, "has AMX-BF16 units")],
)
def test_cpu_bf16_says_what_the_cpu_has(tiny, tmp_path, monkeypatch, units, force, said):
    monkeypatch.setattr("agcn_cli.engine.run.cpu_bf16_units", lambda: units)
    if force:
        monkeypatch.setenv("AGCN_FORCE_CPU_BF16", force)
    lines = []
    summary = train(config(tiny, tmp_path / "run", precision="bf16", device="cpu", epochs=1), log=lines.append)
    assert summary["epoch"] == 1 and any(said in line for line in lines), lines
    assert any("bf16;" in line for line in lines if line.startswith("training joint"))  # the precision line


def test_cpu_bf16_refused_without_units(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("agcn_cli.engine.run.cpu_bf16_units", lambda: "")
    monkeypatch.delenv("AGCN_FORCE_CPU_BF16", raising=False)
    with pytest.raises(AgcnError, match=r"--precision bf16: this CPU has no bfloat16 units .* 15-20x slower"):
        train(config(tiny, tmp_path / "run", precision="bf16", device="cpu", epochs=1), log=quiet)
    assert not (tmp_path / "run").exists()
