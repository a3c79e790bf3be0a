"""`agcn train`'s dead ends a newcomer hit: an epoch of no batch, a folder a failed start leaves,
signals near an epoch's end or in validation, and `--resume` with more `--epochs`."""

import json
import math
import signal
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.engine.config import TrainConfig, build_config
from agcn_cli.engine.fit import fit
from agcn_cli.engine.fit import fit as fit_streams
from agcn_cli.io.checkpoint import read_checkpoint
from tests.helpers import one_error_line, signal_in_step, tiny_config

runner = CliRunner()
TIMING = {"samples_per_s", "data_wait_s", "epoch_s", "wall_s"}
BATCHES = 3  # the tiny training split: 12 samples in batches of 4


def quiet(_: str) -> None:
    pass


def config(tiny: Path, out: Path, **kw) -> TrainConfig:
    return tiny_config(tiny, out, **kw)


def rows(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ---- an epoch of no batch ------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", [["--schedule", "step", "--lr-steps", "1"], ["--schedule", "cosine"]])
def test_no_whole_batch_is_refused_before_the_run_folder(tiny, tmp_path, schedule):
    run = tmp_path / "runs" / "2s"
    line = one_error_line(["train", str(tiny), "--out", str(run), "--drop-last", "--batch-size", "64",
                           "--epochs", "2", "--device", "cpu", "--clip-len", "4", *schedule])  # fmt: skip
    assert "12 training sample(s) make no whole batch of 64 with --drop-last" in line
    assert "lower --batch-size to at most 12, or pass --no-drop-last" in line
    assert not run.exists()


def test_a_failed_start_leaves_a_folder_a_rerun_accepts(tiny, tmp_path):
    """A run that ended before its first checkpoint (here: a NaN loss at once) leaves config.json and
    train.log; a rerun takes the folder, and --resume says what to do."""
    run = tmp_path / "run"
    with pytest.raises(Exception, match="non-finite training loss"):
        fit(config(tiny, run, lr=1e30), log=quiet)
    assert (run / "config.json").is_file() and not (run / "last.pt").exists()
    line = one_error_line(["train", "--resume", "--out", str(run)])
    assert "no last.pt to resume from; start the run without --resume" in line
    summary = fit(config(tiny, run), log=quiet)  # the same command again, without --overwrite
    assert summary["epoch"] == 2 and (run / "last.pt").is_file()
    assert [r["epoch"] for r in rows(run)] == [1, 2]
    assert not (run / ".replaced-run").exists()


def test_a_run_with_a_checkpoint_is_still_protected(tiny, tmp_path):
    run = tmp_path / "run"
    fit(config(tiny, run, epochs=1), log=quiet)
    line = one_error_line(["train", str(tiny), "--out", str(run), "--clip-len", "4", "--batch-size", "4"])
    assert "already holds a run" in line


# ---- signals ------------------------------------------------------------------------------------


def test_a_signal_after_a_steps_check_stops_before_the_next_batch(tiny, tmp_path, monkeypatch):
    """The signal lands after step 2's own check (in its backward pass): no third batch is trained."""
    run = tmp_path / "run"
    signal_in_step(monkeypatch, 2, signal.SIGINT)
    summary = fit(config(tiny, run), log=quiet)
    assert summary["interrupted"] == "SIGINT"
    assert read_checkpoint(run / "last.pt")["partial"]["step"] == 2


def test_a_signal_in_the_epochs_last_step_trains_no_batch_of_the_next(tiny, tmp_path, monkeypatch):
    """In the last step: the epoch's training is saved, validation is left to the resumed run."""
    run = tmp_path / "run"
    signal_in_step(monkeypatch, BATCHES, signal.SIGINT)
    summary = fit(config(tiny, run), log=quiet)
    ckpt = read_checkpoint(run / "last.pt")
    assert summary["interrupted"] == "SIGINT" and summary["epoch"] == 0
    assert ckpt["epoch"] == 0 and ckpt["partial"]["step"] == BATCHES


def test_a_signal_after_an_epoch_stops_before_the_next(tiny, tmp_path):
    run, lines = tmp_path / "run", []

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("epoch 1/"):  # epoch 1 validated and saved
            signal.raise_signal(signal.SIGINT)

    summary = fit(config(tiny, run), log=log)
    ckpt = read_checkpoint(run / "last.pt")
    assert summary["interrupted"] == "SIGINT" and summary["epoch"] == 1
    assert ckpt["epoch"] == 1 and ckpt["partial"] is None  # nothing of epoch 2
    assert any(line.startswith("SIGINT: stopped before epoch 2") for line in lines), lines


def validation_signal(monkeypatch, module, signum=signal.SIGINT) -> None:
    """`signum` arrives as the first validation starts."""
    original = module.validate

    def signal_then_validate(*args, **kw):
        signal.raise_signal(signum)
        monkeypatch.setattr(module, "validate", original)  # once
        return original(*args, **kw)

    monkeypatch.setattr(module, "validate", signal_then_validate)


def test_a_signal_in_validation_stops_and_resumes_bit_identically(tiny, tmp_path, monkeypatch):
    from agcn_cli.engine import fit as fit_module

    whole = tmp_path / "whole"
    fit(config(tiny, whole, epochs=1), log=quiet)
    run, lines = tmp_path / "run", []
    validation_signal(monkeypatch, fit_module)
    summary = fit(config(tiny, run, epochs=1), log=lines.append)
    assert summary["interrupted"] == "SIGINT"
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["partial"]["step"] == BATCHES and not (run / "metrics.jsonl").exists()
    assert any("at epoch 1, after its training, before validation" in line for line in lines), lines
    fit(build_config({"out": str(run), "resume": True}), log=quiet)
    assert rows(run) == rows(whole) and same_weights(run / "last.pt", whole / "last.pt")


def test_cli_exit_code_for_a_signal_in_validation(tiny, tmp_path, monkeypatch):
    from agcn_cli.engine import fit as fit_module

    validation_signal(monkeypatch, fit_module)
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", str(tiny), "--out", str(run), "--epochs", "1", "--clip-len", "4",
                            "--batch-size", "4", "--no-tensorboard"])  # fmt: skip
    assert r.exit_code == 130, r.output
    assert "SIGINT: saved" in r.output


