"""Multi-clip scoring, metrics, score files, MMAction2 dumps and the test-file checks."""

import math
import pickle

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn

from agcn_cli.engine.data import SkeletonDataset
from agcn_cli.errors import AgcnError
from agcn_cli.evaluation.evaluate import EvalConfig, check_test_file, evaluate
from agcn_cli.evaluation.metrics import (
    class_names,
    compute_metrics,
    confusion_matrix,
    mean_class_accuracy,
    ntu_class_names,
    top_k_accuracy,
    write_confusion_csv,
)
from agcn_cli.evaluation.scoring import clip_scores, score_dataset
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
from agcn_cli.io.scores import Scores, read_scores, write_mmaction_dump, write_scores
from agcn_cli.io.splitfile import check_split_file
from agcn_cli.models.agcn import ModelConfig, build_model
from agcn_cli.models.loading import foreign_facts
from tests.helpers import write_split

pytestmark = pytest.mark.usefixtures("one_thread")


class PickLogits(nn.Module):
    """Logits read straight from the input: clip (C, T, V, M) -> x[0, 0, :K, 0]."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x[:, 0, 0, : self.k, 0]


class MeanLinear(nn.Module):
    """A deterministic stand-in for AGCN: mean over T, V, M then a fixed linear map."""

    def __init__(self, c: int, k: int):
        super().__init__()
        self.fc = nn.Linear(c, k)
        with torch.no_grad():
            self.fc.weight.copy_(torch.linspace(-1, 1, c * k).view(k, c))
            self.fc.bias.copy_(torch.linspace(0, 0.5, k))

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3, 4)))


def test_clip_average_equals_hand_computation():
    logits = [[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], [[5.0, 5.0, 5.0], [-3.0, 0.0, 3.0]]]  # (N=2, K=2, classes=3)
    clips = torch.zeros(2, 2, 3, 4, 5, 2)  # (N, K, C, T, V, M)
    clips[:, :, 0, 0, :3, 0] = torch.tensor(logits)
    prob, logit = clip_scores(PickLogits(3), clips)
    for n in range(2):
        expected = [0.0, 0.0, 0.0]
        for clip in logits[n]:
            z = sum(math.exp(v) for v in clip)
            expected = [e + math.exp(v) / z / 2 for e, v in zip(expected, clip, strict=True)]
        assert prob[n].tolist() == pytest.approx(expected, abs=1e-6)
        assert logit[n].tolist() == pytest.approx([(a + b) / 2 for a, b in zip(*logits[n], strict=True)])
    # the mean of softmaxes, not the softmax of the mean logits
    assert not torch.allclose(prob, logit.softmax(-1))


def test_clip_scores_run_in_float32_without_tf32():
    class Spy(PickLogits):
        def forward(self, x):
            self.flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
            return super().forward(x)

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        model = Spy(3)
        clip_scores(model, torch.zeros(2, 1, 3, 4, 5, 2))
        assert model.flags == (False, False)  # PyTorch's default would be TF32 convolutions on CUDA
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("eval") / "test.h5", (5, 12, 30, 17, 8, 23, 40))


def test_score_dataset_batched_equals_per_sample(split):
    model = MeanLinear(3, 3)
    ds = SkeletonDataset(split, "bone", clip_len=8, num_clips=3, test_mode=True)
    prob, logit = score_dataset(model, ds, batch_size=3)
    prob1, _ = score_dataset(model, ds, batch_size=1)
    np.testing.assert_allclose(prob, prob1, rtol=1e-6)
    for i in range(len(ds)):
        x = ds.gather(np.array([i]), ds.batch_frame_indices(np.array([i]), None))[0]  # (K, C, L, V, M)
        with torch.no_grad():
            z = model(x)  # (K, classes)
        np.testing.assert_allclose(prob[i], z.softmax(-1).mean(0).numpy(), rtol=1e-5)
        np.testing.assert_allclose(logit[i], z.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    one = SkeletonDataset(split, "joint", clip_len=8, num_clips=1, test_mode=True)
    assert score_dataset(model, one, batch_size=4)[0].shape == (len(one), 3)  # (N, C, T, V, M) batches too


def test_metrics_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2])
    scores = np.array(
        [[0.9, 0.1, 0.0, 0], [0.2, 0.7, 0.1, 0], [0.1, 0.5, 0.4, 0], [0.1, 0.8, 0.1, 0], [0.6, 0.3, 0.1, 0],
         [0.0, 0.1, 0.2, 0.7]]
    )  # fmt: skip
    m = compute_metrics(scores, labels, ["a", "b", "c", "d"])
    assert m.top1 == pytest.approx(2 / 6)
    assert top_k_accuracy(scores, labels, 2) == pytest.approx(5 / 6)  # sample 2: its label is third
    assert m.top5 == 1.0  # k is capped at the number of classes
    assert m.mean_class == pytest.approx((1 / 3 + 1 / 2 + 0 + 0) / 4)  # class 3: predicted, no sample: 0
    assert [(c.label, c.samples, c.correct) for c in m.per_class] == [(2, 1, 0), (0, 3, 1), (1, 2, 1)]
    worst = m.per_class[0]
    assert worst.name == "c" and worst.confused_with == 3 and worst.confused_count == 1
    assert m.per_class[1].confused_with == 1 and m.per_class[1].confused_count == 2
    assert m.confusion.sum() == 6 and m.confusion[0, 1] == 2 and m.confusion[1, 0] == 1
    np.testing.assert_array_equal(confusion_matrix(np.array([1, 1]), np.array([0, 1]), 2), [[0, 1], [0, 1]])
    assert m.summary()["per_class"][0]["label"] == 2


def _mmaction_metrics(scores, labels):
    """MMAction2's accuracy definitions written out plainly (accuracy.py): top-k from an ascending
    argsort; mean class over the classes seen as label or prediction, per-class hits / count."""
    order = np.argsort(scores, axis=1)
    top = [float(np.mean([labels[i] in order[i, -k:] for i in range(len(labels))])) for k in (1, 5)]
    pred = scores.argmax(axis=1)
    accs = []
    for c in np.unique(np.concatenate([pred, labels])):
        count = int((labels == c).sum())
        accs.append(int(((labels == c) & (pred == c)).sum()) / count if count else 0.0)
    return top[0], top[1], float(np.mean(accs))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_mmaction_definitions(seed):
    rng = np.random.default_rng(seed)
    k = 12
    labels = rng.integers(0, 8, 50)  # classes 8..11 have no sample but may be predicted
    scores = rng.random((50, k)).astype(np.float32)
    scores[np.arange(50), labels] += rng.random(50).astype(np.float32) * 0.4
    m = compute_metrics(scores, labels)
    assert (m.top1, m.top5, m.mean_class) == pytest.approx(_mmaction_metrics(scores, labels))
    assert mean_class_accuracy(np.zeros((3, 3), np.int64)) != mean_class_accuracy(np.zeros((3, 3), np.int64))  # NaN


def _scores(n=4, k=5, seed=0, names=None) -> Scores:
    rng = np.random.default_rng(seed)
    logit = rng.normal(size=(n, k)).astype(np.float32)
    prob = np.exp(logit) / np.exp(logit).sum(1, keepdims=True)
    names = names or [f"S001C001P{i + 1:03d}R001A001" for i in range(n)]
    return Scores(names, rng.integers(0, k, n), prob.astype(np.float32), logit, {"modality": "bone", "clips": 10})


def test_score_file_round_trip(tmp_path):
    s = _scores()
    s.attrs.update(sources=["/a.h5", "/b.h5"], weights=[2.0, 1.0])
    write_scores(tmp_path / "s.h5", s)
    r = read_scores(tmp_path / "s.h5")
    assert r.names == s.names and np.array_equal(r.labels, s.labels)
    np.testing.assert_array_equal(r.prob, s.prob)
    np.testing.assert_array_equal(r.logit, s.logit)
    assert r.attrs["modality"] == "bone" and r.attrs["clips"] == 10 and r.attrs["format"] == "agcn-scores"
    assert r.attrs["sources"] == ["/a.h5", "/b.h5"] and r.attrs["weights"] == [2.0, 1.0]
    assert r.attrs["num_classes"] == 5 and r.attrs["num_samples"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no temporary left behind


def test_read_scores_refuses_other_files(tmp_path, split):
    with pytest.raises(AgcnError, match="no such score file"):
        read_scores(tmp_path / "none.h5")
    with pytest.raises(AgcnError, match="not an agcn score file.*agcn eval"):
        read_scores(split)
    (tmp_path / "x.h5").write_text("text")
    with pytest.raises(AgcnError, match="x.h5: not a readable HDF5"):
        read_scores(tmp_path / "x.h5")
    (tmp_path / "d.pkl").write_bytes(b"\x80")
    with pytest.raises(AgcnError, match="MMAction2 dumps hold no sample names"):
        read_scores(tmp_path / "d.pkl")
    write_scores(tmp_path / "s.h5", _scores())
    with h5py.File(tmp_path / "s.h5", "a") as f:
        del f["logit"]
    with pytest.raises(AgcnError, match="s.h5: incomplete score file, missing logit"):
        read_scores(tmp_path / "s.h5")


def test_mmaction_dump(tmp_path):
    s = _scores()
    write_mmaction_dump(tmp_path / "d.pkl", s)
    with open(tmp_path / "d.pkl", "rb") as f:
        records = pickle.load(f)
    assert len(records) == 4
    r = records[2]
    assert r["pred_score"].dtype == torch.float32 and r["pred_score"].shape == (5,)
    assert r["pred_label"].tolist() == [int(s.prob[2].argmax())] and r["gt_label"].tolist() == [int(s.labels[2])]
    assert r["gt_label"].dtype == torch.int64 and r["frame_dir"] == s.names[2] and r["num_classes"] == 5
    np.testing.assert_array_equal(r["pred_score"].numpy(), s.prob[2])


def test_confusion_csv(tmp_path):
    write_confusion_csv(tmp_path / "c.csv", np.array([[3, 1], [0, 2]]), ["a", "b"])
    assert (tmp_path / "c.csv").read_text().splitlines() == ["true_label,true_name,pred_0,pred_1", "0,a,3,1", "1,b,0,2"]


def test_class_names():
    names = ntu_class_names()
    assert len(names) == 120 and names[0] == "drink water" and names[59] == "walking apart from each other"
    assert names[119] == "finger-guessing game (playing rock-paper-scissors)"
    assert class_names(60, "ntu60-xsub") == list(names[:60])
    assert class_names(120)[60] == "put on headphone"
    assert class_names(3, "") == ["class 0", "class 1", "class 2"]
    assert class_names(400, "kinetics")[399] == "class 399"


def test_check_test_file(split, tmp_path):
    attrs = check_split_file(split)
    notes = check_test_file(split, attrs, ModelConfig(num_classes=3), DataInfo(modality="bone"))
    assert any("'bone' is not stored" in n for n in notes)
    with pytest.raises(AgcnError, match="labels reach class 2 .* model has 2 classes"):
        check_test_file(split, attrs, ModelConfig(num_classes=2), DataInfo())
    with pytest.raises(AgcnError, match="layout 'ntu25', but the checkpoint's model is for 'coco17'"):
        check_test_file(split, attrs, ModelConfig(layout="coco17", num_classes=3), DataInfo(layout="coco17"))
    with pytest.raises(AgcnError, match="channels 'x,y,z', but the checkpoint was trained on 'x,y,score'"):
        check_test_file(split, attrs, ModelConfig(num_classes=3), DataInfo(channels="x,y,score"))
    notes = check_test_file(split, attrs, ModelConfig(num_classes=3), DataInfo(recipe="2s-agcn"))
    assert any("recipe 'mmaction2'" in n for n in notes) and any("training split" in n for n in notes)


def test_foreign_facts():
    assert foreign_facts() == (None, None)
    config, data = foreign_facts(modality="bone", defaults={"num_classes": 60, "layout": "ntu25", "recipe": "2s-agcn"})
    assert (config.num_classes, config.layout, config.in_channels) == (60, "ntu25", 3)
    assert (data.modality, data.recipe, data.clip_len) == ("bone", "2s-agcn", 100)
    with pytest.raises(AgcnError, match="choose one of: joint, bone"):
        foreign_facts(modality="bones", num_classes=3)
    with pytest.raises(AgcnError, match="--num-classes"):
        foreign_facts(modality="joint")


def test_evaluate_agcn_and_foreign_checkpoints(split, tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=3)).eval()
    save_checkpoint(tmp_path / "m.pt", model, DataInfo(modality="joint-motion", clip_len=8), epoch=1)
    notes = []
    res = evaluate(EvalConfig(tmp_path / "m.pt", split, clips=2, batch_size=4), note=notes.append)
    s = res.scores
    assert s.prob.shape == (7, 3) and s.names == SkeletonDataset(split).names and s.attrs["modality"] == "joint-motion"
    assert (
        s.attrs["clips"] == 2
        and s.attrs["clip_len"] == 8
        and res.class_names == ["drink water", "eat meal/snack", "brushing teeth"]
    )
    assert any("'joint-motion' is not stored" in n for n in notes)
    np.testing.assert_allclose(s.prob.sum(1), 1, rtol=1e-5)
    assert res.metrics.top1 == pytest.approx(float((s.prob.argmax(1) == s.labels).mean()))
    # the same weights without agcn metadata, given the facts
    torch.save({"state_dict": model.state_dict()}, tmp_path / "raw.pth")
    with pytest.raises(AgcnError, match="raw.pth: not an agcn checkpoint .*--num-classes"):
        evaluate(EvalConfig(tmp_path / "raw.pth", split, clips=2))
    config, data = foreign_facts(modality="joint-motion", clip_len=8, defaults=check_split_file(split))
    res2 = evaluate(EvalConfig(tmp_path / "raw.pth", split, clips=2, foreign_config=config, foreign_data=data))
    np.testing.assert_allclose(res2.scores.prob, s.prob, rtol=1e-5, atol=1e-7)


def test_evaluate_writes_the_outputs_asked(split, tmp_path):
    """`evaluate` writes the score file, the MMAction2 dump and the confusion CSV (agcn eval's --out,
    --mmaction-dump, --confusion); `evaluate_path` checks them before anything is scored."""
    from agcn_cli.evaluation.evaluate import EvalOutputs
    from agcn_cli.evaluation.runs import evaluate_path

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_model(ModelConfig(num_classes=3)).eval(), DataInfo(clip_len=8), epoch=1)
    config = EvalConfig(tmp_path / "m.pt", split, clips=2, batch_size=4)
    outputs = EvalOutputs(tmp_path / "s.h5", tmp_path / "cm.csv", tmp_path / "d.pkl")
    assert outputs.files() == [tmp_path / "s.h5", tmp_path / "d.pkl", tmp_path / "cm.csv"]
    res = evaluate(config, outputs=outputs)
    assert res.checkpoint == tmp_path / "m.pt"
    np.testing.assert_array_equal(read_scores(tmp_path / "s.h5").prob, res.scores.prob)
    with open(tmp_path / "d.pkl", "rb") as f:
        assert len(pickle.load(f)) == len(res.scores.names)
    assert (tmp_path / "cm.csv").read_text().count("\n") == 4  # a header and a row per class
    with pytest.raises(AgcnError, match="s.h5: already exists"):
        evaluate_path(config, outputs=outputs)
    with pytest.raises(AgcnError, match="--confusion .*cm.txt: expected a .csv file name"):
        evaluate_path(config, outputs=EvalOutputs(confusion=tmp_path / "cm.txt"))
    again = evaluate_path(config, outputs=EvalOutputs(tmp_path / "s.h5", overwrite=True))
    np.testing.assert_array_equal(again.scores.prob, res.scores.prob)
