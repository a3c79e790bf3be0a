"""Issue 15: split files and checkpoints of the wrong type or range, through the CLI.

Each case breaks one field of a valid file (h5py on a split file from `write_split`, a dict
edited and `torch.save`d for a checkpoint); every command that reads it must exit 1 with one
line `error: FILE: ...field...`, and no traceback.
"""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
from agcn_cli.io.splitfile import check_split_file
from agcn_cli.models.agcn import ModelConfig, build_model
from tests.helpers import del_attr, replace, set_attr, set_values, write_split

runner = CliRunner()


def error_line(args: list[str], path, field: str) -> str:
    """The command fails cleanly: exit 1, no traceback, its last line names `path` and `field`."""
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit)), r.output
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and str(path) in line and field in line, r.stderr
    return line


def swap_offsets(f):
    f["offset"][1:3] = f["offset"][1:3][::-1]


def grow_last(f):
    f["num_frames"][-1] += 100  # offsets and lengths past the end of the frames


SPLIT_CASES = {  # id -> (edit of the open file, the field the error must name)
    "schema_version text": (set_attr("schema_version", "one"), "schema_version"),
    "schema_version float": (set_attr("schema_version", 1.5), "schema_version"),
    "num_classes text": (set_attr("num_classes", "many"), "num_classes"),
    "num_classes zero": (set_attr("num_classes", 0), "num_classes"),
    "num_classes float": (set_attr("num_classes", 3.0), "num_classes"),
    "num_samples missing": (del_attr("num_samples"), "num_samples"),
    "num_samples text": (set_attr("num_samples", "eight"), "num_samples"),
    "num_samples too many": (set_attr("num_samples", 99), "offset"),
    "layout unknown": (set_attr("layout", "ntu26"), "layout"),
    "layout integer": (set_attr("layout", 25), "layout"),
    "layout_spec bad json": (set_attr("layout_spec", "{not json"), "layout"),
    "normalized text": (set_attr("normalized", "yes"), "normalized"),
    "label_names not a list": (set_attr("label_names", "[1, 2"), "label_names"),
    "name integers": (replace("name", lambda old: np.arange(len(old))), "name"),
    "name empty": (set_values("name", 2, ""), "name"),
    "name twice": (set_values("name", 5, "S001C001P001R001A002"), "name"),
    "label floats": (replace("label", lambda old: old.astype(np.float32) + 0.5), "label"),
    "label minus one": (set_values("label", 0, -1), "label"),
    "label equal to num_classes": (set_values("label", 4, 3), "label"),
    "label missing": (lambda f: f.__delitem__("label"), "label"),
    "label two-dimensional": (replace("label", lambda old: old[:, None]), "label"),
    "label one short": (replace("label", lambda old: old[:-1]), "label"),
    "joint 24 joints": (replace("joint", lambda old: old[:, :, :24]), "joint"),
    "joint 2 channels": (replace("joint", lambda old: old[..., :2]), "joint"),
    "joint integers": (replace("joint", lambda old: old.astype(np.int32)), "joint"),
    "bone wrong shape": (lambda f: f.create_dataset("bone", data=np.zeros((3, 2, 25, 3), np.float32)), "bone"),
    "offset negative": (set_values("offset", 1, -5), "offset"),
    "offset not monotonic": (swap_offsets, "offset"),
    "offset past the end": (set_values("offset", 7, 10_000), "offset"),
    "num_frames past the end": (grow_last, "num_frames"),
    "num_frames one past the end": (set_values("num_frames", 7, 41), "joint"),
    "num_frames zero": (set_values("num_frames", 3, 0), "num_frames"),
    "num_frames negative": (set_values("num_frames", 3, -2), "num_frames"),
    "num_persons negative": (set_values("num_persons", 0, -1), "num_persons"),
    "format an array": (set_attr("format", np.array([b"a", b"b"])), "format"),
    "num_classes an array": (set_attr("num_classes", np.array([3, 4])), "num_classes"),
    "num_classes empty": (set_attr("num_classes", h5py.Empty("i")), "num_classes"),
    "label a group": (lambda f: (f.__delitem__("label"), f.create_group("label")), "label"),
    "name compound": (replace("name", lambda old: np.zeros(len(old), dtype=[("a", "i4")])), "name"),
    "label uint64 past int64": (replace("label", lambda old: np.full(len(old), 2**63 + 5, np.uint64)), "label"),
    "num_frames huge": (replace("num_frames", lambda old: np.full(len(old), 2**62, np.int64)), "num_frames"),
}


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    d = tmp_path_factory.mktemp("valid")
    write_split(d / "train.h5")
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=3))
    save_checkpoint(d / "joint.pt", model, DataInfo(clip_len=8), epoch=1)
    return d


