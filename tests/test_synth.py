"""The synthetic NTU generator: the files parse as NTU `.skeleton` text, follow the naming and
split conventions, look like Kinect output (artefacts included) and hold learnable classes.

The files are read back with a small strict reader written here from the format description,
independent of `agcn_cli.sources.ntu`, so a generator bug cannot hide behind a lenient parser.
"""

import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.sources.synth import MUTUAL_ACTIONS, SynthConfig, generate, sample_names

NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})\.skeleton$")
XSUB_TRAIN = {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}
NUMBER = re.compile(r"^-?(\d+)(?:\.(\d+))?(?:e[-+]\d+)?$")  # %g output


def significant_digits(text: str) -> int:
    whole, frac = NUMBER.match(text).groups()
    return len((whole + (frac or "")).lstrip("0"))


SMALL = SynthConfig(samples_per_class=6, min_frames=30, max_frames=40, workers=1)


@dataclass
class Parsed:
    frames: list[list[int]]  # body ids listed in each frame, in slot order
    joints: dict[int, dict[int, np.ndarray]]  # body id -> frame -> (25, 12) joint values
    info: list[list[str]]  # every body info line, split


def read_strict(path: Path) -> Parsed:
    """Parse a `.skeleton` file, asserting the released format down to line ends and digits."""
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n"), "CRLF line ends"
    lines = raw.decode("ascii").split("\r\n")[:-1]
    num_frames, i = int(lines[0]), 1
    frames, joints, info = [], {}, []
    for f in range(num_frames):
        num_bodies, i = int(lines[i]), i + 1
        ids = []
        for _ in range(num_bodies):
            values = lines[i].split(" ")
            assert len(values) == 10 and re.fullmatch(r"\d{17}", values[0]), lines[i]
            body_id = int(values[0])
            assert lines[i + 1] == "25"
            block = [line.split(" ") for line in lines[i + 2 : i + 27]]
            assert all(len(v) == 12 and re.fullmatch(r"[012]", v[11]) for v in block)
            assert all(NUMBER.match(x) and significant_digits(x) <= 7 for v in block for x in v)
            joints.setdefault(body_id, {})[f] = np.array(block, dtype=np.float64)
            info.append(values)
            ids.append(body_id)
            i += 27
        assert len(set(ids)) == len(ids), "a body id twice in one frame"
        frames.append(ids)
    assert i == len(lines), "trailing data"
    return Parsed(frames, joints, info)


def main_body(p: Parsed) -> np.ndarray:
    """(T', 25, 3): the longest-tracked body, frames where it is present."""
    body_id = max(p.joints, key=lambda b: len(p.joints[b]))
    return np.stack([v[:, :3] for _, v in sorted(p.joints[body_id].items())])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), SMALL)


@pytest.fixture(scope="module")
def parsed(files):
    return [read_strict(p) for p in files]


def fields(path: Path) -> tuple[int, ...]:
    return tuple(int(g) for g in NAME.match(path.name).groups())  # setup, camera, subject, rep, action


def test_names_follow_the_convention_and_cover_the_splits(files):
    assert len(files) == len(SMALL.actions) * SMALL.samples_per_class == len({p.name for p in files})
    assert all(p.exists() and NAME.match(p.name) for p in files)
    assert not [p for p in files[0].parent.iterdir() if not p.name.endswith(".skeleton")]  # no temporaries left
    rows = np.array([fields(p) for p in files])
    assert set(rows[:, 4]) == set(SMALL.actions)
    assert set(rows[:, 2]) <= set(SMALL.subjects) and set(rows[:, 1]) == {1, 2, 3} and set(rows[:, 3]) == {1, 2}
    assert set(rows[:, 0]) <= set(SMALL.setups)
    for action in SMALL.actions:  # every class on both sides of xsub and xview, subjects evenly used
        mine = rows[rows[:, 4] == action]
        assert {s in XSUB_TRAIN for s in mine[:, 2]} == {True, False}
        assert {c == 1 for c in mine[:, 1]} == {True, False}
        assert max(Counter(mine[:, 2]).values()) == 1  # 6 samples over 8 subjects
    assert sample_names(SMALL) == [p.stem for p in files]


