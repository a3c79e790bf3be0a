"""Issue 13's new options and inputs under careless or hostile use: each bad value is one line
naming the file (or option) and the problem, exit status 1, no traceback, nothing overwritten."""

import json
import pickle
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.engine.config import build_config
from agcn_cli.errors import AgcnError
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
from agcn_cli.models.agcn import ModelConfig, build_model
from agcn_cli.skeleton.layouts import get_layout, load_layout
from agcn_cli.sources.kinetics import read_labels, read_video
from agcn_cli.sources.pipeline import SampleError
from agcn_cli.sources.safe_pickle import load_pickle
from tests.helpers import one_error_line, write_split

DEEP = "[" * 5000 + "]" * 5000  # valid JSON nesting deeper than Python's recursion limit


# ---- train options and config files ------------------------------------------------------------


@pytest.mark.parametrize("option", ["--lr", "--backbone-lr-mult", "--min-lr", "--weight-decay"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_floats_are_refused(option, value, tmp_path):
    # NaN passed `lr <= 0` and every range check: the run started and died on a NaN loss
    line = one_error_line(["train", str(tmp_path / "d"), "--out", str(tmp_path / "run"), option, value])
    assert f"{option[2:].replace('-', '_')} must be a finite number" in line
    assert not (tmp_path / "run").exists()


def test_nan_in_a_config_file(tmp_path):
    (tmp_path / "c.toml").write_text("backbone_lr_mult = nan\n")
    with pytest.raises(AgcnError, match="backbone_lr_mult must be a finite number, got nan"):
        build_config({"data": "d"}, tmp_path / "c.toml")


def test_lr_steps_twice_or_beyond_the_epochs():
    base = {"data": "d", "schedule": "step", "epochs": 5}
    with pytest.raises(AgcnError, match="lr_steps lists an epoch twice"):
        build_config({**base, "lr_steps": "2,2"})
    with pytest.raises(AgcnError, match="lr_steps 3,30 reach beyond the run's 5 epochs"):
        build_config({**base, "lr_steps": "30,3"})
    with pytest.raises(AgcnError, match="beyond the run's 5 epochs"):
        build_config({**base, "lr_steps": "99999999999999999999999"})
    assert build_config({**base, "lr_steps": "5,2"}).lr_milestones() == (2, 5)  # 5: after the last epoch


@pytest.mark.parametrize("option", ["--clip-len", "--window"])
def test_frame_counts_that_cannot_fit_in_memory(option, tmp_path):
    # clip_len / window 10^8 ran until numpy failed to allocate 224 GiB, with a traceback
    line = one_error_line(["train", str(tmp_path / "d"), option, "100000000", "--sampling", "full"])
    assert f"{option[2:].replace('-', '_')} 100000000 is beyond 10000 frames" in line


def test_config_file_nested_too_deep(tmp_path):
    (tmp_path / "c.json").write_text('{"lr": ' + DEEP + "}")
    line = one_error_line(["train", str(tmp_path / "d"), "--config", str(tmp_path / "c.json")])
    assert "c.json: cannot read the config file (maximum recursion depth" in line


# ---- layout files ------------------------------------------------------------------------------


def test_layout_files_nested_too_deep_huge_or_a_folder(tmp_path):
    (tmp_path / "deep.json").write_text(DEEP)
    assert "deep.json: not a layout: its JSON nests too deep to read" in one_error_line(
        ["model-info", "--layout", str(tmp_path / "deep.json")]
    )
    raw = get_layout("coco17").to_dict()
    n = 100_000  # a connected chain: valid but for its size; the adjacency alone needed 224 GiB
    raw.update(name="chain", joint_names=[f"j{i}" for i in range(n)], graphs={"g": [[i, i - 1] for i in range(1, n)]},
               bones=[[0, 0]] + [[i, i - 1] for i in range(1, n)])  # fmt: skip
    (tmp_path / "chain.json").write_text(json.dumps(raw))
    assert "chain.json: 100000 joints; a layout has at most 1000" in one_error_line(
        ["model-info", "--layout", str(tmp_path / "chain.json")]
    )
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(AgcnError, match="dir.json: is a folder, not a layout file"):
        load_layout(str(tmp_path / "dir.json"))


# ---- inputs: Kinetics JSON, pickles, split files -------------------------------------------------


def test_kinetics_json_nested_too_deep(tmp_path):
    (tmp_path / "v.json").write_text('{"data": ' + DEEP + "}")
    with pytest.raises(SampleError, match="its JSON nests too deep"):
        read_video(tmp_path / "v.json")
    (tmp_path / "kinetics_val_label.json").write_text(DEEP)
    with pytest.raises(AgcnError, match="kinetics_val_label.json: not a label file: its JSON nests too deep"):
        read_labels(tmp_path / "kinetics_val_label.json")


def test_truncated_pickles_are_truncated_not_unsafe(tmp_path):
    rng = np.random.default_rng(0)
    ann = {"frame_dir": "a", "label": 0, "total_frames": 4, "keypoint": rng.normal(size=(1, 4, 25, 3))}
    whole = pickle.dumps({"split": {"xsub_val": ["a"]}, "annotations": [ann]}, protocol=2)
    global_at = whole.index(b"cnumpy") + 1  # protocol 2's GLOBAL opcode: "numpy.core.multiarray\n_reconstruct\n"
    path = tmp_path / "cut.pkl"
    for n in [*range(0, len(whole), 5), global_at + 9]:
        path.write_bytes(whole[:n])
        with pytest.raises(AgcnError, match="cut.pkl: not a readable pickle") as e:
            load_pickle(path)
        assert "refusing" not in str(e.value)  # a cut global name read as an unsafe one before


def test_sample_with_an_h5_that_is_not_a_split_file(ckpt, tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    # before: "--sample picks samples of split .h5 inputs, and none was given"
    line = one_error_line(["predict", str(ckpt), str(tmp_path / "other.h5"), "--sample", "a"])
    assert "other.h5: not an agcn skeleton file" in line
    split = write_split(tmp_path / "test.h5", (9, 10))
    r = CliRunner().invoke(app, ["predict", str(ckpt), str(tmp_path / "other.h5"), str(split), "--sample",
                                 "S001C001P001R001A002", "--json"])  # fmt: skip
    assert r.exit_code == 1 and "Traceback" not in r.output
    result = json.loads(r.stdout)
    assert [p["name"] for p in result["predictions"]] == ["S001C001P001R001A002"]
    assert [f["input"] for f in result["failed"]] == [str(tmp_path / "other.h5")]


# ---- exported files given as checkpoints; export outputs -------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit: only to write an archive
def test_exported_programs_are_not_checkpoints(ckpt, tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "m.ts"))
    torch.export.save(torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),)), str(tmp_path / "m.pt2"))
    split = write_split(tmp_path / "test.h5", (9,))
    # before: a UserWarning line, then torch's weights_only message cut at 120 characters
    assert "m.ts: a TorchScript archive, not a checkpoint" in one_error_line(
        ["predict", str(tmp_path / "m.ts"), str(split)]
    )
    assert "m.pt2: a torch.export program (.pt2), not a checkpoint" in one_error_line(
        ["train", str(split), "--out", str(tmp_path / "run"), "--init-from", str(tmp_path / "m.pt2")]
    )
    assert not (tmp_path / "run").exists()


