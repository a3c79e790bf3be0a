"""`agcn train`: learning on a synthetic cross-subject benchmark, bit-identical resume, DDP on
CPU (gloo, 2 processes), run-folder contents, and one-line errors for bad input.

The learning test's choices (classes, sizes, clip length, lr) are explained in
data_specs/synthetic.md, "Learning on CPU".
"""

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import h5py
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.engine.config import RECORDS, TrainConfig, build_config
from agcn_cli.engine.data import BatchLoader, SkeletonDataset
from agcn_cli.engine.fit import fit
from agcn_cli.engine.loop import validate
from agcn_cli.errors import AgcnError
from agcn_cli.io.checkpoint import read_checkpoint
from agcn_cli.models.loading import load_model
from agcn_cli.sources.formats import convert
from agcn_cli.sources.pipeline import ConvertConfig
from agcn_cli.sources.synth import SynthConfig, generate
from tests.helpers import signal_in_step, tiny_config, write_split

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
TIMING = {"samples_per_s", "data_wait_s", "epoch_s", "wall_s"}

# Learning on CPU: 4 clearly distinct single-person classes (hand waving, kicking, jump up, sit
# down), short sequences, held-out performers (xsub: 1 2 4 5 8 train, 3 6 7 test).
LEARN_CLASSES = (23, 24, 27, 8)
LEARN_SYNTH = SynthConfig(actions=LEARN_CLASSES, samples_per_class=24, min_frames=30, max_frames=50, workers=1)
LEARN = dict(clip_len=12, epochs=5, batch_size=8, lr=0.05, auto_scale_lr=False, val_every=1, num_classes=30)


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def untimed(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows(run)]


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def xsub(tmp_path_factory) -> Path:
    """A small synthetic NTU60 cross-subject benchmark: DATA_DIR with train.h5 and test.h5."""
    root = tmp_path_factory.mktemp("xsub")
    generate(root / "raw", LEARN_SYNTH)
    convert(ConvertConfig(root / "raw", root / "data", benchmark="ntu60-xsub", workers=1))
    return root / "data"


@pytest.mark.slow
def test_learns_held_out_subjects(xsub, tmp_path):
    run = tmp_path / "run"
    config = TrainConfig(data=str(xsub), out=str(run), **LEARN)
    summary = fit(config, log=quiet)
    history = rows(run)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    # chance is 25 %; a broken loss, sampler, label or optimizer stays near it (measured: 97 %; a fraction)
    assert history[-1]["val_top1"] >= 0.6, history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # the run folder: resolved config, last and best checkpoints loadable with weights_only
    saved = json.loads((run / "config.json").read_text())
    assert {k: v for k, v in saved.items() if k not in RECORDS} == asdict(config)
    last, best = read_checkpoint(run / "last.pt"), read_checkpoint(run / "best.pt")
    assert last["epoch"] == 5 and best["epoch"] == summary["best_epoch"]
    assert set(last["rng"]) == {"torch", "cuda", "numpy", "python"} and last["partial"] is None
    model, data, _ = load_model(run / "best.pt")
    assert (data.modality, data.clip_len, data.benchmark, data.layout) == ("joint", 12, "ntu60-xsub", "ntu25")
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in model.state_dict())
    # best.pt holds the weights that scored best_top1 on the validation split
    val = BatchLoader(SkeletonDataset(xsub / "test.h5", clip_len=12, test_mode=True), 16)
    assert validate(model, val, torch.device("cpu"))["top1"] == pytest.approx(summary["best_top1"])


def test_resume_is_bit_identical(tiny, tmp_path, monkeypatch):
    whole = fit(tiny_config(tiny, tmp_path / "whole"), log=quiet)

    # stopped at an epoch boundary (--stop-after), then resumed
    split = tmp_path / "split"
    assert fit(tiny_config(tiny, split, stop_after=1), log=quiet)["epoch"] == 1
    fit(build_config({"out": str(split), "resume": True}), log=quiet)

    # SIGTERM in epoch 2's first step: the step finishes, last.pt is saved mid-epoch, resume skips the done batches
    killed = tmp_path / "killed"

    def log(line: str) -> None:
        if line.startswith("epoch 1/"):
            signal_in_step(monkeypatch, 1)

    first = fit(tiny_config(tiny, killed), log=log)
    assert first["interrupted"] == "SIGTERM" and read_checkpoint(killed / "last.pt")["partial"]["step"] == 1
    monkeypatch.undo()
    fit(build_config({"out": str(killed), "resume": True}), log=quiet)

    reference = read_checkpoint(tmp_path / "whole" / "last.pt")
    for run in (split, killed):
        assert untimed(run) == untimed(tmp_path / "whole")
        ckpt = read_checkpoint(run / "last.pt")
        assert ckpt["epoch"] == 2
        for key, value in reference["model"].items():
            assert torch.equal(ckpt["model"][key], value), key
        assert ckpt["optimizer"]["state"].keys() == reference["optimizer"]["state"].keys()
        for i, state in reference["optimizer"]["state"].items():
            assert torch.equal(ckpt["optimizer"]["state"][i]["momentum_buffer"], state["momentum_buffer"])
        assert ckpt["best"] == reference["best"] == {"top1": whole["best_top1"], "epoch": whole["best_epoch"]}


