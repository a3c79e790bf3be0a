"""Run records and the conventions users expect (issue 14): train.log, the environment record in
config.json and checkpoints, one accuracy unit (fractions) in every machine-readable output, the
tensorboard note, `agcn --version`, flags shown as flags, config-file messages, and the README's
Python snippet run as written."""

import json
import re
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from agcn_cli import __version__
from agcn_cli.cli.app import app
from agcn_cli.engine.config import TrainConfig, build_config
from agcn_cli.engine.fit import fit
from agcn_cli.engine.record import environment
from agcn_cli.engine.rundir import summary_line
from agcn_cli.errors import AgcnError
from agcn_cli.io.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
COMMON = ["--clip-len", "4", "--epochs", "2", "--batch-size", "4", "--lr", "0.05", "--no-auto-scale-lr",
          "--val-every", "1", "--deterministic", "--no-tensorboard", "--device", "cpu"]  # fmt: skip
ENV_KEYS = {"agcn", "torch", "cuda", "cudnn", "device", "python", "platform", "command", "git_commit", "git_dirty",
            "time"}  # fmt: skip
ACCURACIES = ("train_acc", "val_top1", "val_top5")


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory, one_thread):
    """A 2-epoch run made by two commands: `--stop-after 1`, then `--resume --json`."""
    out = tmp_path_factory.mktemp("records") / "run"
    first = runner.invoke(app, ["train", str(tiny), "--out", str(out), "--stop-after", "1", *COMMON])
    assert first.exit_code == 0, first.output
    log_after_first = (out / "train.log").read_text()
    second = runner.invoke(app, ["train", "--out", str(out), "--resume", "--json"])
    assert second.exit_code == 0, second.output
    return out, first, log_after_first, second


def test_train_log_is_what_the_terminal_showed_and_continues_on_resume(run):
    out, first, log_after_first, second = run
    shown = first.stderr.splitlines() + first.stdout.splitlines()  # the last line is stdout's summary
    assert log_after_first.splitlines() == shown
    assert any(line.startswith("epoch 1/2 ") for line in shown) and shown[-1].endswith("(best.pt, last.pt)")
    summary = json.loads(second.stdout)
    resumed = second.stderr.splitlines()
    assert resumed[0] == f"resuming {out} at epoch 2"  # the line saying it resumed
    assert (out / "train.log").read_text().splitlines() == shown + resumed + [summary_line(summary)]
    assert "tensorboard" not in first.stderr  # --no-tensorboard: no note


def test_config_json_and_checkpoints_record_the_environment(run):
    out = run[0]
    saved = json.loads((out / "config.json").read_text())
    env = saved["environment"]
    assert set(env) == ENV_KEYS
    assert env["agcn"] == __version__ and env["torch"] == torch.__version__ and env["cuda"] == torch.version.cuda
    assert env["python"] == ".".join(map(str, sys.version_info[:3])) and env["device"]
    assert isinstance(env["command"], list) and all(isinstance(a, str) for a in env["command"])
    assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])
    assert (env["git_dirty"] is None) == (env["git_commit"] is None)
    if not torch.cuda.is_available():
        assert "CUDA" not in env["device"]
    # the resume kept the first record and added its own, with the epoch it took over at
    assert [r["epoch"] for r in saved["resumes"]] == [1] and set(saved["resumes"][0]) == ENV_KEYS | {"epoch"}
    assert saved["resumes"][0]["time"] >= env["time"]
    last, best = read_checkpoint(out / "last.pt"), read_checkpoint(out / "best.pt")  # weights_only loads
    assert last["environment"] == best["environment"] == env and last["resumes"] == saved["resumes"]
    assert last["accuracy_unit"] == "fraction"
    # the records are not options: config.json reads back as a --config file
    again = build_config({"out": str(out / "again")}, out / "config.json")
    assert again.epochs == 2 and again.data == saved["data"]


def test_one_unit_for_accuracy_fractions(run, tiny, tmp_path):
    out, _, _, second = run
    history, summary = rows(out), json.loads(second.stdout)
    assert [r["epoch"] for r in history] == [1, 2] and summary["last"] == history[-1]
    for r in history:
        assert all(0 <= r[k] <= 1 for k in ACCURACIES), r
    assert summary["best_top1"] == max(r["val_top1"] for r in history) <= 1
    # eval with one clip scores as validation does: the same number, in the same unit
    scores = tmp_path / "s.h5"
    ev = runner.invoke(app, ["eval", str(out / "last.pt"), str(tiny / "test.h5"), "--clips", "1", "--out",
                             str(scores), "--json", "--device", "cpu"])  # fmt: skip
    assert ev.exit_code == 0, ev.output
    ev = json.loads(ev.stdout)
    assert ev["top1"] == pytest.approx(history[-1]["val_top1"]) and ev["top5"] == pytest.approx(history[-1]["val_top5"])
    with h5py.File(scores) as f:
        assert ev["top1"] == pytest.approx(float((f["prob"][:].argmax(1) == f["label"][:]).mean()))
    assert all(0 <= c["accuracy"] <= 1 for c in ev["per_class"]) and 0 <= ev["mean_class_accuracy"] <= 1
    fu = runner.invoke(app, ["fuse", str(scores), str(scores), "--json"])  # a stream fused with itself
    assert fu.exit_code == 0, fu.output
    fu = json.loads(fu.stdout)
    assert fu["fused"]["top1"] == fu["streams"][0]["top1"] == pytest.approx(ev["top1"])
    assert fu["fused"]["mean_class_accuracy"] == pytest.approx(ev["mean_class_accuracy"])
    # the human line shows percent
    assert f"best val top-1 {100 * summary['best_top1']:.2f}%" in summary_line(summary)