def test_streams_stop_together_in_validation(tiny, tmp_path, monkeypatch):
    from agcn_cli.engine import fit as fit_module

    validation_signal(monkeypatch, fit_module)
    run = tmp_path / "all"
    summary = fit_streams(config(tiny, run, epochs=1, modality="joint,bone"), log=quiet)
    assert summary["interrupted"] == "SIGINT"
    for stream in ("joint", "bone"):
        assert read_checkpoint(run / stream / "last.pt")["partial"]["step"] == BATCHES
    fit_streams(build_config({"out": str(run), "resume": True}), log=quiet)
    for stream in ("joint", "bone"):
        assert [r["epoch"] for r in rows(run / stream)] == [1] and "val_top1" in rows(run / stream)[0]


# ---- more epochs --------------------------------------------------------------------------------


def cosine_lr(base: float, it: int, total: int) -> float:
    return base * (1 + math.cos(math.pi * it / total)) / 2


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_resume_with_more_epochs_extends_a_finished_run(tiny, tmp_path, schedule):
    kw = {"schedule": schedule, "lr_steps": "1"} if schedule == "step" else {"schedule": schedule}
    run, lines = tmp_path / "run", []
    fit(config(tiny, run, **kw), log=quiet)
    summary = fit(build_config({"out": str(run), "resume": True, "epochs": 4}), log=lines.append)
    assert summary["epoch"] == 4 and [r["epoch"] for r in rows(run)] == [1, 2, 3, 4]
    assert any("the run was planned for 2 epochs" in line and "recomputed for 4" in line for line in lines), lines
    lr = [r["lr"] for r in rows(run)]  # the lr of each epoch's last step
    if schedule == "cosine":  # a 4-epoch cosine from epoch 3 on, not the finished schedule's ~0
        for epoch in (3, 4):
            assert lr[epoch - 1] == pytest.approx(cosine_lr(0.05, epoch * BATCHES - 1, 4 * BATCHES), rel=1e-6)
    else:
        assert lr[2:] == pytest.approx([0.005, 0.005])
    assert read_checkpoint(run / "last.pt")["train_config"]["epochs"] == 4


def test_resume_with_fewer_epochs_than_trained_is_refused(tiny, tmp_path):
    run = tmp_path / "run"
    fit(config(tiny, run), log=quiet)
    line = one_error_line(["train", "--resume", "--out", str(run), "--epochs", "1"])
    assert "--epochs 1 is fewer than the 2 epoch(s) this run has trained" in line