def broken_split(valid, tmp_path, edit) -> "Path":  # noqa: F821
    path = tmp_path / "data" / "train.h5"
    path.parent.mkdir()
    shutil.copy(valid / "train.h5", path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


@pytest.mark.parametrize("case", list(SPLIT_CASES))
def test_bad_split_file_info(case, valid, tmp_path):
    edit, field = SPLIT_CASES[case]
    path = broken_split(valid, tmp_path, edit)
    error_line(["info", str(path)], path, field)


def test_zero_frame_sample_is_named(valid, tmp_path):
    path = broken_split(valid, tmp_path, set_values("num_frames", 3, 0))
    line = error_line(["info", str(path)], path, "num_frames")
    assert "S001C001P001R001A004" in line


def test_missing_channels_read_as_the_layouts(valid, tmp_path):
    path = broken_split(valid, tmp_path, del_attr("channels"))
    assert check_split_file(path)["channels"] == "x,y,z"


@pytest.mark.parametrize("case", ["label minus one", "num_frames zero", "offset past the end", "joint 24 joints"])
def test_bad_split_file_eval_train_predict(case, valid, tmp_path):
    edit, field = SPLIT_CASES[case]
    path = broken_split(valid, tmp_path, edit)
    ckpt = str(valid / "joint.pt")
    error_line(["eval", ckpt, str(path), "--clips", "1", "--device", "cpu"], path, field)
    error_line(["predict", ckpt, str(path), "--clips", "1"], path, field)
    shutil.copy(path, path.parent / "test.h5")
    common = ["--epochs", "1", "--clip-len", "4", "--batch-size", "4", "--no-tensorboard"]
    error_line(["train", str(path.parent), "--out", str(tmp_path / "run"), *common], path, field)
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("case", ["layout unknown", "num_classes text", "offset past the end"])
def test_bad_split_file_streams(case, valid, tmp_path):
    edit, field = SPLIT_CASES[case]
    path = broken_split(valid, tmp_path, edit)
    before = path.read_bytes()
    error_line(["streams", str(path)], path, field)
    assert path.read_bytes() == before


# ---- checkpoints ------------------------------------------------------------------------------


def drop(key):
    return lambda c: c.pop(key)


def put(where, key, value):
    """Set `c[where][key]` (or `c[key]` when `where` is None)."""

    def edit(c):
        (c if where is None else c[where])[key] = value

    return edit


def remove(where, key):
    return lambda c: c[where].pop(key)


CHECKPOINT_CASES = {  # id -> (edit of the checkpoint dict, the field the error must name)
    "model_config missing": (drop("model_config"), "model_config"),
    "data missing": (drop("data"), "data"),
    "model missing": (drop("model"), "model"),
    "model_config text": (put(None, "model_config", "ntu25"), "model_config"),
    "model a list": (put(None, "model", [1, 2]), "model"),
    "model not tensors": (put("model", "fc.weight", "weights"), "model"),
    "version text": (put(None, "version", "1"), "version"),
    "epoch text": (put(None, "epoch", "five"), "epoch"),
    "epoch float": (put(None, "epoch", 1.5), "epoch"),
    "epoch negative": (put(None, "epoch", -1), "epoch"),
    "num_classes text": (put("model_config", "num_classes", "many"), "num_classes"),
    "num_classes zero": (put("model_config", "num_classes", 0), "num_classes"),
    "num_classes missing": (remove("model_config", "num_classes"), "num_classes"),
    "num_classes bool": (put("model_config", "num_classes", True), "num_classes"),
    "in_channels zero": (put("model_config", "in_channels", 0), "in_channels"),
    "num_persons float": (put("model_config", "num_persons", 2.0), "num_persons"),
    "model_config unknown field": (put("model_config", "depth", 10), "depth"),
    "model layout unknown": (put("model_config", "layout", "ntu99"), "layout"),
    "variant unknown": (put("model_config", "variant", "gcn"), "variant"),
    "dropout text": (put("model_config", "dropout", "0.5"), "dropout"),
    "modality unknown": (put("data", "modality", "colour"), "modality"),
    "modality missing": (remove("data", "modality"), "modality"),
    "clip_len zero": (put("data", "clip_len", 0), "clip_len"),
    "clip_len text": (put("data", "clip_len", "100"), "clip_len"),
    "test_window negative": (put("data", "test_window", -300), "test_window"),
    "label_names integers": (put("data", "label_names", [1, 2, 3]), "label_names"),
    "data layout_spec bad": (put("data", "layout_spec", "{bad"), "layout"),
    "data unknown field": (put("data", "colour", "red"), "colour"),
}


@pytest.fixture(scope="module")
def raw_ckpt(valid):
    return torch.load(valid / "joint.pt", weights_only=True)


def bad_checkpoint(raw: dict, case: str, tmp_path: Path) -> tuple[Path, str]:
    """The valid checkpoint with CHECKPOINT_CASES[case]'s edit, saved; its path and the field named."""
    edit, field = CHECKPOINT_CASES[case]
    ckpt = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    edit(ckpt)
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    return path, field


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_checkpoint_eval(case, valid, raw_ckpt, tmp_path):
    path, field = bad_checkpoint(raw_ckpt, case, tmp_path)
    line = error_line(["eval", str(path), str(valid / "train.h5"), "--clips", "1", "--device", "cpu"], path, field)
    assert line.count(str(path)) == 1, line


@pytest.mark.parametrize("case", ["model_config missing", "num_classes text", "epoch text", "modality unknown"])
def test_bad_checkpoint_predict(case, valid, raw_ckpt, tmp_path):
    path, field = bad_checkpoint(raw_ckpt, case, tmp_path)
    error_line(["predict", str(path), str(valid / "train.h5"), "--clips", "1"], path, field)


def test_valid_files_still_work(valid):
    r = runner.invoke(app, ["info", str(valid / "train.h5")])
    assert r.exit_code == 0 and "samples" in r.output, r.output
    r = runner.invoke(
        app, ["eval", str(valid / "joint.pt"), str(valid / "train.h5"), "--clips", "1", "--device", "cpu"]
    )
    assert r.exit_code == 0, r.output
