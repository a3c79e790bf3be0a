import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.ntu import NAME_RE, parse_name, parse_skeleton
from agcn_cli.synth import SynthConfig, generate, sample_names

SMALL = SynthConfig(samples_per_class=6, min_frames=30, max_frames=40, workers=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), SMALL)


def test_names_follow_convention_and_config(files):
    assert len(files) == len(SMALL.actions) * SMALL.samples_per_class
    infos = [parse_name(p.name) for p in files]
    assert all(NAME_RE.match(p.stem) for p in files)
    assert len({p.name for p in files}) == len(files)
    assert {i.action for i in infos} == set(SMALL.actions)
    assert {i.subject for i in infos} <= set(SMALL.subjects)
    assert {i.camera for i in infos} <= {1, 2, 3} and {i.replication for i in infos} <= {1, 2}
    # both sides of the cross-subject split are present
    assert {i.subject for i in infos} & {1, 2, 4, 5, 8} and {i.subject for i in infos} & {3, 6, 7}


def test_files_parse_and_look_like_kinect(files):
    lengths, bodies, empty, crowded, ids = [], [], 0, 0, set()
    for path in files:
        raw = path.read_bytes()
        assert b"\r\n" in raw
        sk = parse_skeleton(path)
        lengths.append(sk.num_frames)
        empty += int((sk.bodies_per_frame == 0).sum())
        crowded += int((sk.bodies_per_frame > 2).sum())
        ids |= set(sk.body_id.tolist())
        if len(sk.xyz):
            bodies.append(sk.xyz)
    assert min(lengths) >= SMALL.min_frames and max(lengths) <= SMALL.max_frames
    xyz = np.concatenate(bodies)
    assert 1.5 < np.median(xyz[..., 2]) < 4.5  # metres in front of the camera
    assert min(ids) > 2**53  # real Kinect ids do not survive float64
    assert empty > 0 and crowded > 0  # dropped frames and extra (ghost) bodies happen


def test_two_person_classes_have_two_bodies(files):
    for path in files:
        sk = parse_skeleton(path)
        two = (sk.bodies_per_frame >= 2).mean()
        if parse_name(path.name).action in (50, 58):
            assert two > 0.5
        else:
            assert (sk.bodies_per_frame <= 1).mean() > 0.5


def test_deterministic_and_seed_dependent(tmp_path):
    cfg = SynthConfig(actions=(8, 50), samples_per_class=2, min_frames=20, max_frames=25, workers=1)
    a = generate(tmp_path / "a", cfg)
    b = generate(tmp_path / "b", SynthConfig(**{**cfg.__dict__, "workers": 2}))
    c = generate(tmp_path / "c", SynthConfig(**{**cfg.__dict__, "seed": 1}))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]


def test_clean_mode_has_no_artefacts(tmp_path):
    cfg = SynthConfig(samples_per_class=3, min_frames=20, max_frames=30, artefacts=False, workers=1)
    for path in generate(tmp_path, cfg):
        sk = parse_skeleton(path)
        expected = 2 if parse_name(path.name).action in (50, 58) else 1
        assert (sk.bodies_per_frame == expected).all()


def test_classes_are_separable_but_not_trivially(files):
    """Nearest centroid on centred joint-velocity features, leave-one-out, beats chance well."""
    feats, labels = [], []
    for path in files:
        sk = parse_skeleton(path)
        main = sk.xyz[sk.slot == 0]
        rel = main - main[:, :1]  # centred on the spine base
        vel = np.abs(np.diff(rel, axis=0)).mean(axis=0).ravel()
        feats.append(np.concatenate([vel, rel.std(axis=0).ravel()]))
        labels.append(parse_name(path.name).label)
    x, y = np.asarray(feats), np.asarray(labels)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    correct = 0
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        classes = np.unique(y[keep])
        centroids = np.stack([x[keep][y[keep] == c].mean(0) for c in classes])
        correct += classes[np.argmin(((centroids - x[i]) ** 2).sum(1))] == y[i]
    accuracy = correct / len(x)
    assert 3 / len(SMALL.actions) < accuracy, accuracy  # chance is 1/8


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"min_frames": 50, "max_frames": 40}, "frame range"),
        ({"max_frames": 301}, "frame range"),
        ({"actions": (0,)}, "outside 1..120"),
        ({"actions": (5, 5)}, "distinct"),
        ({"cameras": (4,)}, "cameras"),
        ({"samples_per_class": 10_000}, "more distinct names"),
    ],
)
def test_bad_config(tmp_path, kw, message):
    with pytest.raises(AgcnError, match=message):
        sample_names(SynthConfig(**kw))
