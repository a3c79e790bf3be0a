"""End to end: synthetic inputs -> preprocess -> checkpoints -> agcn eval, fuse, predict.

`agcn predict` reads every input kind (.skeleton files and folders, .pkl, Kinetics JSON, split
.h5); on a sample that a split file also holds it must give `agcn eval`'s probabilities.
"""

import json
import pickle

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.evaluation.evaluate import EvalConfig, evaluate
from agcn_cli.evaluation.fusion import weighted_mean
from agcn_cli.evaluation.predict import Prediction, predict
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
from agcn_cli.io.scores import read_scores
from agcn_cli.io.splitfile import read_sample
from agcn_cli.models.agcn import ModelConfig, build_model
from agcn_cli.skeleton.layouts import get_layout, load_layout
from agcn_cli.skeleton.sampling import sample_test_clips
from agcn_cli.skeleton.views import ViewSpec, sample_views
from agcn_cli.sources.formats import convert
from agcn_cli.sources.ntu_convert import skeleton_sample
from agcn_cli.sources.pipeline import ConvertConfig
from agcn_cli.sources.samples import Sample, SampleFailure, iter_samples
from agcn_cli.sources.synth import SynthConfig, generate
from tests.helpers import write_skeleton

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
CLIP_LEN = 16


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """8 files of 2 classes (4 test samples, subject 3), a joint and a bone checkpoint (60 classes)."""
    d = tmp_path_factory.mktemp("e2e")
    config = SynthConfig(actions=(8, 23), subjects=(1, 3), samples_per_class=4, min_frames=20, max_frames=30)
    generate(d / "raw", config)
    convert(ConvertConfig(d / "raw", d / "out", workers=1))
    torch.manual_seed(0)
    for stream in ("joint", "bone"):
        model = build_model(ModelConfig(num_classes=60))
        data = DataInfo(modality=stream, clip_len=CLIP_LEN, benchmark="ntu60-xsub")
        save_checkpoint(d / f"{stream}.pt", model, data, epoch=1)
    return d


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def probs(pred: Prediction, k: int) -> np.ndarray:
    """All k probabilities of a prediction made with top=k."""
    p = np.zeros(k)
    for c, _, prob in pred.top:
        p[c] = prob
    return p


def only(results: list) -> list[Prediction]:
    assert all(isinstance(r, Prediction) for r in results), [str(r) for r in results]
    return results


