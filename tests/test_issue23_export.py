"""Issue 23, item 7: agcn reads its own MMAction2 export back. `agcn eval` and `agcn predict` take
the facts from the file's `meta["agcn"]` (classes, layout, stream, clip length, test window),
check each by type and range, and refuse flags that contradict them."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
from agcn_cli.io.scores import read_scores
from agcn_cli.models.agcn import ModelConfig, build_model
from tests.helpers import one_error_line

pytestmark = pytest.mark.usefixtures("one_thread")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    """`ckpt` (joint stream, 3 classes, clip length 8) exported as MMAction2 weights."""
    out = tmp_path_factory.mktemp("exp") / "aagcn.pth"
    r = invoke("export", ckpt, out, "--format", "mmaction2")
    assert r.exit_code == 0, r.output
    return out


def test_eval_and_predict_need_no_flags(tiny, ckpt, exported, tmp_path):
    test = tiny / "test.h5"
    common = ["--clips", 2, "--device", "cpu"]
    r = invoke("eval", exported, test, *common, "--json", "--out", tmp_path / "exp.h5")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert (got["modality"], got["clips"], got["clip_len"]) == ("joint", 2, 8)  # the stored clip length, not 100
    assert invoke("eval", ckpt, test, *common, "--out", tmp_path / "ckpt.h5").exit_code == 0
    np.testing.assert_allclose(read_scores(tmp_path / "exp.h5").prob, read_scores(tmp_path / "ckpt.h5").prob, atol=1e-5)
    r = invoke("predict", exported, test, "--clips", 2, "--top", 3, "--json", "--device", "cpu")
    assert r.exit_code == 0, r.output
    ours = json.loads(invoke("predict", ckpt, test, "--clips", 2, "--top", 3, "--json", "--device", "cpu").stdout)
    for a, b in zip(json.loads(r.stdout)["predictions"], ours["predictions"], strict=True):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        np.testing.assert_allclose(
            [t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]], atol=1e-5
        )


def test_flags_are_checked_against_the_meta(tiny, exported):
    test = tiny / "test.h5"
    r = invoke("eval", exported, test, "--clips", 1, "--device", "cpu", "--num-classes", 3, "--modality", "joint")
    assert r.exit_code == 0, r.output  # the same facts: accepted
    line = one_error_line(["eval", str(exported), str(test), "--modality", "bone", "--num-classes", "5"])
    assert f"{exported}: written by agcn export, it states its facts, and the ones given differ:" in line
    assert "--num-classes 5 (the file: 3), --modality bone (the file: joint)" in line


def test_the_stored_test_window_is_used(tiny, tmp_path):
    """A full-window checkpoint (2s-AGCN recipe) is tested, exported, on one view of its window."""
    torch.manual_seed(0)
    save_checkpoint(
        tmp_path / "full.pt", build_model(ModelConfig(num_classes=3)), DataInfo(clip_len=8, test_window=40), epoch=1
    )
    assert invoke("export", tmp_path / "full.pt", tmp_path / "full.pth", "-f", "mmaction2").exit_code == 0
    r = invoke("eval", tmp_path / "full.pth", tiny / "test.h5", "--json", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert (json.loads(r.stdout)["clips"], json.loads(r.stdout)["clip_len"]) == (1, 40)


def _edit(meta: dict, key: str, value) -> None:
    if value is KeyError:
        del meta[key]
    else:
        meta[key] = value


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("num_classes", "many", "num_classes: expected an integer, got str 'many'"),
        ("num_classes", 0, "model num_classes must be at least 1, got 0"),
        ("clip_len", 2.5, "clip_len: expected an integer, got float 2.5"),
        ("clip_len", 0, "clip_len: must be at least 1, got 0"),
        ("clip_len", KeyError, "clip_len: missing"),
        ("test_window", -1, "test_window: must be 0 or more, got -1"),
        ("modality", "speed", "modality: unknown stream 'speed'"),
        ("layout", "ntu26", "unknown layout 'ntu26'"),
        ("class_names", ["a", "b"], "class_names: expected a list of 3 names"),
        ("num_joints", 24, "num_joints: 24, but layout 'ntu25' has 25"),
        ("channels", "x,y", "channels: 'x,y', but in_channels is 3"),
        ("variant", "2s-agcn", "variant: '2s-agcn', but the weights are a 'mmaction2' model's"),
    ],
)
def test_bad_meta_is_one_line_naming_the_file(tiny, exported, tmp_path, key, value, said):
    sd = torch.load(exported, weights_only=True)
    _edit(sd["meta"]["agcn"], key, value)
    bad = tmp_path / "bad.pth"
    torch.save(sd, bad)
    line = one_error_line(["eval", str(bad), str(tiny / "test.h5"), "--clips", "1", "--device", "cpu"])
    assert line.startswith(f"error: {bad}: meta['agcn']: ") and said in line, line


def test_meta_that_is_no_dict_is_one_line(tiny, exported, tmp_path):
    sd = torch.load(exported, weights_only=True)
    sd["meta"]["agcn"] = ["joint"]
    torch.save(sd, tmp_path / "bad.pth")
    line = one_error_line(["eval", str(tmp_path / "bad.pth"), str(tiny / "test.h5")])
    assert line == f"error: {tmp_path / 'bad.pth'}: meta['agcn']: expected a dict, got list"
