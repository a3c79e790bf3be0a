"""Custom skeleton layouts (JSON files), the COCO-17 3D layout and label maps: validation, storage in
split files, checkpoints and score files, and the commands that need no flag afterwards."""

import json
import pickle

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli import app
from agcn_cli.engine.data import SkeletonDataset
from agcn_cli.errors import AgcnError
from agcn_cli.evaluation.metrics import class_names
from agcn_cli.io.checkpoint import DataInfo, read_checkpoint
from agcn_cli.io.scores import read_scores
from agcn_cli.models.agcn import ModelConfig, build_model
from agcn_cli.models.graph import adjacency
from agcn_cli.models.loading import foreign_facts
from agcn_cli.skeleton.layouts import available_layouts, get_layout, load_layout, resolve_layout
from agcn_cli.skeleton.streams import compute_stream
from agcn_cli.sources.pipeline import read_label_map
from tests.helpers import write_split

runner = CliRunner()

# a 5-joint 3D body: hip (root), spine, head, left hand, right hand
BODY5 = {
    "name": "body5",
    "description": "five joints, for tests",
    "channels": ["x", "y", "z"],
    "joint_names": ["hip", "spine", "head", "left_hand", "right_hand"],
    "center": 1,
    "graphs": {"main": [[1, 0], [2, 1], [3, 1], [4, 1]]},
    "bones": [[0, 0], [1, 0], [2, 1], [3, 1], [4, 1]],
    "normalize": {"origin": 0, "z_axis": [0, 1], "x_axis": [4, 3]},
}


def write_json(path, data) -> str:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def one_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


# ---- validation --------------------------------------------------------------------------------


def changed(**changes):
    return {**BODY5, **changes}


BAD_LAYOUTS = {
    "edge index": (
        changed(graphs={"main": [[1, 0], [2, 1], [3, 1], [4, 9]]}),
        "graph 'main' edge[3]: unknown joint index 9",
    ),
    "bone index": (changed(bones=[[0, 0], [1, 0], [2, 1], [3, 1], [4, 5]]), "bones[4]: unknown joint index 5"),
    "centre index": (changed(center=5), "'center': unknown joint index 5 (the layout has joints 0..4)"),
    "normalize index": (
        changed(normalize={"origin": 0, "z_axis": [0, 7], "x_axis": [4, 3]}),
        "normalize z_axis: unknown joint index 7",
    ),
    "disconnected": (changed(graphs={"main": [[1, 0], [2, 1], [4, 3]]}), "graph 'main' is disconnected: joint 3"),
    "cycle": (changed(bones=[[0, 0], [1, 2], [2, 3], [3, 1], [4, 1]]), "bones form a cycle 1 -> 2 -> 3 -> 1"),
    "no root": (changed(bones=[[0, 1], [1, 0], [2, 1], [3, 1], [4, 1]]), "bones form a cycle 0 -> 1 -> 0"),
    "bone twice": (changed(bones=[[0, 0], [1, 0], [1, 0], [3, 1], [4, 1]]), "bones list joint 1 twice"),
    "bone missing": (changed(bones=[[0, 0], [1, 0], [2, 1], [3, 1]]), "bones give no parent for joint 4"),
    "centre type": (changed(center="spine"), "'center': 'spine' is not an integer joint index"),
    "bool index": (changed(center=True), "'center': True is not an integer"),
    "float index": (changed(bones=[[0, 0], [1, 0.0], [2, 1], [3, 1], [4, 1]]), "bones[1]: 0.0 is not an integer"),
    "channels type": (changed(channels="xyz"), "'channels' must be a non-empty list of names"),
    "joint name type": (
        changed(joint_names=["hip", "spine", 3, "l", "r"]),
        "joint_names[2] must be a non-empty string",
    ),
    "joint name twice": (changed(joint_names=["hip", "spine", "head", "hand", "hand"]), "lists 'hand' twice"),
    "graphs type": (changed(graphs=[[1, 0]]), "'graphs' must be a non-empty object"),
    "edge shape": (changed(graphs={"main": [[1, 0, 2]]}), "graph 'main' edge[0] must be a pair [a, b]"),
    "self loop": (changed(graphs={"main": [[1, 0], [2, 2], [3, 1], [4, 1]]}), "links a joint to itself"),
    "edge twice": (changed(graphs={"main": [[1, 0], [0, 1], [2, 1], [3, 1], [4, 1]]}), "lists an edge twice"),
    "normalize keys": (changed(normalize={"origin": 0}), "'normalize' must be null or an object with exactly"),
    "normalize 2d": (changed(channels=["x", "y", "score"]), "it needs 3 channels x, y, z"),
    "name": (changed(name="my body"), "'name' must be a non-empty string"),
    "description": (changed(description=3), "'description' must be a string"),
    "unknown key": (changed(edges=[[1, 0]]), "unknown key 'edges'; a layout has: name, description"),
    "missing key": ({k: v for k, v in BODY5.items() if k != "bones"}, "missing key 'bones'"),
    "not an object": ([1, 2], "a layout must be a JSON object"),
    "bad json": ('{"name": "body5",', "not valid JSON (line 1"),
    "builtin clash": (changed(name="ntu25"), "layout name 'ntu25' is a built-in layout with a different skeleton"),
}


