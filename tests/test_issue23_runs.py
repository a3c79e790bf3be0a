"""Issue 23, items 3, 4 and 5: a folder is a multi-stream run by its own config.json, not by the
names of its subfolders; `agcn eval` says which checkpoint of a run it tested and takes `best.pt`
on request; arguments given in the wrong order are named as such."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.engine.config import TrainConfig
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
from agcn_cli.models.agcn import ModelConfig, build_model
from tests.helpers import one_error_line

pytestmark = pytest.mark.usefixtures("one_thread")
ROWS = [{"epoch": 1, "train_loss": 2.0, "train_acc": 0.3, "lr": 0.1, "val_top1": 0.4, "val_top5": 0.9}]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_run(folder: Path, modality: str, *, best: bool = True) -> Path:
    """A single-stream run as agcn train leaves it: config.json, metrics.jsonl, last.pt and best.pt
    (other weights than last.pt's, so the two give other scores)."""
    folder.mkdir(parents=True)
    config = asdict(TrainConfig(data="data", out=str(folder), modality=modality, clip_len=8))
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    for seed, name in ((0, "last.pt"), (1, "best.pt"))[: 2 if best else 1]:
        torch.manual_seed(seed)
        model = build_model(ModelConfig(num_classes=3))
        save_checkpoint(folder / name, model, DataInfo(modality=modality, clip_len=8), epoch=1)
    return folder


def write_multistream_run(folder: Path, streams: tuple[str, ...], *, best: bool = True) -> Path:
    """RUN_DIR of agcn train --modality a,b: config.json naming the streams, a run per stream."""
    for s in streams:
        write_run(folder / s, s, best=best)
    config = asdict(TrainConfig(data="data", out=str(folder), modality=",".join(streams), clip_len=8))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


# ---- item 3: a folder of runs is no multi-stream run --------------------------------------------


def test_plot_draws_every_run_of_a_folder_of_runs_apart(tmp_path):
    pytest.importorskip("matplotlib")
    from agcn_cli.evaluation.runs import find_runs
    from agcn_cli.viz import curves

    runs = tmp_path / "runs"
    for name in ("joint", "bone", "a/joint", "b/joint"):
        write_run(runs / name, name.rsplit("/", 1)[-1], best=False)
    write_multistream_run(runs / "both", ("joint", "bone"), best=False)
    found = find_runs(runs)
    assert [p.relative_to(runs).as_posix() for p in found] == [
        "a/joint", "b/joint", "bone", "both/joint", "both/bone", "joint"
    ]  # fmt: skip
    fig = curves.plot_runs(found)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["a/joint", "b/joint", "runs/bone", "both/joint", "both/bone", "runs/joint"]
    r = invoke("plot", runs, "--out", tmp_path / "curves.png")
    assert r.exit_code == 0 and "(6 runs)" in r.stdout, r.output
    r = invoke("plot", runs / "both", "--out", tmp_path / "both.png")  # a multi-stream run: its streams
    assert r.exit_code == 0 and "(2 runs)" in r.stdout, r.output


def test_eval_of_a_folder_of_runs_names_the_runs_in_it(tiny, tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "joint", "joint")
    write_run(runs / "b" / "joint", "joint")
    line = one_error_line(["eval", str(runs), str(tiny / "test.h5")])
    assert f"{runs}: no config.json, no last.pt, no STREAM/last.pt in this folder: not a run of agcn train" in line
    assert "it holds the runs b/joint, joint: give one of them" in line


def test_a_multistream_run_is_told_by_its_config_json(tiny, tmp_path):
    # a single-stream run that happens to hold a folder named like a stream stays one run
    single = write_run(tmp_path / "single", "joint")
    write_run(single / "bone", "bone")
    r = invoke("eval", single, tiny / "test.h5", "--clips", 1, "--json", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["checkpoint"] == str(single / "last.pt")
    run = write_multistream_run(tmp_path / "run", ("joint", "bone"))
    (run / "config.json").write_text(json.dumps({"modality": "joint,speed"}))
    line = one_error_line(["eval", str(run), str(tiny / "test.h5")])
    assert f"{run / 'config.json'}: modality: unknown stream 'speed'" in line


# ---- item 4: which checkpoint; --checkpoint best -------------------------------------------------


def test_eval_run_dir_says_which_checkpoint_and_takes_best(tiny, tmp_path):
    run = write_multistream_run(tmp_path / "run", ("joint", "bone"))
    test = tiny / "test.h5"
    common = ["--clips", 1, "--device", "cpu"]
    r = invoke("eval", run, test, *common, "--json")
    assert r.exit_code == 0, r.output
    last = json.loads(r.stdout)
    assert last["checkpoint"] == "last"
    assert {s: v["checkpoint"] for s, v in last["streams"].items()} == {
        "joint": str(run / "joint" / "last.pt"), "bone": str(run / "bone" / "last.pt")
    }  # fmt: skip
    assert "testing each stream's last.pt (the last epoch's); --checkpoint best" in r.stderr
    r = invoke("eval", run, test, *common, "--json", "--checkpoint", "best")
    assert r.exit_code == 0, r.output
    best = json.loads(r.stdout)
    assert best["checkpoint"] == "best" and best["streams"]["bone"]["checkpoint"] == str(run / "bone" / "best.pt")
    one = json.loads(invoke("eval", run / "bone" / "best.pt", test, *common, "--json").stdout)
    assert best["streams"]["bone"]["top1"] == one["top1"]
    assert "testing each stream" not in r.stderr
    r = invoke("eval", run, test, *common, "--checkpoint", "best", "--out", tmp_path / "scores")
    assert r.exit_code == 0, r.output
    assert "(best.pt of each stream)" in r.stdout and "joint/best.pt" in r.stdout and "bone/best.pt" in r.stdout
    # a single-stream run folder, and the choice checked
    r = invoke("eval", run / "joint", test, *common, "--checkpoint", "best")
    assert r.exit_code == 0 and f"agcn eval {run / 'joint' / 'best.pt'} on" in r.stdout, r.output
    assert one_error_line(["eval", str(run), str(test), "--checkpoint", "first"]).endswith("choose one of: last, best")
    line = one_error_line(["eval", str(run / "joint" / "last.pt"), str(test), "--checkpoint", "best"])
    assert "--checkpoint best: picks last.pt or best.pt of a run folder" in line


def test_missing_best_pt_is_one_line(tiny, tmp_path):
    run = write_multistream_run(tmp_path / "run", ("joint", "bone"), best=False)
    for folder in (run, run / "bone"):
        line = one_error_line(["eval", str(folder), str(tiny / "test.h5"), "--checkpoint", "best"])
        assert f"{run / 'joint' if folder == run else folder}: no best.pt: no validation has run" in line
        assert line.endswith("test last.pt with --checkpoint last")


# ---- item 5 (part): the arguments swapped --------------------------------------------------------


def test_swapped_arguments_are_named(tiny, ckpt, tmp_path):
    test = tiny / "test.h5"
    line = one_error_line(["eval", str(test), str(ckpt)])
    assert line == (
        f"error: agcn eval: {test} is an HDF5 (split) file and {ckpt} a checkpoint; the checkpoint comes first: "
        f"agcn eval {ckpt} {test}"
    )
    run = write_run(tmp_path / "run", "joint")
    assert f"and {run} a run folder; the checkpoint comes first" in one_error_line(["eval", str(test), str(run)])