def test_eval_fuse_end_to_end(run):
    d = run
    r = invoke("eval", d / "joint.pt", d / "out/test.h5", "--clips", 2, "--out", d / "joint.h5", "--mmaction-dump",
               d / "joint.pkl", "--confusion", d / "cm.csv", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)
    assert metrics["samples"] == 4 and metrics["clips"] == 2 and metrics["clip_len"] == CLIP_LEN
    assert {c["name"] for c in metrics["per_class"]} == {"sitting down", "hand waving"}
    scores = read_scores(d / "joint.h5")
    assert scores.attrs["modality"] == "joint" and scores.attrs["checkpoint"] == str((d / "joint.pt").resolve())
    assert metrics["top1"] == pytest.approx(float((scores.prob.argmax(1) == scores.labels).mean()))
    with open(d / "joint.pkl", "rb") as f:
        dump = pickle.load(f)
    assert [x["frame_dir"] for x in dump] == scores.names
    assert (d / "cm.csv").read_text().splitlines()[8].startswith("7,sitting down,")

    # one sample by hand: its 2 test clips through the model, softmax, mean
    with h5py.File(d / "out/test.h5") as f:
        joints = read_sample(f, 1)  # (C, T, V, M)
    idx = sample_test_clips(joints.shape[1], CLIP_LEN, num_clips=2)
    x = torch.from_numpy(np.ascontiguousarray(joints[:, idx].swapaxes(0, 1)))  # (K, C, L, V, M)
    model = build_model(ModelConfig(num_classes=60))
    model.load_state_dict(torch.load(d / "joint.pt", weights_only=True)["model"])
    with torch.no_grad():
        expected = model.eval()(x).softmax(-1).mean(0).numpy()
    np.testing.assert_allclose(scores.prob[1], expected, rtol=1e-4, atol=1e-6)

    r = invoke("eval", d / "bone.pt", d / "out/test.h5", "--clips", 2, "--out", d / "bone.h5", "--per-class", 1)
    assert r.exit_code == 0, r.output
    assert "'bone' is not stored in the file; deriving it" in r.stderr
    assert "top-1" in r.stdout and ("A008 sitting down" in r.stdout or "A023 hand waving" in r.stdout)

    r = invoke("fuse", d / "joint.h5", d / "bone.h5", "--weights", "1,1", "--out", d / "fused.h5", "--json")
    assert r.exit_code == 0, r.output
    fused = read_scores(d / "fused.h5")
    bone = read_scores(d / "bone.h5")
    np.testing.assert_allclose(fused.prob, (scores.prob + bone.prob) / 2, rtol=1e-6)
    assert json.loads(r.stdout)["fused"]["samples"] == 4

    # predict on a raw test file, and on the split file, gives what eval gave (same recipe, stream, clips)
    name = scores.names[2]
    (pred,) = only(list(predict([d / "joint.pt"], [d / "raw" / f"{name}.skeleton"], clips=2, top=60, device="cpu")))
    np.testing.assert_allclose(probs(pred, 60), scores.prob[2], rtol=1e-4, atol=1e-6)
    assert pred.name == name and pred.label == int(name[-3:]) - 1 and pred.label_name in ("sitting down", "hand waving")
    preds = only(list(predict([d / "joint.pt"], [d / "out/test.h5"], clips=2, top=60, batch_size=3)))
    assert [p.name for p in preds] == scores.names and [p.label for p in preds] == list(scores.labels)
    np.testing.assert_allclose(np.stack([probs(p, 60) for p in preds]), scores.prob, rtol=1e-4, atol=1e-6)
    r = invoke("predict", d / "bone.pt", d / "out/test.h5", "--sample", scores.names[3], "--sample", scores.names[0],
               "--clips", 2, "--top", 60, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)["predictions"]
    assert [o["name"] for o in out] == [scores.names[0], scores.names[3]]  # in file order
    for o, i in zip(out, (0, 3), strict=True):
        got = np.zeros(60)
        got[[t["class"] for t in o["top"]]] = [t["probability"] for t in o["top"]]
        np.testing.assert_allclose(got, bone.prob[i], rtol=1e-4, atol=1e-6)


def test_eval_refuses(run, tmp_path):
    d = run
    r = invoke("eval", tmp_path / "none.pt", d / "out/test.h5")
    assert r.exit_code == 1 and "none.pt: no such checkpoint file" in r.stderr
    small = build_model(ModelConfig(num_classes=5))
    save_checkpoint(tmp_path / "c5.pt", small, DataInfo(clip_len=CLIP_LEN), epoch=0)
    r = invoke("eval", tmp_path / "c5.pt", d / "out/test.h5")
    assert r.exit_code == 1 and "labels reach class 22 (action A023), but the model has 5 classes" in r.stderr
    assert r.stderr.count("\n") == 1
    torch.save(small.state_dict(), tmp_path / "raw.pth")
    r = invoke("eval", tmp_path / "raw.pth", d / "out/test.h5")
    assert r.exit_code == 1 and "not an agcn checkpoint" in r.stderr and "--num-classes" in r.stderr
    r = invoke("eval", tmp_path / "raw.pth", d / "out/test.h5", "--modality", "bone")  # 60 classes from the file
    assert r.exit_code == 1 and "checkpoint has 5 classes, model expects 60" in r.stderr
    r = invoke("eval", d / "joint.pt", d / "out/test.h5", "--mmaction-dump", tmp_path / "d.json")
    assert r.exit_code == 1 and ".pkl or .pickle" in r.stderr
    (tmp_path / "s.h5").write_text("x")
    r = invoke("eval", d / "joint.pt", d / "out/test.h5", "--out", tmp_path / "s.h5")
    assert r.exit_code == 1 and "s.h5: already exists; pass --overwrite" in r.stderr
    r = invoke("eval", d / "joint.pt", d / "raw")
    assert r.exit_code == 1 and "raw: a folder, not a split file" in r.stderr