def test_export_onto_a_folder_or_onto_its_checkpoint(ckpt, tmp_path):
    folder = tmp_path / "model.ts"
    folder.mkdir()
    for flags in ([], ["--overwrite"]):  # before: "already exists", then "...tmp-1234: Is a directory"
        line = one_error_line(["export", str(ckpt), str(folder), "-f", "mmaction2", *flags])
        assert line == f"error: {folder}: is a folder; give a file name to write"
    copy = tmp_path / "copy.pt"
    copy.write_bytes(ckpt.read_bytes())
    # before: the checkpoint was replaced by its own export
    line = one_error_line(["export", str(copy), str(copy), "-f", "mmaction2", "--overwrite"])
    assert "copy.pt: is the checkpoint being exported" in line
    assert copy.read_bytes() == ckpt.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_label_map_names_print_as_written(tmp_path):
    # a label-map name "[bold red]boom[/]" printed as "boom" in predict's table (rich markup)
    names = ("walk", "[bold red]boom[/]", "sit [down]")
    data = DataInfo(clip_len=8, label_names=names)
    save_checkpoint(tmp_path / "named.pt", build_model(ModelConfig(num_classes=3)), data, epoch=1)
    split = write_split(tmp_path / "test.h5", (9,))
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "named.pt"), str(split), "--top", "3"])
    assert r.exit_code == 0, r.output
    assert "1 [bold red]boom[/]" in r.output and "2 sit [down]" in r.output


def test_a_json_that_is_no_video_says_how_json_is_read(ckpt, tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"lr": 0.1}')
    # before: "holds openpose18 (18 joints: x, y, score) skeletons", with no word on why
    line = one_error_line(["predict", str(ckpt), str(config)])
    assert "config.json: holds openpose18 (18 joints: x, y, score) skeletons (.json inputs are read as" in line


