"""`agcn watch`: actions over time per person, from a file and live from a pipe, on a small model
trained on CPU on windows of three clearly distinct sustained synthetic actions
(sources/synth_scenes.py), and on long scenes of two people doing them one after another."""

import json
import os
import pickle
import select
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from agcn_cli.cli import app
from agcn_cli.evaluation.segments import NO_ACTION, Segmenter
from tests.helpers import one_error_line

ROOT = Path(__file__).resolve().parent.parent
ACTIONS = (10, 22, 23)  # clapping, cheer up, hand waving: the arms busy all along, each its own way
NAMES = ["clapping", "cheer up", "hand waving"]
WINDOW, STRIDE, CLIP = 40, 8, 16


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def events(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from agcn_cli.engine.config import TrainConfig
    from agcn_cli.engine.fit import fit
    from agcn_cli.sources.formats import convert
    from agcn_cli.sources.pipeline import ConvertConfig
    from agcn_cli.sources.synth_scenes import make_scene, scene_bodies, write_scene, write_windows

    root = tmp_path_factory.mktemp("watch")
    bodies = scene_bodies(root / "raw", ACTIONS)
    write_windows(root / "windows.pkl", bodies, ACTIONS, NAMES, WINDOW, per_class=45)
    convert(ConvertConfig(root / "windows.pkl", root / "data", layout="ntu25", workers=1))
    config = TrainConfig(data=str(root / "data"), out=str(root / "run"), clip_len=CLIP, epochs=10, batch_size=8,
                         lr=0.05, auto_scale_lr=False, val_every=10, tensorboard=False, deterministic=True)  # fmt: skip
    fit(config, log=lambda _: None)
    kp, truth = make_scene(bodies, [[10, 22, 23], [23, 22, 10]], per_action=1)
    write_scene(root / "scene.pkl", kp)
    return SimpleNamespace(root=root, ckpt=root / "run" / "last.pt", scene=root / "scene.pkl", kp=kp, truth=truth,
                           bodies=bodies)  # fmt: skip


def segments_by_person(evs: list[dict]) -> dict:
    out: dict = {}
    for e in evs:
        if e["type"] == "segment":
            out.setdefault(json.dumps(e["person"]), []).append(e)
    return {k: sorted(v, key=lambda s: s["start"]) for k, v in out.items()}


@pytest.mark.slow
def test_segments_recover_each_persons_actions_and_boundaries(trained):
    """Each person separately: the actions in order, each over most of its frames, and each change
    found near where it happened. The exactness of the rule is tested below with a classifier that
    scores a window by its mix (boundaries within one stride); here a tiny model trained for 10
    epochs on a CPU (94 % of held-out windows right) adds its own errors: measured on this scene,
    changes found 0-21 frames from the truth, short wrong runs of under a window at some changes."""
    r = run("watch", trained.ckpt, trained.scene, "--window", WINDOW, "--stride", STRIDE, "--json")
    assert r.exit_code == 0, r.output
    evs = events(r.stdout)
    windows = [e for e in evs if e["type"] == "window"]
    assert {json.dumps(w["person"]) for w in windows} == {"0", "1"}
    assert all(w["end"] - w["start"] + 1 == WINDOW and (w["end"] - WINDOW + 1) % STRIDE == 0 for w in windows)
    segs = segments_by_person(evs)
    for person in (0, 1):
        mine = segs[str(person)]
        truth = [t for t in trained.truth if t.person == person]
        # the segments tile the person's frames
        assert mine[0]["start"] == 0 and mine[-1]["end"] == truth[-1].end
        assert all(a["end"] + 1 == b["start"] for a, b in zip(mine, mine[1:], strict=False))
        label = np.full(truth[-1].end + 1, -2)
        for s in mine:
            label[s["start"] : s["end"] + 1] = s["class"]
        for t in truth:  # each action is what most of its frames are labelled
            right = (label[t.start : t.end + 1] == ACTIONS.index(t.action)).mean()
            assert right > 0.5, (person, t, right, mine)
        major = [s for s in mine if s["end"] - s["start"] + 1 >= WINDOW]  # the actions, in order
        classes = [c for i, c in enumerate(s["class"] for s in major) if i == 0 or c != major[i - 1]["class"]]
        assert classes == [ACTIONS.index(t.action) for t in truth], (person, mine)
        starts = [s["start"] for s in mine[1:]]
        for t in truth[1:]:
            assert min(abs(f - t.start) for f in starts) <= WINDOW, (person, t.start, starts)


@pytest.mark.slow
def test_a_live_pipe_gives_the_file_s_segments_and_each_window_at_once(trained):
    lines = [json.dumps({"frame": t, "people": [{"id": p, "keypoints": trained.kp[p, t].tolist()}
                                                for p in range(2) if trained.kp[p, t].any()]}) + "\n"
             for t in range(trained.kp.shape[1])]  # fmt: skip
    cmd = [sys.executable, "-m", "agcn_cli", "watch", str(trained.ckpt), "-", "--window", str(WINDOW), "--stride",
           str(STRIDE), "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)  # fmt: skip
    try:
        proc.stdin.writelines(lines[:WINDOW])  # frames 0..39: the first window ends at the last of them
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no window result while the stream is still open"
        first = json.loads(proc.stdout.readline())
        assert first["type"] == "window" and first["end"] == WINDOW - 1
        proc.stdin.writelines(lines[WINDOW:])
        proc.stdin.close()
        live = [first] + events(proc.stdout.read())
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        proc.kill()
    r = run("watch", trained.ckpt, trained.scene, "--window", WINDOW, "--stride", STRIDE, "--json")
    from_file = events(r.stdout)
    strip = lambda evs: [{k: v for k, v in e.items() if k != "sequence"} for e in evs]  # noqa: E731
    assert strip(live) == strip(from_file)


def one_sample(path: Path, bodies: np.ndarray, name: str = "one") -> Path:
    """An annotation file of one sample, (M, T, 25, 3) raw NTU bodies."""
    ann = {"frame_dir": name, "total_frames": bodies.shape[1], "keypoint": bodies.astype(np.float32)}
    path.write_bytes(pickle.dumps({"split": {"x": [name]}, "annotations": [ann]}))
    return path


@pytest.mark.parametrize("length", [WINDOW, CLIP])  # CLIP: all ten test clips are the window, scored once
def test_a_window_equal_to_a_sample_gives_predict_s_probabilities(trained, tmp_path, length):
    body = trained.bodies[(22, True)][0][:length][None]
    sample = one_sample(tmp_path / "one.pkl", body)
    predicted = json.loads(run("predict", trained.ckpt, sample, "--json", "--top", "3").stdout)["predictions"][0]
    r = run("watch", trained.ckpt, sample, "--window", length, "--stride", length, "--json", "--top", "3")
    (window,) = [e for e in events(r.stdout) if e["type"] == "window"]
    assert (window["start"], window["end"]) == (0, length - 1)
    assert [c["class"] for c in window["top"]] == [c["class"] for c in predicted["top"]]
    np.testing.assert_allclose([c["probability"] for c in window["top"]],
                               [c["probability"] for c in predicted["top"]], atol=1e-5)  # fmt: skip


def test_pairs_are_scored_together_as_predict_scores_a_two_person_sample(trained, tmp_path):
    a, b = trained.bodies[(10, True)][0][:WINDOW], trained.bodies[(23, True)][1][:WINDOW]
    sample = one_sample(tmp_path / "two.pkl", np.stack([a, b + np.array([0.8, 0, 0], np.float32)]))
    predicted = json.loads(run("predict", trained.ckpt, sample, "--json").stdout)["predictions"][0]
    r = run("watch", trained.ckpt, sample, "--window", WINDOW, "--stride", WINDOW, "--pairs", "--json")
    (window,) = [e for e in events(r.stdout) if e["type"] == "window"]
    assert window["person"] == [0, 1]
    np.testing.assert_allclose([c["probability"] for c in window["top"]],
                               [c["probability"] for c in predicted["top"][:3]], atol=1e-5)  # fmt: skip
    alone = events(run("watch", trained.ckpt, sample, "--window", WINDOW, "--stride", WINDOW, "--json").stdout)
    assert sorted(e["person"] for e in alone if e["type"] == "window") == [0, 1]


def test_a_live_stream_goes_on_after_bad_lines(trained):
    good = [{"frame": t, "people": [{"keypoints": trained.kp[0, t].tolist()}]} for t in range(60)]
    lines = [json.dumps(g) for g in good[:20]]
    lines += ["this is not json", json.dumps({"frame": 20, "people": [{"keypoints": [[0, 0, 0]] * 24}]})]
    nan = json.loads(json.dumps(good[20]))
    nan["people"][0]["keypoints"][3][0] = None
    lines += [json.dumps(nan).replace("null", "NaN"), json.dumps(good[5])]  # NaN; then a frame out of order
    lines += [json.dumps({"frame": 21, "people": [{"id": "a", "keypoints": trained.kp[0, 21].tolist()}]})]
    lines += [json.dumps({"frame": 22, "people": [{"id": 3, "keypoints": trained.kp[0, 22].tolist()}]})]  # id type
    lines += [json.dumps(g) for g in good[23:]]
    text = "\n".join(lines) + '\n{"frame": 60, "peo'  # and the input ends mid-line
    r = run("watch", trained.ckpt, "-", "--window", WINDOW, "--stride", STRIDE, "--json", input=text)
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert [e.split(":")[2].strip() for e in errors] == [
        "line 21",
        "line 22",
        "line 23",
        "line 24",
        "line 26",
        "line 64",
    ]
    assert "not JSON" in errors[0] and "expected [25, 3]" in errors[1] and "NaN" in errors[2]
    assert "frame 5 after frame" in errors[3] and "change type" in errors[4] and "ends mid-line" in errors[5]
    assert "6 bad input lines" in r.stderr
    windows = [e for e in events(r.stdout) if e["type"] == "window"]
    assert windows and windows[-1]["end"] == 55  # the good frames went on being watched (windows end 39, 47, 55)


def test_one_line_errors(trained, tmp_path):
    short = one_sample(tmp_path / "short.pkl", trained.bodies[(10, True)][0][:30][None])
    r = run("watch", trained.ckpt, short, "--window", WINDOW)
    assert r.exit_code == 1 and "30 frames, fewer than --window 40" in r.stderr
    r = run("watch", trained.ckpt, short, "--stride", 0)  # a command-line mistake: one line, exit 2
    assert r.exit_code == 2 and r.stderr.count("error:") == 1 and "--stride" in r.stderr
    assert "no such file" in one_error_line(["watch", str(trained.ckpt), str(tmp_path / "nope.pkl")])
    assert ".json or .csv" in one_error_line(["watch", str(trained.ckpt), str(short), "--out", str(tmp_path / "s.txt")])


def test_segments_file_and_timeline(trained, tmp_path):
    pytest.importorskip("matplotlib")
    for suffix in (".json", ".csv"):
        out = tmp_path / f"segs{suffix}"
        r = run("watch", trained.ckpt, trained.scene, "--window", WINDOW, "--stride", STRIDE, "--out", out)
        assert r.exit_code == 0, r.output
        if suffix == ".json":
            doc = json.loads(out.read_text())
            assert (doc["format"], doc["window"], doc["stride"], doc["classes"]) == ("agcn-segments", 40, 8, NAMES)
            assert doc["people"] == [0, 1] or doc["people"] == [1, 0]
        else:
            assert out.read_text().splitlines()[0] == "person,start,end,class,name,probability"
        r = run("plot", out, "--out", tmp_path / f"timeline{suffix}.png")
        assert r.exit_code == 0, r.output


# ---- the segment rule, with probabilities that are exactly the share of each class in the window ----


def mixture_windows(boundaries: list[int], classes: list[int], total: int, window: int, stride: int, k: int = 3):
    """(end, probabilities) of windows over frames 0..total-1 whose true class changes at `boundaries`."""
    truth = np.zeros(total, int)
    for b, c in zip(boundaries, classes[1:], strict=True):
        truth[b:] = c
    truth[: boundaries[0] if boundaries else total] = classes[0]
    out = []
    for end in range(window - 1, total, stride):
        p = np.bincount(truth[end - window + 1 : end + 1], minlength=k) / window
        out.append((end, p))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_boundaries_within_one_stride_for_a_classifier_of_the_window_s_mix(seed):
    rng = np.random.default_rng(seed)
    window, stride = int(rng.integers(20, 101)), int(rng.integers(2, 17))
    cuts = np.sort(rng.choice(np.arange(window, 400 - window), size=2, replace=False))
    while cuts[1] - cuts[0] < window:
        cuts[1] += window
    classes = [0, 1, 2]
    seg = Segmenter(7, window, stride, ["a", "b", "c"], smooth=3, min_frames=window // 2)
    found = []
    total = int(cuts[1] + 2 * window)
    for end, p in mixture_windows(list(cuts), classes, total, window, stride):
        found += seg.add(end, p, 0)
    found += seg.close(total - 1)
    assert [s.cls for s in found] == classes
    assert found[0].start == 0 and found[-1].end == total - 1
    for s, b in zip(found[1:], cuts, strict=True):
        assert abs(s.start - b) <= stride, (window, stride, b, [(x.start, x.end) for x in found])


def test_threshold_short_runs_and_live_equals_whole():
    names = ["a", "b", "c"]
    probs = [np.array([0.9, 0.05, 0.05])] * 10 + [np.array([0.2, 0.7, 0.1])] + [np.array([0.4, 0.3, 0.3])] * 10
    seg = Segmenter("p", 16, 4, names, smooth=1, threshold=0.5, min_frames=8)
    out = []
    for i, p in enumerate(probs):
        out += seg.add(15 + 4 * i, p, 0)
    live_before_close = list(out)
    out += seg.close(15 + 4 * (len(probs) - 1))
    assert [s.cls for s in out] == [0, NO_ACTION]  # the one-window "b" is too short: it joins "a"
    assert out[1].name == "no action" and out[0].end + 1 == out[1].start
    assert live_before_close == out[:1]  # "a" was final as soon as "no action" was long enough
