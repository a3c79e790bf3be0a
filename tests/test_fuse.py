"""Fusion by sample name: alignment, weights, errors, grid search, and the `agcn fuse` command."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.errors import AgcnError
from agcn_cli.evaluation.fusion import align, fuse_files, fuse_scores, parse_weights, search_weights, weight_grid
from agcn_cli.io.scores import Scores, read_scores, write_scores

runner = CliRunner()
NAMES = [f"S001C001P{p:03d}R001A{a:03d}" for p in (3, 6, 7) for a in (1, 2, 3, 4)]


def make_scores(seed: int, modality: str, names=NAMES, k: int = 5) -> Scores:
    rng = np.random.default_rng(seed)
    labels = np.array([int(n[-3:]) - 1 for n in names])
    logit = rng.normal(size=(len(names), k)).astype(np.float32)
    logit[np.arange(len(names)), labels] += rng.uniform(0, 2, len(names)).astype(np.float32)  # better than chance
    prob = (np.exp(logit) / np.exp(logit).sum(1, keepdims=True)).astype(np.float32)
    return Scores(list(names), labels, prob, logit, {"modality": modality, "clips": 10, "benchmark": "ntu60-xsub"})


def shuffled(s: Scores, seed: int) -> Scores:
    order = np.random.default_rng(seed).permutation(len(s))
    return Scores([s.names[i] for i in order], s.labels[order], s.prob[order], s.logit[order], dict(s.attrs))


@pytest.fixture
def files(tmp_path):
    paths = []
    for i, mod in enumerate(("joint", "bone", "joint-motion")):
        paths.append(tmp_path / f"{mod}.h5")
        write_scores(paths[-1], make_scores(i, mod))
    return paths


def test_shuffled_files_fuse_as_aligned(files, tmp_path):
    runs = [read_scores(p) for p in files]
    expected = fuse_scores(align(files, runs), [2, 1, 2])
    mixed = [runs[0], shuffled(runs[1], 1), shuffled(runs[2], 2)]
    got = fuse_scores(align(files, mixed), [2, 1, 2])
    np.testing.assert_array_equal(got.prob, expected.prob)
    np.testing.assert_array_equal(got.logit, expected.logit)
    # by hand: the weighted mean, weights normalised
    np.testing.assert_allclose(expected.prob, (2 * runs[0].prob + runs[1].prob + 2 * runs[2].prob) / 5, rtol=1e-6)
    # a shuffled first file sets the order; the rows follow the names
    first = shuffled(runs[0], 3)
    got = fuse_scores(align(files, [first, runs[1], runs[2]]), [2, 1, 2])
    row = {n: i for i, n in enumerate(got.names)}
    np.testing.assert_array_equal(got.prob[[row[n] for n in expected.names]], expected.prob)


def test_fused_file_is_a_score_file(files, tmp_path):
    report = fuse_files(files, "2,1,2", out=tmp_path / "f.h5")
    f = read_scores(tmp_path / "f.h5")
    assert f.attrs["modality"] == "joint+bone+joint-motion" and f.attrs["weights"] == [2.0, 1.0, 2.0]
    assert f.attrs["fused_by"] == "prob" and f.attrs["sources"] == [str(p.resolve()) for p in files]
    np.testing.assert_allclose(f.prob.sum(1), 1, rtol=1e-5)
    assert report.metrics.top1 == pytest.approx(float((f.prob.argmax(1) == f.labels).mean()))
    assert [s.modality for s in report.streams] == ["joint", "bone", "joint-motion"]
    again = fuse_files([tmp_path / "f.h5", files[0]], "1,1", kind="logit")  # fusing a fused file
    assert again.fused.attrs["modality"] == "joint+bone+joint-motion+joint"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2", "has 2 value(s) (1,2) for 3 score files (joint.h5, bone.h5, joint-motion.h5)"),
        ("1,x,2", "'x' is not a number"),
        ("1,-1,2", "-1 is not allowed; weights must be finite and >= 0"),
        ("0,0,0", "all weights are zero"),
        ("1,nan,1", "nan is not allowed"),
    ],
)
def test_bad_weights(files, text, message):
    with pytest.raises(AgcnError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_weights(text, files)


def test_different_sample_sets(files, tmp_path):
    other = make_scores(5, "bone", names=NAMES[:-2] + ["S009C001P001R001A001"])
    write_scores(tmp_path / "other.h5", other)
    with pytest.raises(AgcnError) as e:
        fuse_files([files[0], tmp_path / "other.h5"])
    msg = str(e.value)
    assert "joint.h5 and " in msg and "other.h5 hold different samples" in msg
    assert "2 only in joint.h5 (S001C001P007R001A003, S001C001P007R001A004)" in msg
    assert "1 only in other.h5 (S009C001P001R001A001)" in msg


def test_label_disagreement(files, tmp_path):
    s = read_scores(files[1])
    s.labels[4] = (s.labels[4] + 1) % 5
    write_scores(tmp_path / "relabelled.h5", s)
    with pytest.raises(AgcnError, match=rf"disagree on the label of 1 sample\(s\) \({NAMES[4]} 0 vs 1\)"):
        fuse_files([files[0], tmp_path / "relabelled.h5"])


def test_class_names_carried_and_must_agree(files, tmp_path):
    named = []
    for i, names in enumerate((["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "x"])):
        s = read_scores(files[i])
        s.attrs["label_names"] = names
        named.append(tmp_path / f"named{i}.h5")
        write_scores(named[-1], s)
    report = fuse_files([named[0], files[1]], out=tmp_path / "fused.h5")  # a file without names fuses too
    assert read_scores(tmp_path / "fused.h5").label_names == ("a", "b", "c", "d", "e")
    assert {c.label: c.name for c in report.metrics.per_class} == {0: "a", 1: "b", 2: "c", 3: "d"}
    with pytest.raises(AgcnError, match="named1.h5: its class names differ from those of .*named0.h5"):
        fuse_files(named)


def test_duplicates_classes_and_foreign_files(files, tmp_path):
    dup = make_scores(1, "bone", names=NAMES[:-1] + [NAMES[0]])
    write_scores(tmp_path / "dup.h5", dup)
    with pytest.raises(AgcnError, match=rf"dup.h5: 1 sample name\(s\) appear more than once \({NAMES[0]}\)"):
        fuse_files([files[0], tmp_path / "dup.h5"])
    write_scores(tmp_path / "k7.h5", make_scores(1, "bone", k=7))
    with pytest.raises(AgcnError, match="k7.h5 scores 7 classes but .*joint.h5 scores 5"):
        fuse_files([files[0], tmp_path / "k7.h5"])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(AgcnError, match="notes.txt: not a readable HDF5 score file"):
        fuse_files([files[0], tmp_path / "notes.txt"])
    with pytest.raises(AgcnError, match="at least two score files"):
        fuse_files([files[0]])


def test_weight_grid():
    grid = weight_grid(2, (0, 0.5, 1, 2))
    assert (0, 0) not in grid and (1, 1) in grid and (0.5, 0.5) not in grid and (2, 2) not in grid
    assert (0, 1) in grid and (0, 0.5) not in grid and (1, 2) in grid and (0.5, 1) not in grid
    norm = {tuple(np.round(np.array(g) / sum(g), 9)) for g in grid}
    assert len(norm) == len(grid)  # no two proportional combinations


def test_search_finds_the_best_ratio():
    # stream a is right with a margin of 0.2, stream b wrong with a margin of 0.4:
    # the fusion is right when w_a > 2 w_b; (1.5, 0.5) is the most even such grid point
    labels = np.array([0, 1, 0, 1])
    a = np.where(np.eye(2)[labels] > 0, 0.6, 0.4).astype(np.float32)
    b = np.where(np.eye(2)[labels] > 0, 0.3, 0.7).astype(np.float32)
    names = [f"s{i}" for i in range(4)]
    runs = [Scores(names, labels, a, np.log(a)), Scores(names, labels, b, np.log(b))]
    result = search_weights(runs)
    assert result.weights == [1.5, 0.5] and result.top1 == 1.0 and result.tried == len(weight_grid(2))


def test_search_on_validation_scores(files, tmp_path):
    val = []
    for i, mod in enumerate(("joint", "bone", "joint-motion")):
        val.append(tmp_path / f"val-{mod}.h5")
        write_scores(val[-1], make_scores(10 + i, mod, names=[n.replace("C001", "C002") for n in NAMES]))
    report = fuse_files(files, search=True, val=val, out=tmp_path / "f.h5")
    assert report.search.on == "val" and report.val_metrics is not None
    chosen = fuse_scores(align(files, [read_scores(p) for p in files]), report.weights)
    np.testing.assert_allclose(read_scores(tmp_path / "f.h5").prob, chosen.prob, rtol=1e-6)
    with pytest.raises(AgcnError, match="--val has 2 files for 3 score files"):
        fuse_files(files, search=True, val=val[:2])
    with pytest.raises(AgcnError, match="val-bone.h5 holds 'bone' scores but the matching test file .*joint.h5"):
        fuse_files(files, search=True, val=[val[1], val[0], val[2]])


def test_cli_fuse(files, tmp_path):
    r = runner.invoke(app, ["fuse", *map(str, files), "--weights", "2,1,2", "--out", str(tmp_path / "f.h5")])
    assert r.exit_code == 0, r.output
    assert "fused" in r.stdout and "wrote" in r.stdout and (tmp_path / "f.h5").exists()
    r = runner.invoke(app, ["fuse", *map(str, files), "--weights", "2,1,2", "--out", str(tmp_path / "f.h5")])
    assert r.exit_code == 1 and "already exists; pass --overwrite" in r.stderr
    r = runner.invoke(app, ["fuse", *map(str, files), "--search", "--logits", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["kind"] == "logit" and len(data["streams"]) == 3 and data["search"]["on"] == "test"
    assert "choosing weights on the test split overfits it" in r.stderr
    r = runner.invoke(app, ["fuse", *map(str, files), "--weights", "1,1"])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "--weights has 2 value(s)" in r.stderr
    r = runner.invoke(app, ["fuse", str(files[0]), str(files[0].with_name("missing.h5"))])
    assert r.exit_code == 1 and "missing.h5: no such score file" in r.stderr and "Traceback" not in r.output
