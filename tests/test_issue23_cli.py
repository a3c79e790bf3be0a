"""The messages and dead ends a newcomer met outside training: each names the real cause."""

import json
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.io.scores import Scores, write_scores
from agcn_cli.sources.synth import SynthConfig, generate
from tests.helpers import one_error_line

runner = CliRunner()


def test_info_of_a_folder_names_the_folder(tiny):
    line = one_error_line(["info", str(tiny)])
    assert (
        line
        == f"error: {tiny}: a folder, not a split file; it holds test.h5, train.h5. Name one file, e.g. {tiny}/train.h5"
    )


def test_unreadable_hdf5_errors_leave_out_hdf5_internals(tmp_path, tiny):
    (tmp_path / "text.h5").write_text("not hdf5")
    data = (tiny / "train.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    assert one_error_line(["info", str(tmp_path / "text.h5")]).endswith(
        "not a readable HDF5 file (file signature not found)"
    )
    assert one_error_line(["info", str(tmp_path / "cut.h5")]).endswith("not a readable HDF5 file (truncated file)")
    line = one_error_line(["fuse", str(tmp_path / "text.h5"), str(tmp_path / "text.h5")])
    assert "not a readable HDF5 score file (file signature not found)" in line and "buf =" not in line


def test_preprocess_of_a_path_that_does_not_exist(tmp_path):
    line = one_error_line(["preprocess", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert line == f"error: {tmp_path / 'nope'}: no such file or folder"


def test_info_samples_lists_names_labels_and_frames(tiny):
    r = runner.invoke(app, ["info", str(tiny / "train.h5"), "--samples", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [row["frames"] for row in rows] == [5, 9, 12, 7, 10, 6, 8, 11, 4, 9, 10, 6]
    assert rows[0] == {"index": 0, "name": "S001C001P001R001A001", "label": 0, "frames": 5, "persons": 2,
                       "class": "drink water"}  # fmt: skip
    r = runner.invoke(app, ["info", str(tiny / "train.h5"), "--samples"])
    assert r.exit_code == 0 and "S001C001P001R001A012" in r.output and "brushing teeth" in r.output


def test_synth_into_a_folder_holding_its_files_asks_for_overwrite(tmp_path):
    raw = tmp_path / "raw"
    args = ["synth", str(raw), "--classes", "8,23", "--samples-per-class", "2"]
    assert runner.invoke(app, args).exit_code == 0
    first = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    (raw / "mine.txt").write_text("kept")
    line = one_error_line(args)
    assert "already holds 4 of the 4 files this would write" in line and "pass --overwrite" in line
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir() if p.suffix == ".skeleton"} == first
    r = runner.invoke(app, [*args, "--overwrite"])
    assert r.exit_code == 0, r.output
    assert {p.name for p in raw.iterdir()} == {*first, "mine.txt"}
    # other classes into the same folder: no file is replaced, so no --overwrite is needed
    r = runner.invoke(app, ["synth", str(raw), "--classes", "24", "--samples-per-class", "1"])
    assert r.exit_code == 0, r.output


def test_generate_refuses_before_writing(tmp_path):
    config = SynthConfig(actions=(8,), samples_per_class=2, workers=1)
    paths = generate(tmp_path, config)
    paths[0].unlink()
    with pytest.raises(Exception, match="already holds 1 of the 2 files"):
        generate(tmp_path, config)
    assert not paths[0].exists()


def test_fuse_a_score_file_whose_names_are_integers(tmp_path):
    names = [f"S001C001P003R001A{a:03d}" for a in (1, 2, 3)]
    prob = np.full((3, 3), 1 / 3, np.float32)
    good = Scores(names, np.arange(3), prob, np.log(prob), {"modality": "joint", "clips": 10})
    write_scores(tmp_path / "joint.h5", good)
    shutil.copyfile(tmp_path / "joint.h5", tmp_path / "bone.h5")
    with h5py.File(tmp_path / "bone.h5", "r+") as f:
        del f["name"]
        f["name"] = np.arange(3)
    line = one_error_line(["fuse", str(tmp_path / "joint.h5"), str(tmp_path / "bone.h5")])
    assert f"{tmp_path / 'bone.h5'}: 'name' holds int64 values, not sample names (strings)" in line


@pytest.mark.parametrize("depth", [40, 100_000])
def test_a_pickle_nested_deeper_than_annotations_is_one_line(tmp_path, depth):
    """Nested tuples as a dict key: printing or walking them recursed (RecursionError) before."""
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x02}" + b")" + b"\x85" * depth + b"K\x01s.")  # {((((),),),...): 1}
    line = one_error_line(["preprocess", str(path), str(tmp_path / "out")])
    assert "containers nested more than 32 levels deep" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_pickle_of_shared_containers_is_walked_once(tmp_path):
    """Each level holds the level below twice (pickle's memo): 2**30 paths, 31 containers."""
    import pickle

    x: list = []
    for _ in range(30):
        x = [x, x]
    (tmp_path / "dag.pkl").write_bytes(pickle.dumps({"annotations": [x], "split": {}}))
    line = one_error_line(["preprocess", str(tmp_path / "dag.pkl"), str(tmp_path / "out")])
    assert "nested more than 32 levels" in line


def test_show_a_skeleton_file_with_no_body(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("3\r\n0\r\n0\r\n0\r\n")
    line = one_error_line(["show", str(path), "--out", str(tmp_path / "x.png")])
    assert line == f"error: {path}: no body in any of its 3 frame(s); nothing to draw"
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("benchmark", "classes", "shown"),
    [("ntu60-xsub", 60, True), ("custom", 3, False), ("kinetics-skeleton", 60, False)],
)
def test_predict_shows_the_truth_only_in_the_checkpoints_classes(tmp_path, benchmark, classes, shown):
    import torch

    from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
    from agcn_cli.models.agcn import ModelConfig, build_model

    torch.manual_seed(0)
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, build_model(ModelConfig(num_classes=classes)), DataInfo(clip_len=8, benchmark=benchmark), 1)
    (skeleton,) = generate(tmp_path / "raw", SynthConfig(actions=(2,), samples_per_class=1, workers=1))
    r = runner.invoke(app, ["predict", str(ckpt), str(skeleton), "--json", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)["predictions"] if "predictions" in r.stdout else json.loads(r.stdout)
    assert row["label"] == (1 if shown else None)
    r = runner.invoke(app, ["predict", str(ckpt), str(skeleton), "--device", "cpu"])
    assert ("true: " in r.stdout) == shown, r.stdout


def test_a_label_map_short_of_names_is_named_as_the_cause(tmp_path):
    import pickle

    anns = [
        {"frame_dir": f"v{i}", "label": i % 4, "total_frames": 6, "keypoint": np.ones((1, 6, 25, 3), np.float32) * i}
        for i in range(8)
    ]
    (tmp_path / "my.pkl").write_bytes(
        pickle.dumps({"split": {"train": [a["frame_dir"] for a in anns]}, "annotations": anns})
    )
    (tmp_path / "map.txt").write_text("wave\nkick\n")
    line = one_error_line(["preprocess", str(tmp_path / "my.pkl"), str(tmp_path / "out"), "--split-names", "train",
                           "--label-map", str(tmp_path / "map.txt")])  # fmt: skip
    assert f"the label map {tmp_path / 'map.txt'} names only 2 classes: give every class a name" in line
    assert "--benchmark" not in line


def test_zero_clips_is_refused_by_the_library(ckpt, tiny):
    """`clips=0` from a library caller was taken as "not given" (10 clips); the CLI's min=1 hid it."""
    from agcn_cli.errors import AgcnError
    from agcn_cli.evaluation.evaluate import EvalConfig, evaluate
    from agcn_cli.evaluation.predict import predict

    with pytest.raises(AgcnError, match="clips, clip length and batch size must be at least 1, got 0"):
        evaluate(EvalConfig(ckpt, tiny / "test.h5", clips=0, device="cpu"))
    with pytest.raises(AgcnError, match="--clips"):
        next(predict([ckpt], [tiny / "test.h5"], clips=0, device="cpu"))