def test_resume_a_run_begun_before_newer_fields(tiny, tmp_path):
    """A last.pt and config.json without the fields added since (fine-tuning, the 2s-AGCN recipe, custom
    layouts, label names) resume as the defaults they had, bit for bit."""
    whole = tmp_path / "whole"
    fit(tiny_config(tiny, whole), log=quiet)
    run = tmp_path / "old"
    fit(tiny_config(tiny, run, stop_after=1), log=quiet)
    newer = {
        "train_config": ("init_from", "freeze_epochs", "backbone_lr_mult", "schedule", "lr_steps", "warmup_epochs",
                         "sampling", "window", "random_choose", "random_move", "drop_last"),
        "data": ("layout_spec", "label_names", "test_window"),
        "model_config": ("layout_spec",),
    }  # fmt: skip
    ckpt = torch.load(run / "last.pt", weights_only=True)
    for part, keys in newer.items():
        assert set(keys) <= set(ckpt[part]), part
        ckpt[part] = {k: v for k, v in ckpt[part].items() if k not in keys}
    torch.save(ckpt, run / "last.pt")
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({k: v for k, v in saved.items() if k not in newer["train_config"]}))
    fit(build_config({"out": str(run), "resume": True}), log=quiet)
    resumed, reference = read_checkpoint(run / "last.pt"), read_checkpoint(whole / "last.pt")
    assert resumed["epoch"] == 2
    for key, value in reference["model"].items():
        assert torch.equal(resumed["model"][key], value), key