def test_files_parse_and_look_like_kinect(files, parsed):
    lengths = [len(p.frames) for p in parsed]
    assert SMALL.min_frames <= min(lengths) and max(lengths) <= SMALL.max_frames
    body = np.concatenate([main_body(p) for p in parsed])
    assert 2.0 < np.median(body[..., 2]) < 4.0  # metres in front of the sensor
    assert (body[:, 3, 1] > body[:, 0, 1]).mean() > 0.95  # y up: head above spine base
    assert (body[:, 3, 1] > body[:, [15, 19], 1].max(1) + 1.0).mean() > 0.8  # a standing adult's height
    ids = {int(v[0]) for p in parsed for v in p.info}
    assert min(ids) > 2**56  # real Kinect ids, which do not survive a float64 round trip
    values = np.concatenate([b for p in parsed for track in p.joints.values() for b in track.values()])
    quat = values[:, 7:11]
    norms = np.linalg.norm(quat, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))  # unit orientations, zeros at leaves
    assert 0 < values[:, 3].mean() < 512 and 0 < values[:, 6].mean() < 1080  # depth and colour pixels


def test_camera_views_rotate_the_scene(tmp_path):
    cfg = SynthConfig(actions=(24,), subjects=(1, 2), setups=(1, 2), samples_per_class=12, artefacts=False)
    angle = {1: [], 2: [], 3: []}
    for path in generate(tmp_path, cfg):
        body = main_body(read_strict(path))
        shoulders = (body[:, 4] - body[:, 8]).mean(0)  # right -> left shoulder
        angle[fields(path)[1]].append(np.degrees(np.arctan2(shoulders[2], -shoulders[0])))
    assert abs(np.mean(angle[1])) < 15  # frontal: the shoulder line is parallel to x
    assert sorted([np.mean(angle[2]), np.mean(angle[3])]) == pytest.approx([-45, 45], abs=15)


def test_bone_lengths_belong_to_the_performer(tmp_path):
    cfg = SynthConfig(actions=(23, 27), subjects=(1, 3), samples_per_class=8, artefacts=False)
    femur = {1: [], 3: []}
    for path in generate(tmp_path, cfg):
        body = main_body(read_strict(path))
        length = np.linalg.norm(body[:, 13] - body[:, 12], axis=-1)
        assert length.std() < 1e-5  # rigid bones when there is no noise
        femur[fields(path)[2]].append(length.mean())
    assert np.ptp(femur[1]) < 1e-5 and np.ptp(femur[3]) < 1e-5 and abs(femur[1][0] - femur[3][0]) > 1e-3


def test_two_person_classes_have_two_bodies(files, parsed):
    ok = []
    for path, p in zip(files, parsed, strict=True):
        counts = np.array([len(ids) for ids in p.frames])
        if fields(path)[4] in MUTUAL_ACTIONS:
            ok.append((counts >= 2).mean() > 0.7)
        else:
            ok.append((counts <= 1).mean() > 0.7)  # a rare bystander or ghost aside
    assert np.mean(ok) > 0.9


def test_artefacts_appear_when_enabled(parsed):
    counts = np.array([len(ids) for p in parsed for ids in p.frames])
    assert (counts == 0).any() and (counts > 2).any()
    short = [b for p in parsed for b, frames in p.joints.items() if len(frames) <= 10]
    assert short  # ghosts
    swapped = 0
    for p in parsed:  # two bodies listed in both orders within one file
        orders = {tuple(ids[:2]) for ids in p.frames if len(ids) >= 2}
        swapped += any((b, a) in orders for a, b in orders)
    assert swapped
    states = np.concatenate([b[:, 11] for p in parsed for t in p.joints.values() for b in t.values()])
    assert 0.005 < (states == 1).mean() < 0.2  # some joints inferred


def test_clean_mode_has_no_artefacts(tmp_path):
    cfg = SynthConfig(actions=(23, 50, 58), samples_per_class=4, min_frames=20, max_frames=30, artefacts=False)
    for path in generate(tmp_path, cfg):
        p = read_strict(path)
        expected = 2 if fields(path)[4] in MUTUAL_ACTIONS else 1
        assert all(len(ids) == expected for ids in p.frames)
        assert len({tuple(ids) for ids in p.frames}) == 1  # stable slot order
        assert all((b[:, 11] == 2).all() for t in p.joints.values() for b in t.values())