def test_predict_cli(run, tmp_path):
    d = run
    files = sorted((d / "raw").glob("*.skeleton"))[:2]
    r = invoke("predict", d / "joint.pt", *files, "-c", d / "bone.pt", "--weights", "2,1", "--clips", 2, "--top", 3,
               "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["checkpoints"] == [str(d / "joint.pt"), str(d / "bone.pt")] and out["weights"] == [2, 1]
    assert out["failed"] == []
    preds = out["predictions"]
    assert [o["source"] for o in preds] == [str(f) for f in files] and all(len(o["top"]) == 3 for o in preds)
    assert set(preds[0]) == {"name", "source", "frames", "label", "label_name", "top"}
    assert set(preds[0]["top"][0]) == {"class", "name", "probability"}
    assert preds[0]["name"] == files[0].stem and preds[0]["label"] == int(files[0].stem[-3:]) - 1
    assert preds[0]["label_name"] in ("sitting down", "hand waving")
    # the fusion by hand: 2/3 joint + 1/3 bone
    both = only(list(predict([d / "joint.pt", d / "bone.pt"], files, weights=[2, 1], clips=2, top=60)))
    alone = [only(list(predict([d / f"{s}.pt"], files, clips=2, top=60))) for s in ("joint", "bone")]
    for i in range(2):
        j, b = (probs(a[i], 60) for a in alone)
        np.testing.assert_allclose(probs(both[i], 60), (2 * j + b) / 3, rtol=1e-5)
        np.testing.assert_array_equal(probs(both[i], 60), weighted_mean([j, b], [2, 1]))  # through fusion
        assert [t["class"] for t in preds[i]["top"]] == [c for c, _, _ in both[i].top[:3]]
    # a folder: every file, in name order, the same probabilities as file by file
    folder = only(list(predict([d / "joint.pt"], [d / "raw"], clips=2, top=60, batch_size=3)))
    assert [p.source for p in folder] == sorted((d / "raw").glob("*.skeleton"))
    np.testing.assert_allclose(probs(folder[0], 60), probs(alone[0][0], 60), rtol=1e-5)
    r = invoke("predict", d / "joint.pt", files[0], "--weights", "1,1")
    assert r.exit_code == 1 and "--weights has 2 value(s) (1,1) for 1 checkpoints" in r.stderr
    r = invoke("predict", d / "joint.pt", files[0], "--top", 2)
    assert r.exit_code == 0 and "probability" in r.stdout and "A0" in r.stdout and "true: A0" in r.stdout


def test_predict_skips_bad_inputs(run, tmp_path):
    d = run
    good = sorted((d / "raw").glob("*.skeleton"))[:2]
    empty = write_skeleton(tmp_path / "S001C001P001R001A008.skeleton", [[] for _ in range(5)])  # no body
    r = invoke("predict", d / "joint.pt", good[0], empty, good[1], "--clips", 2, "--top", 2)
    assert r.exit_code == 1
    assert r.stdout.count("probability") == 2 and good[0].stem in r.stdout and good[1].stem in r.stdout
    assert r.stderr.count("\n") == 1 and f"{empty}: no body in any frame" in r.stderr
    r = invoke("predict", d / "joint.pt", good[0], empty, tmp_path / "missing.skeleton", "--clips", 2, "--json")
    assert r.exit_code == 1 and r.stderr.count("\n") == 2
    out = json.loads(r.stdout)
    assert [p["source"] for p in out["predictions"]] == [str(good[0])]
    assert out["failed"] == [
        {"input": str(empty), "error": "no body in any frame"},
        {"input": str(tmp_path / "missing.skeleton"), "error": "no such file or folder"},
    ]
    bad = tmp_path / "bad.skeleton"
    lines = good[0].read_text().splitlines()
    lines[5] = "0.1 0.2 oops"
    bad.write_text("\r\n".join(lines))
    r = invoke("predict", d / "joint.pt", bad)
    assert r.exit_code == 1 and str(bad) in r.stderr and "line 6" in r.stderr and r.stderr.count("\n") == 1
    r = invoke("predict", d / "joint.pt", d / "out/test.h5", "--sample", "S999C001P001R001A001", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["predictions"] == []
    assert "no sample named 'S999C001P001R001A001'" in r.stderr
    r = invoke("predict", d / "joint.pt", good[0], "--sample", "x")
    assert r.exit_code == 1 and "--sample picks samples of split .h5 inputs" in r.stderr
    (tmp_path / "notes.txt").write_text("x")
    r = invoke("predict", d / "joint.pt", tmp_path / "notes.txt")
    assert r.exit_code == 1 and "notes.txt: not an input agcn reads" in r.stderr


def _pkl_2d(path, rng, names, labels=None, joints=17):
    """A 2D annotation file (pixels, scores) of random poses; `labels[i]` None: no label."""
    anns = []
    for i, name in enumerate(names):
        m, t = 1 + i % 2, 18 + 3 * i
        kp = rng.uniform([200, 100], [1700, 1000], size=(m, t, joints, 2)).astype(np.float32)
        ann = {"frame_dir": name, "total_frames": t, "keypoint": kp, "img_shape": (1080, 1920),
               "keypoint_score": rng.uniform(0.1, 1, size=(m, t, joints)).astype(np.float32)}  # fmt: skip
        if labels is None or labels[i] is not None:
            ann["label"] = i % 3 if labels is None else labels[i]
        anns.append(ann)
    split = {"train": list(names[:2]), "val": list(names[2:])}
    with open(path, "wb") as f:
        pickle.dump({"split": split, "annotations": anns}, f, protocol=4)
    return path


# a custom 2D skeleton: head, hands and feet around a centre joint
STAR = {"name": "star5", "channels": ["x", "y", "score"], "joint_names": ["centre", "lh", "rh", "lf", "rf"],
        "center": 0, "graphs": {"spatial": [[1, 0], [2, 0], [3, 0], [4, 0]]},
        "bones": [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0]]}  # fmt: skip


@pytest.mark.parametrize("layout", ["coco17", "star5"])
def test_predict_pkl_2d_equals_eval_of_its_import(run, tmp_path, layout):
    names = [f"clip{i}" for i in range(5)]
    if layout == "star5":
        (tmp_path / "star5.json").write_text(json.dumps(STAR))
        lay = load_layout(str(tmp_path / "star5.json"))
        given, spec = str(tmp_path / "star5.json"), lay.spec()
    else:
        lay, given, spec = get_layout(layout), None, ""
    pkl = _pkl_2d(tmp_path / "2d.pkl", np.random.default_rng(0), names, joints=lay.num_joints)
    convert(ConvertConfig(pkl, tmp_path / "out", split_names=("train", "val"), num_classes=3, workers=1, layout=given))
    torch.manual_seed(1)
    model = build_model(ModelConfig(layout=layout, in_channels=3, num_classes=3, layout_spec=spec))
    data = DataInfo(layout=layout, channels="x,y,score", clip_len=CLIP_LEN, label_names=("jump", "run", "sit"),
                    layout_spec=spec)  # fmt: skip
    save_checkpoint(tmp_path / "2d.pt", model, data, epoch=1)
    scores = evaluate(EvalConfig(tmp_path / "2d.pt", tmp_path / "out/test.h5", clips=2, device="cpu")).scores
    for inputs in ([pkl], [tmp_path / "out/test.h5"]):
        preds = only(list(predict([tmp_path / "2d.pt"], inputs, clips=2, top=3, batch_size=2)))
        by_name = {p.name: probs(p, 3) for p in preds}
        np.testing.assert_allclose(np.stack([by_name[n] for n in scores.names]), scores.prob, rtol=1e-4, atol=1e-6)
    preds = only(list(predict([tmp_path / "2d.pt"], [pkl], clips=2, top=3)))
    assert [p.name for p in preds] == names and [p.label for p in preds] == [0, 1, 2, 0, 1]
    assert [p.label_name for p in preds] == ["jump", "run", "sit", "jump", "run"]
    assert {n for p in preds for _, n, _ in p.top} <= {"jump", "run", "sit"}
    # the same weights without agcn metadata, described by options
    torch.save(model.state_dict(), tmp_path / "raw.pth")
    r = invoke("predict", tmp_path / "raw.pth", pkl, "--num-classes", 3, "--layout", given or layout, "--clips", 2,
               "--clip-len", CLIP_LEN, "--top", 3, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    foreign = json.loads(r.stdout)["predictions"]
    assert [[t["class"] for t in f["top"]] for f in foreign] == [[c for c, _, _ in p.top] for p in preds]
    np.testing.assert_allclose([f["top"][0]["probability"] for f in foreign], [p.top[0][2] for p in preds], rtol=1e-5)
    if layout == "star5":
        r = invoke("predict", tmp_path / "2d.pt", run / "raw")
        assert r.exit_code == 1 and r.stderr.count("\n") == 1
        assert "holds ntu25 (25 joints: x, y, z) skeletons, but the checkpoint" in r.stderr
        assert "is for star5 (5 joints: x, y, score)" in r.stderr
        return

    # a sample without a label is classified (label null); a broken one is reported; the NTU model is refused
    pkl2 = _pkl_2d(tmp_path / "nolabel.pkl", np.random.default_rng(1), ["a", "b"], labels=[None, 2])
    with open(pkl2, "rb") as f:
        content = pickle.load(f)
    content["annotations"][1]["keypoint_score"] = content["annotations"][1]["keypoint_score"][:, :3]
    with open(pkl2, "wb") as f:
        pickle.dump(content, f)
    r = invoke("predict", tmp_path / "2d.pt", pkl2, "--clips", 2, "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert [(p["name"], p["label"], p["label_name"]) for p in out["predictions"]] == [("a", None, None)]
    assert out["failed"][0]["input"] == f"{pkl2}: b" and "keypoint_score has shape" in out["failed"][0]["error"]
    r = invoke("predict", run / "joint.pt", pkl)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and r.stdout == ""
    assert f"{pkl}: holds coco17 (17 joints: x, y, score) skeletons" in r.stderr
    assert "joint.pt is for ntu25 (25 joints: x, y, z)" in r.stderr


def _video(rng, frames: int, label: int | None) -> dict:
    def body() -> list[dict]:
        return [{"pose": rng.random(36).round(3).tolist(), "score": rng.uniform(0.1, 1, 18).round(3).tolist()}]

    data = [{"frame_index": t, "skeleton": body()} for t in range(frames)]
    return {"data": data, "label": "x", **({} if label is None else {"label_index": label})}


def test_predict_kinetics_equals_eval_of_its_import(run, tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "kin" / "kinetics_val"
    folder.mkdir(parents=True)
    labels = {}
    for i in range(3):
        (folder / f"vid{i}.json").write_text(json.dumps(_video(rng, 12 + 5 * i, i)))
        labels[f"vid{i}"] = {"has_skeleton": True, "label": "x", "label_index": i}
    (tmp_path / "kin" / "kinetics_val_label.json").write_text(json.dumps(labels))
    convert(ConvertConfig(tmp_path / "kin", tmp_path / "out", num_classes=4, workers=1))
    torch.manual_seed(2)
    model = build_model(ModelConfig(layout="openpose18", in_channels=3, num_classes=4))
    data = DataInfo(modality="bone", layout="openpose18", channels="x,y,score", recipe="2s-agcn", clip_len=CLIP_LEN)
    save_checkpoint(tmp_path / "op.pt", model, data, epoch=1)
    scores = evaluate(EvalConfig(tmp_path / "op.pt", tmp_path / "out/test.h5", clips=2, device="cpu")).scores
    preds = only(list(predict([tmp_path / "op.pt"], [tmp_path / "kin"], clips=2, top=4)))
    assert [p.name for p in preds] == scores.names == ["vid0", "vid1", "vid2"] and [p.label for p in preds] == [0, 1, 2]
    np.testing.assert_allclose(np.stack([probs(p, 4) for p in preds]), scores.prob, rtol=1e-4, atol=1e-6)
    (tmp_path / "one.json").write_text(json.dumps(_video(rng, 9, None)))
    r = invoke("predict", tmp_path / "op.pt", folder / "vid1.json", tmp_path / "one.json", "--clips", 2, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)["predictions"]
    assert [(p["name"], p["label"], p["label_name"]) for p in out] == [("vid1", 1, "class 1"), ("one", None, None)]
    np.testing.assert_allclose(out[0]["top"][0]["probability"], preds[1].top[0][2], rtol=1e-5)
    r = invoke("predict", tmp_path / "op.pt", run / "raw")
    assert r.exit_code == 1 and "holds ntu25 (25 joints: x, y, z) skeletons, but the checkpoint" in r.stderr


def test_samples_follow_the_converters(run):
    path = sorted((run / "raw").glob("*.skeleton"))[0]
    layout = get_layout("ntu25")
    (s,) = iter_samples(path, layout=layout, recipe="2s-agcn")
    assert isinstance(s, Sample) and s.data.shape[0] == 2 and s.data.shape[2:] == (25, 3)
    np.testing.assert_array_equal(s.data, skeleton_sample(path, "2s-agcn", layout.normalize)[0])
    joint = sample_views(s.data, ViewSpec("joint", clip_len=8, num_clips=3, layout=layout))
    bone = sample_views(s.data, ViewSpec("bone", clip_len=8, num_clips=3, layout=layout))
    assert joint.shape == bone.shape == (3, 3, 8, 25, 2)
    assert np.all(bone[:, :, :, 20] == 0)  # the spine-shoulder bone is zero
    (other,) = iter_samples(path, layout=layout)
    assert not np.allclose(other.data[:, : s.data.shape[1]], s.data[:, : other.data.shape[1]])
    (failure,) = iter_samples(run / "nothing.pkl", layout=layout)
    assert isinstance(failure, SampleFailure) and failure.error == "no such file or folder"


@pytest.mark.parametrize("recipe", ["mmaction2", "2s-agcn"])
def test_predict_full_window_equals_eval(run, tmp_path, recipe):
    """A full-window checkpoint: one view of the window, padded as its recipe pads, from raw files too."""
    d = run
    convert(ConvertConfig(d / "raw", tmp_path / "out", recipe=recipe, workers=1))
    model = build_model(ModelConfig(num_classes=60))
    data = DataInfo(modality="joint-motion", recipe=recipe, benchmark="ntu60-xsub", test_window=40)
    save_checkpoint(tmp_path / "w.pt", model, data, epoch=1)
    scores = evaluate(EvalConfig(tmp_path / "w.pt", tmp_path / "out/test.h5", device="cpu")).scores
    raw = [d / "raw" / f"{n}.skeleton" for n in scores.names]
    for inputs in ([tmp_path / "out/test.h5"], raw):
        preds = only(list(predict([tmp_path / "w.pt"], inputs, top=60)))
        assert [p.name for p in preds] == scores.names
        np.testing.assert_allclose(np.stack([probs(p, 60) for p in preds]), scores.prob, rtol=1e-4, atol=1e-6)
    r = invoke("predict", tmp_path / "w.pt", raw[0], "--clips", 2)
    assert r.exit_code == 1 and "40-frame window" in r.stderr and "drop --clips" in r.stderr