def test_config_file_and_flags(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('data = "d"\nlr = 0.3\nepochs = 3\nclip-len = 32\nnesterov = false\n')
    config = build_config({"epochs": 5, "modality": "bone", "lr": None}, toml)
    assert (config.lr, config.epochs, config.clip_len, config.nesterov, config.modality) == (0.3, 5, 32, False, "bone")
    assert config.scaled_lr() == pytest.approx(0.3)
    assert replace(config, batch_size=64).scaled_lr() == pytest.approx(0.15)  # linear scaling from 128
    toml.write_text('data = "d"\nlearning_rate = 0.3\n')
    with pytest.raises(AgcnError, match="unknown config keys learning_rate"):
        build_config({}, toml)
    with pytest.raises(AgcnError, match="choose one of: joint, bone, joint-motion, bone-motion"):
        build_config({"data": "d", "modality": "velocity"})
    with pytest.raises(AgcnError, match="positive with --nesterov, got 0"):
        build_config({"data": "d", "momentum": 0.0})
    assert build_config({"data": "d", "momentum": 0.0, "nesterov": False}).momentum == 0.0


def cli(*args: str):
    return runner.invoke(app, ["train", *args])


def one_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error:"), result.stderr
    for needle in needles:
        assert needle in line, line
    return line


def test_cli_run_and_refusals(tiny, tmp_path):
    run = tmp_path / "run"
    common = ["--clip-len", "4", "--epochs", "2", "--batch-size", "4", "--no-tensorboard", "--deterministic"]
    result = cli(str(tiny), "--out", str(run), "--modality", "bone-motion", "--stop-after", "1", *common)
    assert result.exit_code == 0, result.output
    assert "no stored 'bone-motion' stream, derived from joint" in result.stderr  # derived on the fly, and said
    assert "epoch 1/2" in result.stderr and "1 epochs" in result.stdout
    assert json.loads((run / "config.json").read_text())["modality"] == "bone-motion"

    one_error(cli(str(tiny), "--out", str(run), *common), "already holds a run", "--resume", "--overwrite")
    # said before the data is read (a full split takes a while): even with no data at all
    one_error(cli(str(tmp_path / "nowhere"), "--out", str(run), *common), "already holds a run")
    line = one_error(cli("--out", str(run), "--resume", "--lr", "0.5", "--modality", "joint"), "different config")
    assert "lr 0.5" in line and "modality 'joint'" in line and "clip_len" not in line
    result = cli("--out", str(run), "--resume")  # everything else from the run's config.json
    assert result.exit_code == 0 and "resuming" in result.stderr and len(rows(run)) == 2, result.output

    blocker = tmp_path / "file"
    blocker.write_text("")
    one_error(cli(str(tiny), "--out", str(blocker / "run"), *common), "cannot write the run folder")
    one_error(cli(str(tiny), "--out", str(tmp_path / "r2"), "--num-classes", "2", *common), "label 2", "2 classes")
    empty = tmp_path / "empty"
    empty.mkdir()
    write_split(empty / "train.h5", ())
    one_error(cli(str(empty), "--out", str(tmp_path / "r3"), *common), "holds no samples")
    one_error(cli(str(tmp_path / "nowhere"), "--out", str(tmp_path / "r4")), "no such file")
    one_error(cli(str(tiny), "--out", str(tmp_path / "r5"), "--precision", "fp16"), "fp32, tf32, bf16")


def tf32_flags() -> tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def test_precision_fp32_is_float32_and_tf32_is_asked_for(tiny, tmp_path, monkeypatch):
    import agcn_cli.engine.fit as train_module

    seen, lines, before = [], [], tf32_flags()
    original = train_module.train_one_epoch

    def spy(*args, **kwargs):
        seen.append(tf32_flags())
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", spy)
    fit(tiny_config(tiny, tmp_path / "tf32", epochs=1, precision="tf32"), log=lines.append)
    assert seen == [(True, True)]
    fit(tiny_config(tiny, tmp_path / "fp32", epochs=1, precision="fp32"), log=lines.append)
    assert seen[-1] == (False, False)  # PyTorch's default would run the convolutions in TF32 on CUDA
    assert tf32_flags() == before  # process-wide flags: left as found
    if not torch.cuda.is_available():
        assert "--precision tf32 applies on CUDA only; training in float32" in lines


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("agcn_cli.engine.data._check_finite", lambda *a: None)  # NaN frames refused at load
    monkeypatch.setenv("AGCN_JOINT_CACHE", "off")  # (and by the joint cache as it is written)
    run = tmp_path / "run"
    fit(tiny_config(tiny, run, stop_after=1), log=quiet)
    before = (run / "last.pt").read_bytes()
    bad = tmp_path / "bad.h5"
    write_split(bad, (5, 9, 12, 7, 10, 6, 8, 11, 4, 9, 10, 6))
    with h5py.File(bad, "r+") as f:
        f["joint"][...] = float("nan")
    with pytest.raises(AgcnError, match=r"non-finite training loss at epoch 2, batch 1.*last.pt holds epoch 1"):
        fit(build_config({"out": str(run), "resume": True, "data": str(bad), "val": str(tiny / "test.h5")}), log=quiet)
    assert (run / "last.pt").read_bytes() == before and len(rows(run)) == 1


def test_resume_refuses_another_model_or_sharding(tiny, tmp_path):
    run = tmp_path / "run"
    fit(tiny_config(tiny, run, stop_after=1), log=quiet)
    other = tmp_path / "other.h5"
    other.write_bytes((tiny / "train.h5").read_bytes())
    with h5py.File(other, "r+") as f:
        f.attrs["num_classes"] = 5  # the classifier size comes from the file: same flags, another model
    with pytest.raises(AgcnError, match=r"different config: model num_classes 5 \(checkpoint: 3\)"):
        fit(
            build_config({"out": str(run), "resume": True, "data": str(other), "val": str(tiny / "test.h5")}), log=quiet
        )
    # saved mid-epoch by 2 processes: its done batches mean nothing to 1
    ckpt = read_checkpoint(run / "last.pt")
    torch.save({**ckpt, "partial": {"step": 1}, "world_size": 2}, run / "last.pt")
    with pytest.raises(AgcnError, match="saved mid-epoch by 2 process"):
        fit(build_config({"out": str(run), "resume": True}), log=quiet)


@pytest.mark.slow
def test_ddp_two_processes_gloo(tiny, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "agcn_cli",
           "train", str(tiny),
           "--out", str(run), "--clip-len", "4", "--epochs", "2", "--batch-size", "4", "--val-every", "1",
           "--no-tensorboard", "--device", "cpu"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # one set of outputs, written by rank 0 alone
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.jsonl", "train.log"]
    assert proc.stderr.count("epoch 2/2 ") == 1 and proc.stdout.count("2 epochs") == 1
    history = rows(run)
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(r["train_samples"] == 12 for r in history)  # 2 ranks x 6 samples, no sample twice
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["world_size"] == 2
    # the ranks' merged validation equals scoring the saved model on the whole split in one process
    model, _, _ = load_model(run / "last.pt")
    val = BatchLoader(SkeletonDataset(tiny / "test.h5", clip_len=4, test_mode=True), 4)
    single = validate(model, val, torch.device("cpu"))
    assert single["top1"] == pytest.approx(history[-1]["val_top1"])
    # the same weights and BatchNorm statistics on every rank (rank 0's, broadcast before validating)
    assert single["loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-6, abs=0)