@pytest.mark.parametrize("case", sorted(BAD_LAYOUTS))
def test_bad_layout_files_are_one_line_errors_naming_the_file(case, tmp_path):
    data, needle = BAD_LAYOUTS[case]
    path = write_json(tmp_path / "bad.json", data)
    with pytest.raises(AgcnError) as e:
        load_layout(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert needle in message, message


def test_layout_arguments_and_specs(tmp_path):
    assert "coco17-3d" in available_layouts()
    for name in available_layouts():  # every built-in round-trips through its canonical spec
        layout = get_layout(name)
        assert resolve_layout(name, layout.spec()) == layout and resolve_layout(name) is layout
        assert json.loads(layout.spec())["name"] == name
    # a file with a built-in's skeleton (another description) is that built-in
    copy = {**get_layout("coco17").to_dict(), "description": "my copy"}
    assert load_layout(write_json(tmp_path / "coco.json", copy)) is get_layout("coco17")
    layout = load_layout(write_json(tmp_path / "body5.json", BODY5))
    assert (layout.name, layout.num_joints, layout.center, layout.channels) == ("body5", 5, 1, ("x", "y", "z"))
    assert resolve_layout("body5", layout.spec()) == layout
    with pytest.raises(AgcnError, match="stored layout spec is 'body5' but the layout is 'ntu25'"):
        resolve_layout("ntu25", layout.spec())
    with pytest.raises(AgcnError, match=r"missing.json: no such layout file"):
        load_layout(str(tmp_path / "missing.json"))
    with pytest.raises(AgcnError, match="unknown layout 'body6'; choose one of: .*or give a .json layout file"):
        load_layout("body6")
    # the graph and the bone stream follow the file
    A = adjacency(layout, "main")
    assert A.shape == (3, 5, 5) and A[1, 1, 2] == 1  # inward: head -> spine, spine's only in-edge at head
    assert A[2, 2, 1] == pytest.approx(1 / 3)  # outward: spine -> head, hands; normalised by 3
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 2))
    bone = compute_stream(x, "bone", layout)
    np.testing.assert_allclose(bone[:, :, 2], x[:, :, 2] - x[:, :, 1])
    assert not bone[:, :, 0].any()  # the root's bone is zero
    config = ModelConfig(layout="body5", num_classes=4, layout_spec=layout.spec())
    assert build_model(config)(torch.zeros(1, 3, 8, 5, 2)).shape == (1, 4)
    with pytest.raises(AgcnError, match="unknown layout 'body5'"):  # without its spec, a name only
        build_model(ModelConfig(layout="body5", num_classes=4))
    # foreign weights: the facts take a layout file too
    config, data = foreign_facts(num_classes=4, layout=str(tmp_path / "body5.json"))
    assert (config.layout, config.layout_spec, config.in_channels) == ("body5", layout.spec(), 3)
    assert (data.layout, data.layout_spec, data.channels) == ("body5", layout.spec(), "x,y,z")


def test_old_files_without_a_spec_read_as_built_ins(tmp_path):
    path = write_split(tmp_path / "old.h5", (4, 6), layout="coco17")
    with h5py.File(path) as f:
        assert "layout_spec" not in f.attrs
    assert SkeletonDataset(path, "bone").layout is get_layout("coco17")
    assert build_model(ModelConfig(layout="coco17", num_classes=3)).num_joints == 17
    assert DataInfo().layout_spec == "" and DataInfo().label_names == ()


# ---- label maps ----------------------------------------------------------------------------------


