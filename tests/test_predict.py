"""End to end: synthetic .skeleton files -> preprocess -> checkpoints -> agcn eval, fuse, predict."""

import json
import pickle

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.evaluation.predict import predict, sample_clips
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
from agcn_cli.io.scores import read_scores
from agcn_cli.io.splitfile import read_sample
from agcn_cli.models.agcn import ModelConfig, build_model
from agcn_cli.skeleton.sampling import sample_test_clips
from agcn_cli.sources.ntu import parse_skeleton
from agcn_cli.sources.ntu_convert import PreprocessConfig, preprocess
from agcn_cli.sources.synth import SynthConfig, generate

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
CLIP_LEN = 16


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """8 files of 2 classes (4 test samples, subject 3), a joint and a bone checkpoint (60 classes)."""
    d = tmp_path_factory.mktemp("e2e")
    config = SynthConfig(actions=(8, 23), subjects=(1, 3), samples_per_class=4, min_frames=20, max_frames=30)
    generate(d / "raw", config)
    preprocess(PreprocessConfig(d / "raw", d / "out", workers=1))
    torch.manual_seed(0)
    for stream in ("joint", "bone"):
        model = build_model(ModelConfig(num_classes=60))
        data = DataInfo(modality=stream, clip_len=CLIP_LEN, benchmark="ntu60-xsub")
        save_checkpoint(d / f"{stream}.pt", model, data, epoch=1)
    return d


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


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

    # predict on a raw test file gives what eval gave for that sample (same recipe, stream, clips)
    name = scores.names[2]
    preds = predict([d / "joint.pt"], [d / "raw" / f"{name}.skeleton"], clips=2, top=60, device="cpu")
    probs = np.zeros(60)
    for c, _, p in preds[0].top:
        probs[c] = p
    np.testing.assert_allclose(probs, scores.prob[2], rtol=1e-4, atol=1e-6)
    assert preds[0].action == int(name[-3:])


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
    assert r.exit_code == 1 and "not a readable HDF5 file" in r.stderr


def test_predict_cli(run, tmp_path):
    d = run
    files = sorted((d / "raw").glob("*.skeleton"))[:2]
    r = invoke("predict", d / "joint.pt", *files, "-c", d / "bone.pt", "--weights", "2,1", "--clips", 2, "--top", 3,
               "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [o["file"] for o in out] == [str(f) for f in files] and all(len(o["top"]) == 3 for o in out)
    # the fusion by hand: 2/3 joint + 1/3 bone
    both = predict([d / "joint.pt", d / "bone.pt"], files, weights=[2, 1], clips=2, top=60)
    alone = [predict([d / f"{s}.pt"], files, clips=2, top=60) for s in ("joint", "bone")]
    for i in range(2):
        fused = {c: p for c, _, p in both[i].top}
        j, b = ({c: p for c, _, p in a[i].top} for a in alone)
        assert all(fused[c] == pytest.approx((2 * j[c] + b[c]) / 3, rel=1e-5) for c in fused)
        assert [t["label"] for t in out[i]["top"]] == [c for c, _, _ in both[i].top[:3]]
    r = invoke("predict", d / "joint.pt", files[0], "--weights", "1,1")
    assert r.exit_code == 1 and "--weights has 2 value(s) (1,1) for 1 checkpoints" in r.stderr
    r = invoke("predict", d / "joint.pt", files[0], "--top", 2)
    assert r.exit_code == 0 and "probability" in r.stdout and "A0" in r.stdout


def test_predict_bad_files(run, tmp_path):
    d = run
    bad = tmp_path / "bad.skeleton"
    lines = (d / "raw").glob("*.skeleton").__next__().read_text().splitlines()
    lines[5] = "0.1 0.2 oops"
    bad.write_text("\r\n".join(lines))
    r = invoke("predict", d / "joint.pt", bad)
    assert r.exit_code == 1 and str(bad) in r.stderr and "line" in r.stderr and r.stderr.count("\n") == 1
    r = invoke("predict", d / "joint.pt", tmp_path / "missing.skeleton")
    assert r.exit_code == 1 and "missing.skeleton: no such .skeleton file" in r.stderr
    coco = build_model(ModelConfig(layout="coco17", num_classes=60))
    save_checkpoint(tmp_path / "coco.pt", coco, DataInfo(layout="coco17", channels="x,y,score"), epoch=0)
    r = invoke("predict", tmp_path / "coco.pt", bad)
    assert r.exit_code == 1 and "predict needs a checkpoint trained on ntu25 data" in r.stderr


def test_sample_clips_follow_the_checkpoint(run):
    sk = parse_skeleton(sorted((run / "raw").glob("*.skeleton"))[0])
    joint = sample_clips(sk, DataInfo(modality="joint"), 8, 3)
    bone = sample_clips(sk, DataInfo(modality="bone"), 8, 3)
    assert joint.shape == bone.shape == (3, 3, 8, 25, 2)
    assert np.all(bone[:, :, :, 20] == 0)  # the spine-shoulder bone is zero
    other = sample_clips(sk, DataInfo(modality="joint", recipe="2s-agcn"), 8, 3)
    assert not np.allclose(joint, other)