def test_deterministic_per_seed_and_per_name(tmp_path):
    cfg = SynthConfig(actions=(8, 50), samples_per_class=3, min_frames=20, max_frames=25, workers=1)
    a = generate(tmp_path / "a", cfg)
    b = generate(tmp_path / "b", replace(cfg, workers=2))
    c = generate(tmp_path / "c", replace(cfg, seed=1))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert all(p.read_bytes() != q.read_bytes() for p, q in zip(a, c, strict=True))
    # a file depends on its name and the seed only, not on the rest of the set
    d = {p.name: p for p in generate(tmp_path / "d", replace(cfg, samples_per_class=5))}
    assert all(d[p.name].read_bytes() == p.read_bytes() for p in a if p.name in d)
    assert any(p.name in d for p in a)


def test_progress_and_ntu120_ids(tmp_path):
    ticks = []
    cfg = SynthConfig(actions=(61, 110), subjects=(45, 106), setups=(18, 32), samples_per_class=3, max_frames=45)
    paths = generate(tmp_path / "new", cfg, progress=ticks.append)
    assert ticks == [1] * len(paths) == [1] * 6
    assert {fields(p)[4] for p in paths} == {61, 110} and {fields(p)[0] for p in paths} <= {18, 32}
    p = read_strict(next(p for p in paths if fields(p)[4] == 110))  # A110 is two-person
    assert np.mean([len(ids) >= 2 for ids in p.frames]) > 0.7


def test_names_on_the_missing_lists_are_never_produced():
    # S001C002P005R002A008 is on NTU60's missing-skeleton list; preprocessing would drop it
    cfg = SynthConfig(actions=(8,), subjects=(5,), cameras=(2,), setups=(1,), samples_per_class=1, seed=3)
    assert sample_names(cfg) == ["S001C002P005R001A008"]
    with pytest.raises(AgcnError, match="not enough distinct names"):
        sample_names(replace(cfg, samples_per_class=2))


def _features(p: Parsed) -> np.ndarray:
    body = main_body(p)
    rel = body - body[:, :1]  # centred on the spine base
    return np.concatenate([np.abs(np.diff(rel, axis=0)).mean(0).ravel(), rel.std(0).ravel()])


def test_classes_are_learnable_but_not_by_one_feature(files, parsed):
    """Leave-one-out nearest centroid on centred joint speeds and spreads: far above chance;
    the best single feature alone does much worse."""
    x = np.stack([_features(p) for p in parsed])
    y = np.array([fields(p)[4] for p in files])
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)

    def loo_accuracy(x):
        correct = 0
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            classes = np.unique(y[keep])
            centroids = np.stack([x[keep][y[keep] == c].mean(0) for c in classes])
            correct += classes[np.argmin(((centroids - x[i]) ** 2).sum(1))] == y[i]
        return correct / len(x)

    chance = 1 / len(SMALL.actions)
    accuracy = loo_accuracy(x)
    best_single = max(loo_accuracy(x[:, [k]]) for k in range(0, x.shape[1], 3))
    assert accuracy > 4 * chance, accuracy
    assert best_single < accuracy - 0.15, (best_single, accuracy)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"min_frames": 50, "max_frames": 40}, "frame range"),
        ({"max_frames": 301}, "frame range"),
        ({"min_frames": 0}, "frame range"),
        ({"actions": (0,)}, "outside 1..120"),
        ({"actions": (121,)}, "outside 1..120"),
        ({"actions": ()}, "no action ids"),
        ({"actions": (5, 5)}, "distinct"),
        ({"cameras": (4,)}, "cameras"),
        ({"setups": (33,)}, "setups"),
        ({"subjects": ()}, "subjects"),
        ({"samples_per_class": 0}, "samples_per_class"),
        ({"samples_per_class": 10_000}, "more distinct names"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_config(tmp_path, kw, message):
    with pytest.raises(AgcnError, match=message):
        generate(tmp_path, SynthConfig(**kw))
    assert not list(tmp_path.iterdir())  # nothing written