def test_label_maps(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("wave\r\n  jump \nsit down\n\n\n")  # CRLF, spaces and trailing blank lines are fine
    assert read_label_map(path) == ("wave", "jump", "sit down")
    for text, needle in (
        ("wave\n\njump\n", "line 2: empty class name"),
        ("wave\njump\nwave\n", "line 3: class name 'wave' repeats line 1"),
        ("\n\n", "the label map lists no class name"),
    ):
        path.write_text(text)
        with pytest.raises(AgcnError, match=f"^{path}: {needle}"):
            read_label_map(path)
    with pytest.raises(AgcnError, match="no such label map file"):
        read_label_map(tmp_path / "none.txt")
    assert class_names(3, "ntu60-xsub", ("a", "b", "c")) == ["a", "b", "c"]
    assert class_names(4, "", ("a", "b")) == ["a", "b", "class 2", "class 3"]
    assert class_names(2, "ntu60-xsub")[1] == "eat meal/snack"  # NTU keeps its names without a map


# ---- from a .pkl to eval, with no flag after preprocess -----------------------------------------


def body5_annotations(rng, n: int, offset: int = 0) -> list[dict]:
    anns = []
    for i in range(n):
        label, t, m = i % 3, int(rng.integers(6, 14)), 1 + i % 2
        kp = rng.normal(scale=0.3, size=(m, t, 5, 3)).astype(np.float32)
        kp[:, :, 2, 1] += 1.0 + label  # the head's height tells the class
        anns.append({"frame_dir": f"s{offset + i:03d}", "label": label, "total_frames": t, "keypoint": kp})
    return anns


def write_pkl(path, annotations, split):
    with open(path, "wb") as f:
        pickle.dump({"split": split, "annotations": annotations}, f, protocol=2)
    return path


@pytest.fixture(scope="module")
def body5_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("body5")
    rng = np.random.default_rng(0)
    train, val = body5_annotations(rng, 12), body5_annotations(rng, 6, offset=100)
    split = {"train": [a["frame_dir"] for a in train], "val": [a["frame_dir"] for a in val]}
    pkl = write_pkl(tmp / "body5.pkl", train + val, split)
    layout = write_json(tmp / "body5.json", BODY5)
    names = tmp / "names.txt"
    names.write_text("wave\njump\nsit down\n")
    out = tmp / "data"
    result = runner.invoke(
        app,
        ["preprocess", str(pkl), str(out), "--layout", layout, "--split-names", "train,val",
         "--label-map", str(names), "--workers", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp, out, pkl, layout, names


def test_custom_layout_end_to_end(body5_data, one_thread):
    tmp, data, pkl, layout_file, names = body5_data
    spec = load_layout(layout_file).spec()
    for split in ("train", "test"):
        with h5py.File(data / f"{split}.h5") as f:
            assert (f.attrs["layout"], f.attrs["layout_spec"], f.attrs["channels"]) == ("body5", spec, "x,y,z")
            assert json.loads(f.attrs["label_names"]) == ["wave", "jump", "sit down"]
            assert int(f.attrs["num_classes"]) == 3  # from the label map
            assert f["joint"].shape[1:] == (2, 5, 3)
    # pre-normalised by the file's normalize entry: origin joint 0 at zero in the first frame
    ds = SkeletonDataset(data / "test.h5", "bone")
    assert ds.layout.name == "body5" and np.allclose(ds.frames[:, 0, 0, 0], 0)
    result = runner.invoke(app, ["streams", str(data / "test.h5"), "--modality", "bone"])
    assert result.exit_code == 0, result.output

    run = tmp / "run"
    result = runner.invoke(
        app,
        ["train", str(data), "--out", str(run), "--epochs", "1", "--clip-len", "8", "--batch-size", "4",
         "--no-tensorboard", "--workers", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["data"]["layout_spec"] == spec and ckpt["model_config"]["layout_spec"] == spec
    assert tuple(ckpt["data"]["label_names"]) == ("wave", "jump", "sit down")

    scores = tmp / "scores.h5"
    result = runner.invoke(
        app,
        ["eval", str(run / "last.pt"), str(data / "test.h5"), "--clips", "1", "--out", str(scores), "--per-class", "0"],
    )
    assert result.exit_code == 0, result.output
    assert "sit down" in result.stdout and "jump" in result.stdout and "A002" not in result.stdout
    assert read_scores(scores).label_names == ("wave", "jump", "sit down")
    # fusion keeps the names (two streams of the same run stand in for joint and bone)
    fused = tmp / "fused.h5"
    result = runner.invoke(app, ["fuse", str(scores), str(scores), "--out", str(fused)])
    assert result.exit_code == 0, result.output
    assert read_scores(fused).label_names == ("wave", "jump", "sit down")

    # the same name with another skeleton: eval refuses, naming both sides
    (tmp / "other").mkdir()
    other = write_json(tmp / "other" / "body5.json", {**BODY5, "graphs": {"main": [[1, 0], [2, 1], [3, 2], [4, 1]]}})
    result = runner.invoke(
        app, ["preprocess", str(pkl), str(tmp / "d2"), "--layout", other, "--split-names", "train,val",
              "--workers", "1", "--num-classes", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    one_error(
        runner.invoke(app, ["eval", str(run / "last.pt"), str(tmp / "d2" / "test.h5"), "--clips", "1"]),
        "d2/test.h5: skeleton layout 'body5' of this file differs from the checkpoint's layout 'body5'",
    )
    # model-info takes the file too
    result = runner.invoke(app, ["model-info", "--layout", layout_file, "--json", "--clip-len", "8"])
    assert result.exit_code == 0 and json.loads(result.stdout)["input_shape"] == [1, 3, 8, 5, 2]


def test_import_refusals(body5_data, tmp_path):
    _, _, pkl, layout_file, names = body5_data
    base = ["preprocess", str(pkl), "--split-names", "train,val", "--workers", "1"]
    one_error(
        runner.invoke(app, [*base, str(tmp_path / "a"), "--layout", layout_file, "--label-map", str(names),
                            "--num-classes", "4"]),
        f"{names}: 3 class names, but the data has 4 classes",
    )  # fmt: skip
    one_error(
        runner.invoke(app, [*base, str(tmp_path / "b"), "--layout", "coco17", "--num-classes", "3"]),
        "no sample fits layout coco17, which needs keypoints (M, T, 17, 2) + keypoint_score",
    )
    bad = write_json(tmp_path / "bad.json", changed(center=9))
    one_error(runner.invoke(app, [*base, str(tmp_path / "c"), "--layout", bad]), f"{bad}: 'center'")
    one_error(runner.invoke(app, ["model-info", "--layout", bad]), f"{bad}: 'center': unknown joint index 9")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())  # nothing half-written


def test_coco17_3d_pkl_import(tmp_path):
    rng = np.random.default_rng(1)
    anns = []
    for i in range(4):
        kp = rng.normal(size=(2, 5 + i, 17, 3)).astype(np.float32)
        anns.append({"frame_dir": f"v{i}", "label": i % 2, "total_frames": 5 + i, "keypoint": kp})
    pkl = write_pkl(tmp_path / "coco3d.pkl", anns, {"train": ["v0", "v1", "v2"], "val": ["v3"]})
    result = runner.invoke(
        app, ["preprocess", str(pkl), str(tmp_path / "out"), "--split-names", "train,val", "--num-classes", "2"]
    )
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out" / "train.h5") as f:
        assert (f.attrs["layout"], f.attrs["channels"]) == ("coco17-3d", "x,y,z")
        assert "label_names" not in f.attrs
        first = f["joint"][: int(f["num_frames"][0])]  # (T, M, V, C): stored as given (no normalize entry)
    np.testing.assert_array_equal(first, anns[0]["keypoint"].transpose(1, 0, 2, 3))
    ds = SkeletonDataset(tmp_path / "out" / "train.h5", "bone")
    assert ds.layout is get_layout("coco17-3d") and ds.frames.shape[0] == 3


def test_ntu_label_map(tmp_path):
    raw = tmp_path / "raw"
    synth = ["synth", str(raw), "--classes", "1,2", "--samples-per-class", "2", "--min-frames", "10",
             "--max-frames", "12", "--subjects", "1,3"]  # fmt: skip
    assert runner.invoke(app, synth).exit_code == 0
    names = tmp_path / "names.txt"
    names.write_text("".join(f"action {i}\n" for i in range(60)))
    result = runner.invoke(app, ["preprocess", str(raw), str(tmp_path / "out"), "--label-map", str(names)])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out" / "test.h5") as f:
        assert json.loads(f.attrs["label_names"])[59] == "action 59"
        assert f.attrs["layout_spec"] == get_layout("ntu25").spec()
    result = runner.invoke(app, ["info", str(tmp_path / "out" / "test.h5"), "--json"])
    assert json.loads(result.stdout)["label_names"][:2] == ["action 0", "action 1"]
    names.write_text("wave\njump\n")
    one_error(
        runner.invoke(app, ["preprocess", str(raw), str(tmp_path / "out2"), "--label-map", str(names)]),
        f"{names}: 2 class names, but the data has 60 classes",
    )
    assert not (tmp_path / "out2" / "train.h5").exists()
    one_error(
        runner.invoke(app, ["preprocess", str(raw), str(tmp_path / "out3"), "--layout", "coco17"]),
        "--layout coco17: .skeleton files hold the Kinect ntu25 layout",
    )