def test_tensorboard_note_old_percent_run_and_error_in_log(tiny, tmp_path, monkeypatch, one_thread):
    """Missing tensorboard: one note. A run begun when metrics.jsonl held percent resumes in
    fractions. A refused resume's error line lands in train.log."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` raises ImportError
    out, lines = tmp_path / "run", []
    config = TrainConfig(data=str(tiny), out=str(out), clip_len=4, epochs=2, batch_size=4, lr=0.05,
                         auto_scale_lr=False, val_every=1, deterministic=True, stop_after=1)  # fmt: skip
    assert config.tensorboard  # the default
    fit(config, log=lines.append)
    notes = [line for line in lines if "tensorboard" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "pip install 'agcn[tb]'" in notes[0]
    assert not (out / "tb").exists()
    # as a run from before 2026-12-01 left it: percent in metrics.jsonl and last.pt's best, no unit key
    before = rows(out)
    ckpt = read_checkpoint(out / "last.pt")
    del ckpt["accuracy_unit"]
    ckpt["best"] = {**ckpt["best"], "top1": 100 * ckpt["best"]["top1"]}
    torch.save(ckpt, out / "last.pt")
    percent = [{k: 100 * v if k in ACCURACIES else v for k, v in r.items()} for r in before]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in percent))
    summary = fit(build_config({"out": str(out), "resume": True}), log=lambda _: None)
    after = rows(out)
    assert after[0] == pytest.approx(before[0]) and all(0 <= after[1][k] <= 1 for k in ACCURACIES)
    assert 0 <= summary["best_top1"] <= 1 and read_checkpoint(out / "last.pt")["best"]["top1"] <= 1
    with pytest.raises(AgcnError, match="different config"):
        fit(build_config({"out": str(out), "resume": True, "lr": 0.5}), log=lambda _: None)
    last = (out / "train.log").read_text().splitlines()[-1]
    assert last.startswith("error: ") and "different config" in last


def test_environment_collects_without_a_checkout(monkeypatch):
    import agcn_cli.engine.record as record

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(record.subprocess, "run", no_git)
    env = environment()
    assert env["git_commit"] is None and env["git_dirty"] is None and env["agcn"] == __version__


def test_version_and_completion():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout == f"agcn {__version__}\n"
    r = runner.invoke(app, ["--help"])
    assert "--install-completion" in r.stdout and "--show-completion" in r.stdout and "--version" in r.stdout


def test_no_help_shows_bool():
    """Flags render as flags: `--strict <bool>` invited `--strict true`, which fails."""
    group = typer.main.get_command(app)
    assert len(group.commands) >= 10
    for args in ([], *([name] for name in group.commands)):
        r = runner.invoke(app, [*args, "--help"])
        assert r.exit_code == 0, (args, r.output)
        assert "<bool>" not in r.stdout, args
    text = runner.invoke(app, ["train", "--help"]).stdout
    assert "--nesterov" in text and "--no-nesterov" in text  # default on: the pair stays
    assert runner.invoke(app, ["preprocess", "in", "out", "--strict", "true"]).exit_code == 2  # a flag takes no value


def test_config_file_messages(tmp_path):
    def one_line(path: Path, *needles: str) -> None:
        r = runner.invoke(app, ["train", "--config", str(path)])
        assert r.exit_code == 1 and "Traceback" not in r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], r.stderr
        for needle in needles:
            assert needle in lines[0], lines[0]

    py = tmp_path / "run.py"
    py.write_text("lr = 0.1\n")  # also valid TOML: refused by its suffix, before parsing
    one_line(py, "TOML (.toml) or JSON (.json)", "Python")
    toml = tmp_path / "run.toml"
    toml.write_text('data = "d"\nlr = "fast"\n')
    one_line(toml, 'lr must be a number, got "fast"')
    toml.write_text('data = "d"\nepochs = 1.5\n')
    one_line(toml, "epochs must be an integer, got 1.5")
    toml.write_text('data = "d"\nnesterov = "yes"\n')
    one_line(toml, 'nesterov must be true or false, got "yes"')
    listed = tmp_path / "run.json"
    listed.write_text("[1, 2]")
    one_line(listed, "expected an object of options")
    # JSON's null for an optional field, an integer for a float field
    listed.write_text('{"data": "d", "val": null, "lr": 1}')
    config = build_config({}, listed)
    assert config.val is None and config.lr == 1.0 and isinstance(config.lr, float)


def test_readme_python_snippet_runs(run, tiny, tmp_path, monkeypatch, capsys):
    """The block under README's "Using agcn from Python", run as written on this test's run."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using agcn from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "runs" / "joint").mkdir(parents=True)
    shutil.copyfile(run[0] / "best.pt", tmp_path / "runs" / "joint" / "best.pt")
    (tmp_path / "data").mkdir()
    shutil.copyfile(tiny / "test.h5", tmp_path / "data" / "test.h5")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["logits"].shape == (1, 3) and ns["prob"].shape == (7, 3)
    # the manual 10 clips of sample 0 are exactly what `agcn eval` scores for it
    np.testing.assert_allclose(ns["prob_one"][0].numpy(), ns["prob"][0], atol=1e-6)
    assert 0 <= ns["metrics"].top1 <= 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("S001C001P001R001A001 -> ") and printed[1].startswith("top-1 ")