def test_label_map_bom_control_characters_and_bad_bytes(tmp_path):
    from agcn_cli.sources.pipeline import read_label_map

    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffwave\r\njump\r\n".encode())
    assert read_label_map(bom) == ("wave", "jump")  # a BOM and CRLF line ends are not part of the names
    for i, bad in enumerate(("wave\n0\tjump\n", "wave\nju\x00mp\n", "wave\n\x1b[31mjump\n")):
        path = tmp_path / f"ctl{i}.txt"
        path.write_text(bad)
        with pytest.raises(AgcnError, match=rf"ctl{i}.txt: line 2: class name .* holds control characters"):
            read_label_map(path)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"wave\ncaf\xe9\n")
    with pytest.raises(AgcnError, match="latin.txt: line 2: not UTF-8 text"):
        read_label_map(latin)


def test_out_of_memory_is_one_line(monkeypatch):
    def greedy(*_a, **_k):
        raise MemoryError("Unable to allocate 224. GiB for an array")

    monkeypatch.setattr("agcn_cli.io.splitfile.summarize", greedy)
    result = CliRunner().invoke(app, ["info", __file__])
    assert result.exit_code == 1, result.output
    assert "out of memory (Unable to allocate 224. GiB" in result.stderr and "Traceback" not in result.stderr


def test_config_file_values_name_the_file_and_epochs_are_bounded(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('data = "d"\nclip_len = -1\n')
    with pytest.raises(AgcnError, match=r"run.toml: clip_len must be at least 1, got -1"):
        build_config({}, toml)
    with pytest.raises(AgcnError, match=r"^clip_len must be at least 1, got -2"):  # a flag's value: no file named
        build_config({"clip_len": -2}, toml)
    toml.write_text('data = "d"\nlr = nan\n')
    with pytest.raises(AgcnError, match=r"run.toml: lr must be a finite number, got nan"):
        build_config({}, toml)
    toml.write_text('data = "d"\nepochs = 9223372036854775807\n')
    with pytest.raises(AgcnError, match=r"run.toml: epochs must be at most 10000"):
        build_config({}, toml)


def test_train_refuses_non_finite_frames(tmp_path):
    import h5py

    data = tmp_path / "d"
    data.mkdir()
    write_split(data / "train.h5", (6, 7, 8, 9))
    with h5py.File(data / "train.h5", "r+") as f:
        f["joint"][7, 0, 3, 1] = np.nan  # the second sample's first frame: offset 6
        second = f["name"].asstr()[1]
    result = CliRunner().invoke(
        app, ["train", str(data / "train.h5"), "--out", str(tmp_path / "run"), "--epochs", "1", "--no-tensorboard"]
    )
    assert result.exit_code == 1, result.output
    assert f"train.h5: sample {second!r} holds NaN or infinite values" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_predict_refuses_samples_whose_scores_overflow(tmp_path):
    """Finite but huge joints (1e30) overflow inside the model: that sample fails in one line, the others are
    classified, the exit status says so."""
    import h5py

    from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
    from agcn_cli.models.agcn import ModelConfig, build_model

    write_split(tmp_path / "test.h5", (6, 7, 8))
    with h5py.File(tmp_path / "test.h5", "r+") as f:
        f["joint"][0] = 1e30  # the first sample's first frame
        names = list(f["name"].asstr()[:])
    save_checkpoint(tmp_path / "m.pt", build_model(ModelConfig(num_classes=3)), DataInfo(clip_len=4), epoch=1)
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "m.pt"), str(tmp_path / "test.h5"), "--json"])
    assert r.exit_code == 1, r.output
    out = json.loads(r.stdout)
    assert [p["name"] for p in out["predictions"]] == names[1:]
    assert len(out["failed"]) == 1 and names[0] in out["failed"][0]["input"]
    assert "largest |coordinate| 1e+30 is beyond 1e+06" in out["failed"][0]["error"]
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("partial", {"step": -1}, "'partial' step must be a non-negative number, got -1"),
        ("partial", {"step": 99}, "'partial' step 99 is beyond the epoch's"),
        ("partial", {"steps": 1}, "'partial' is not an interrupted epoch's sums (found ['steps'])"),
        ("partial", {"step": "1"}, "'partial' step must be a non-negative number, got '1'"),
        ("optimizer", {"state": {}, "param_groups": []}, "its optimizer state do not fit this run"),
        ("rng", {"torch": torch.zeros(3, dtype=torch.uint8)}, "its RNG states do not fit this run"),
    ],
)
def test_resume_checks_what_last_pt_holds(tiny, tmp_path, field, value, message):
    from agcn_cli.engine.fit import fit

    run = tmp_path / "run"
    flags = {"data": str(tiny), "out": str(run), "clip_len": 4, "epochs": 2, "batch_size": 4, "tensorboard": False}
    fit(build_config({**flags, "stop_after": 1}), log=lambda _: None)
    ckpt = torch.load(run / "last.pt", weights_only=False)
    torch.save({**ckpt, field: value}, run / "last.pt")
    with pytest.raises(AgcnError, match=re.escape(message)):
        fit(build_config({**flags, "resume": True}), log=lambda _: None)
