"""`agcn preprocess` of MMAction2/pyskl .pkl files and Kinetics-Skeleton JSON folders.

Every input is made here from synthetic data: NTU .skeleton files from `agcn_cli.sources.synth`, their
pyskl bodies packed as a 3D annotation file, projected to pixels with scores as a 2D one, and
written as OpenPose-18 Kinetics-Skeleton videos.
"""

import json
import os
import pickle

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.engine.data import BatchLoader, SkeletonDataset
from agcn_cli.errors import AgcnError
from agcn_cli.io.splitfile import check_split_file, read_meta, read_sample
from agcn_cli.io.streamfile import materialize_streams
from agcn_cli.models.agcn import ModelConfig, build_model
from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.sources.formats import convert
from agcn_cli.sources.kinetics import video_sample
from agcn_cli.sources.ntu import get_benchmark, parse_name, parse_skeleton
from agcn_cli.sources.pipeline import ConvertConfig
from agcn_cli.sources.recipes import make_sample, select_bodies_mmaction2
from agcn_cli.sources.synth import SynthConfig, generate

runner = CliRunner()
# NTU-25 joints standing in for COCO-17: nose/eyes/ears on the head, then shoulders .. ankles
COCO_FROM_NTU = [3, 3, 3, 3, 3, 4, 8, 5, 9, 6, 10, 12, 16, 13, 17, 14, 18]
# OpenPose-18: nose, neck, right arm, left arm, right leg, left leg, eyes and ears on the head
OPENPOSE_FROM_NTU = [3, 2, 8, 9, 10, 4, 5, 6, 16, 17, 18, 12, 13, 14, 3, 3, 3, 3]


def _project(xyz: np.ndarray, width: float = 1920, height: float = 1080) -> np.ndarray:
    """Camera-space metres (..., 3) -> pixels (..., 2) with a simple pinhole camera."""
    z = np.where(xyz[..., 2] == 0, 1.0, xyz[..., 2])
    return np.stack([width / 2 + 1000 * xyz[..., 0] / z, height / 2 - 1000 * xyz[..., 1] / z], axis=-1)


@pytest.fixture(scope="module")
def ntu(tmp_path_factory):
    """Synthetic NTU files and their pyskl bodies: {name: (path, keypoint (M, T, 25, 3) float16)}."""
    raw = tmp_path_factory.mktemp("raw")
    paths = generate(raw, SynthConfig(actions=(8, 23, 50), samples_per_class=4, min_frames=20, max_frames=30))
    return {p.stem: (p, select_bodies_mmaction2(parse_skeleton(p)).astype(np.float16)) for p in paths}


def _splits(names) -> dict[str, list[str]]:
    split = {k: [] for k in ("xsub_train", "xsub_val", "xview_train", "xview_val")}
    for name in names:
        info = parse_name(name)
        split["xsub_train" if get_benchmark("ntu60-xsub").is_train(info) else "xsub_val"].append(name)
        split["xview_train" if get_benchmark("ntu60-xview").is_train(info) else "xview_val"].append(name)
    return split


def annotations_3d(ntu) -> dict:
    anns = [
        {"frame_dir": name, "label": parse_name(name).label, "total_frames": kp.shape[1], "keypoint": kp}
        for name, (_, kp) in ntu.items()
    ]
    return {"split": _splits(ntu), "annotations": anns}


def annotations_2d(ntu) -> dict:
    rng = np.random.default_rng(1)
    anns = []
    for name, (_, kp) in ntu.items():
        xy = _project(kp.astype(np.float64)[:, :, COCO_FROM_NTU])  # (M, T, 17, 2)
        score = rng.uniform(0.2, 1.0, size=xy.shape[:3])
        score[rng.random(score.shape) < 0.1] = 0  # undetected joints
        anns.append({
            "frame_dir": name, "label": parse_name(name).label, "total_frames": kp.shape[1],
            "keypoint": xy.astype(np.float16), "keypoint_score": score.astype(np.float16),
            "img_shape": (1080, 1920), "original_shape": (1080, 1920),
        })  # fmt: skip
    return {"split": _splits(ntu), "annotations": anns}


def write_pkl(path, data, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)  # mmcv/mmengine write protocol 2
    return path


@pytest.fixture(scope="module")
def pkl_3d(ntu, tmp_path_factory):
    return write_pkl(tmp_path_factory.mktemp("pkl") / "ntu60_3d.pkl", annotations_3d(ntu))


@pytest.fixture(scope="module")
def pkl_2d(ntu, tmp_path_factory):
    return write_pkl(tmp_path_factory.mktemp("pkl") / "ntu60_2d.pkl", annotations_2d(ntu), protocol=5)


# ---- Kinetics-Skeleton -------------------------------------------------------------------------


def kinetics_video(kp: np.ndarray, label: int, rng: np.random.Generator, first_index: int = 1) -> dict:
    """A video JSON from NTU bodies: 18 OpenPose joints divided by the frame size, plus a weak
    third body in some frames (so that the per-frame score ordering matters)."""
    xy = _project(kp.astype(np.float64)[:, :, OPENPOSE_FROM_NTU]) / [1920, 1080]  # (M, T, 18, 2)
    frames = []
    for t in range(kp.shape[1]):
        bodies = []
        for m in range(len(xy)):
            if np.abs(kp[m, t]).sum() == 0:
                continue
            score = rng.uniform(0.1, 1.0, size=18).round(3)
            score[rng.random(18) < 0.1] = 0
            bodies.append({"pose": xy[m, t].round(3).reshape(-1).tolist(), "score": score.tolist()})
        if rng.random() < 0.3:
            bodies.insert(
                0, {"pose": rng.random(36).round(3).tolist(), "score": (rng.random(18) * 0.3).round(3).tolist()}
            )
        frames.append({"frame_index": t + first_index, "skeleton": bodies})
    return {"data": frames, "label": f"class {label}", "label_index": label}


def reference_kinetics(video: dict, window: int = 300) -> np.ndarray:
    """The 2s-AGCN kinetics_gendata steps, loop by loop: (C, window, 18, 2)."""
    data = np.zeros((3, window, 18, 5))
    for frame in video["data"]:
        for m, body in enumerate(frame["skeleton"]):
            if m >= 5:
                break
            data[0, frame["frame_index"], :, m] = body["pose"][0::2]
            data[1, frame["frame_index"], :, m] = body["pose"][1::2]
            data[2, frame["frame_index"], :, m] = body["score"]
    data[0:2] -= 0.5
    data[1] = -data[1]
    data[0][data[2] == 0] = 0
    data[1][data[2] == 0] = 0
    for t in range(window):
        totals = [data[2, t, :, m].sum() for m in range(5)]
        order = sorted(range(5), key=lambda m: -totals[m])
        data[:, t] = data[:, t][:, :, order]
    return data[..., :2]


@pytest.fixture(scope="module")
def kinetics_root(ntu, tmp_path_factory):
    root = tmp_path_factory.mktemp("kinetics_raw")
    rng = np.random.default_rng(2)
    for i, (name, (_, kp)) in enumerate(sorted(ntu.items())):
        split = "train" if i % 3 else "val"
        folder = root / f"kinetics_{split}"
        folder.mkdir(exist_ok=True)
        label = parse_name(name).label
        (folder / f"vid{i:02d}.json").write_text(json.dumps(kinetics_video(kp, label, rng)))
    for split in ("train", "val"):
        folder = root / f"kinetics_{split}"
        labels = {}
        for p in folder.glob("*.json"):
            labels[p.stem] = {
                "has_skeleton": True,
                "label": "x",
                "label_index": json.loads(p.read_text())["label_index"],
            }
        (folder / "novideo.json").write_text(json.dumps({"data": [], "label": "x", "label_index": 0}))
        labels["novideo"] = {"has_skeleton": False, "label": "x", "label_index": 0}
        (root / f"kinetics_{split}_label.json").write_text(json.dumps(labels))
    return root


def _import(source, out, **kw) -> object:
    return convert(ConvertConfig(source, out, **kw))


# ---- pkl: values --------------------------------------------------------------------------------


def test_pkl_3d_equals_the_mmaction2_recipe(ntu, pkl_3d, tmp_path):
    report = _import(pkl_3d, tmp_path / "out", benchmark="ntu60-xsub")
    assert not report.skipped and report.splits["train"].samples + report.splits["test"].samples == len(ntu)
    attrs = check_split_file(tmp_path / "out" / "train.h5")
    assert attrs["source"] == "mmaction2-pkl" and attrs["layout"] == "ntu25" and attrs["normalized"]
    assert attrs["recipe"] == "mmaction2" and attrs["num_classes"] == 60 and attrs["source_split"] == "xsub_train"
    assert attrs["channels"] == "x,y,z" and attrs["benchmark"] == "ntu60-xsub"
    norm = get_layout("ntu25").normalize
    for split in ("train", "test"):
        meta = read_meta(tmp_path / "out" / f"{split}.h5")
        assert list(meta["name"]) == sorted(meta["name"])
        with h5py.File(tmp_path / "out" / f"{split}.h5") as f:
            for i, name in enumerate(meta["name"]):
                info = parse_name(name)
                assert get_benchmark("ntu60-xsub").is_train(info) == (split == "train")
                assert (meta["label"][i], meta["subject"][i], meta["camera"][i]) == (
                    info.label,
                    info.subject,
                    info.camera,
                )
                # importing pyskl's bodies gives what agcn's own mmaction2 recipe stores
                expected, persons = make_sample(parse_skeleton(ntu[name][0]), "mmaction2", norm)
                np.testing.assert_array_equal(read_sample(f, i), expected.transpose(3, 1, 2, 0))
                assert meta["num_persons"][i] == persons


def test_pkl_2d_is_prenormalized_with_scores(ntu, pkl_2d, tmp_path):
    report = _import(pkl_2d, tmp_path / "out")  # default benchmark ntu60-xsub
    assert not report.skipped
    attrs = check_split_file(tmp_path / "out" / "test.h5")
    assert attrs["layout"] == "coco17" and attrs["channels"] == "x,y,score" and attrs["normalized"]
    anns = {a["frame_dir"]: a for a in annotations_2d(ntu)["annotations"]}
    meta = read_meta(tmp_path / "out" / "test.h5")
    with h5py.File(tmp_path / "out" / "test.h5") as f:
        assert f["img_shape"].shape == (len(meta["name"]), 2) and (f["img_shape"][:] == [1080, 1920]).all()
        for i, name in enumerate(meta["name"]):
            a = anns[name]
            # PreNormalize2D as MMAction2 / pyskl write it: in place on the float16 arrays, every joint
            kp = a["keypoint"].copy()  # (M, T, V, 2) float16
            h, w = a["img_shape"]
            kp[..., 0] = (kp[..., 0] - (w / 2)) / (w / 2)
            kp[..., 1] = (kp[..., 1] - (h / 2)) / (h / 2)
            expected = np.concatenate([kp, a["keypoint_score"][..., None]], -1).astype(np.float32)  # (M, T, V, 3)
            x = read_sample(f, i)  # (3, T, 17, 2)
            m = expected.shape[0]
            np.testing.assert_array_equal(x[..., :m], expected.transpose(3, 1, 2, 0))
            unscored = np.broadcast_to(x[2:, :, :, :m] == 0, x[:2, :, :, :m].shape)
            assert unscored.any() and (x[:2, :, :, :m][unscored] != 0).any()  # unscored joints keep their place
            assert np.abs(x[:2]).max() <= 1.5


def test_kinetics_follows_the_reference(ntu, kinetics_root, tmp_path):
    report = _import(kinetics_root, tmp_path / "out")
    assert report.excluded == 2 and not report.skipped  # has_skeleton false, once per split
    assert report.splits["train"].samples == 8 and report.splits["test"].samples == 4
    attrs = check_split_file(tmp_path / "out" / "train.h5")
    assert attrs["layout"] == "openpose18" and attrs["source"] == "kinetics-skeleton" and attrs["num_classes"] == 400
    for split, folder in (("train", "kinetics_train"), ("test", "kinetics_val")):
        meta = read_meta(tmp_path / "out" / f"{split}.h5")
        with h5py.File(tmp_path / "out" / f"{split}.h5") as f:
            for i, name in enumerate(meta["name"]):
                video = json.loads((kinetics_root / folder / f"{name}.json").read_text())
                x = read_sample(f, i)  # (3, T, 18, 2)
                assert x.shape[1] == max(fr["frame_index"] for fr in video["data"]) + 1
                ref = reference_kinetics(video)
                np.testing.assert_allclose(x, ref[:, : x.shape[1]], rtol=0, atol=1e-7)
                assert not ref[:, x.shape[1] :].any() and meta["label"][i] == video["label_index"]


# ---- the rest of the pipeline ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["3d", "2d", "kinetics"])
def test_streams_loader_and_model(kind, pkl_3d, pkl_2d, kinetics_root, tmp_path):
    source = {"3d": pkl_3d, "2d": pkl_2d, "kinetics": kinetics_root}[kind]
    _import(source, tmp_path / "out")
    path = tmp_path / "out" / "train.h5"
    attrs = check_split_file(path)
    layout = get_layout(attrs["layout"])
    report = materialize_streams(path, ["bone", "joint-motion", "bone-motion"])
    assert report["written"] == ["bone", "joint-motion", "bone-motion"]
    with h5py.File(path) as f:
        assert "img_shape" in f if kind == "2d" else "img_shape" not in f  # copied along by streams
        bone = f["bone"][:]  # (F, M, V, C)
        roots = [child for child, parent in layout.bones if child == parent]
        assert not bone[:, :, roots, :2].any()  # the bone of a root joint is zero
    c, v = len(layout.channels), layout.num_joints
    ds = SkeletonDataset(path, "bone", clip_len=12)
    x, y, idx = next(iter(BatchLoader(ds, batch_size=4, seed=0)))
    assert x.shape == (4, c, 12, v, 2) and torch.isfinite(x).all()
    assert ((y >= 0) & (y < attrs["num_classes"])).all()
    test = SkeletonDataset(tmp_path / "out" / "test.h5", "joint", clip_len=12, num_clips=2, test_mode=True)
    assert next(iter(BatchLoader(test, 4)))[0].shape == (min(4, len(test)), 2, c, 12, v, 2)
    model = build_model(ModelConfig(layout=layout.name, num_classes=attrs["num_classes"], in_channels=c)).eval()
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (4, attrs["num_classes"]) and torch.isfinite(logits).all()


def test_worker_processes_write_the_same_files(ntu, tmp_path):
    data = annotations_3d(ntu)
    anns, split = [], {"xsub_train": [], "xsub_val": []}
    for k in range(6):  # 72 samples: enough for the process pool
        for a in data["annotations"]:
            name = f"{a['frame_dir']}-{k}"
            anns.append({**a, "frame_dir": name})
            split["xsub_train" if k % 3 else "xsub_val"].append(name)
    anns[5]["keypoint"] = anns[5]["keypoint"][:, :0]  # one bad sample, skipped by a worker
    path = write_pkl(tmp_path / "many.pkl", {"split": split, "annotations": anns})
    reports = [_import(path, tmp_path / f"w{w}", workers=w) for w in (1, 2)]
    assert reports[0].skipped == reports[1].skipped and len(reports[0].skipped) == 1
    for split_name in ("train", "test"):
        with h5py.File(tmp_path / "w1" / f"{split_name}.h5") as a, h5py.File(tmp_path / "w2" / f"{split_name}.h5") as b:
            assert list(a["name"].asstr()[:]) == list(b["name"].asstr()[:])
            np.testing.assert_array_equal(a["joint"][:], b["joint"][:])


# ---- options --------------------------------------------------------------------------------------


def test_split_names_and_benchmarks(pkl_3d, tmp_path):
    report = _import(pkl_3d, tmp_path / "xview", benchmark="ntu60-xview")
    assert check_split_file(tmp_path / "xview" / "test.h5")["source_split"] == "xview_val"
    assert set(read_meta(tmp_path / "xview" / "test.h5")["camera"]) == {1}
    report = _import(pkl_3d, tmp_path / "one", split_names=("xsub_val",), num_classes=70)
    assert list(report.splits) == ["train"] and not (tmp_path / "one" / "test.h5").exists()
    attrs = check_split_file(tmp_path / "one" / "train.h5")
    assert attrs["benchmark"] == "custom" and attrs["num_classes"] == 70 and attrs["source_split"] == "xsub_val"
    with pytest.raises(AgcnError, match=r"no split 'xset_train'; the file has: xsub_train, xsub_val, xview_train"):
        _import(pkl_3d, tmp_path / "x", benchmark="ntu120-xset")
    with pytest.raises(AgcnError, match="pass --num-classes"):
        _import(pkl_3d, tmp_path / "x", split_names=("xsub_train",))
    with pytest.raises(AgcnError, match="needs raw .skeleton files"):
        _import(pkl_3d, tmp_path / "x", recipe="2s-agcn")
    with pytest.raises(AgcnError, match="already exists; pass --overwrite"):
        _import(pkl_3d, tmp_path / "xview", benchmark="ntu60-xview")
    assert _nothing_in(tmp_path / "x")


def test_kinetics_single_folder(kinetics_root, tmp_path):
    report = _import(kinetics_root / "kinetics_val", tmp_path / "out")  # split and labels from the name
    assert list(report.splits) == ["test"] and report.splits["test"].samples == 4
    labels = tmp_path / "labels.json"
    labels.write_text((kinetics_root / "kinetics_val_label.json").read_text())
    videos = tmp_path / "videos"
    videos.mkdir()
    for p in (kinetics_root / "kinetics_val").glob("*.json"):
        (videos / p.name).write_text(p.read_text())
    with pytest.raises(AgcnError, match="pass --split train or --split test"):
        _import(videos, tmp_path / "o2", labels=labels)
    with pytest.raises(AgcnError, match=r"videos_label.json: no such label file; pass --labels"):
        _import(videos, tmp_path / "o2", split="test")
    report = _import(videos, tmp_path / "o2", labels=labels, split="train", num_classes=60)
    assert report.splits["train"].samples == 4 and check_split_file(tmp_path / "o2" / "train.h5")["num_classes"] == 60
    with pytest.raises(AgcnError, match="--labels and --split are for a single folder"):
        _import(kinetics_root, tmp_path / "o3", split="train")


# ---- bad input ------------------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = write_pkl(tmp_path / "evil.pkl", {"split": {}, "annotations": [_RunsCode(marker)]})
    with pytest.raises(AgcnError, match=r"evil.pkl: refusing to load (posix|os|nt)\.system from the pickle"):
        _import(evil, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()
    custom = write_pkl(tmp_path / "custom.pkl", {"split": {}, "annotations": [ConvertConfig("a", "b")]})
    with pytest.raises(AgcnError, match=r"refusing to load agcn_cli\.[\w.]+\.ConvertConfig"):
        _import(custom, tmp_path / "out")
    result = runner.invoke(app, ["preprocess", str(evil), str(tmp_path / "out")])
    assert result.exit_code == 1 and "refusing to load" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not marker.exists()


class _Reduce:
    """Pickles as `func(*args)`, then `obj.__setstate__(state)` when a state is given."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _crafted_pickles() -> dict[str, bytes]:
    core = getattr(np, "_core", None) or np.core
    overlap = {"a": (np.dtype("O"), 0), "b": (np.dtype("<i8"), 0)}  # an object pointer over raw bytes
    flags = np.dtype([("a", "O"), ("b", "<i8")]).flags
    crafted = _Reduce(np.dtype, ("V16", False, True), (3, "|", None, ("a", "b"), overlap, 16, 8, flags))
    return {
        "eval": b"cbuiltins\neval\n(S'1+1'\ntR.",
        "getattr": b"cbuiltins\ngetattr\n.",
        "dotted name": b"\x80\x04\x8c\x05numpy\x8c\x12ndarray.__reduce__\x93.",
        "codec": b"c_codecs\nencode\n(S'abc'\nS'rot13'\ntR.",
        "ndarray over bytes": pickle.dumps(_Reduce(np.ndarray, ((1,), np.dtype("O"), b"A" * 8)), protocol=2),
        "object array": pickle.dumps(np.array([1, "a"], dtype=object), protocol=2),
        "object scalar": pickle.dumps(_Reduce(core.multiarray.scalar, (np.dtype("O"), b"A" * 8)), protocol=2),
        "crafted dtype": pickle.dumps(crafted, protocol=2),
        "crafted array": pickle.dumps(
            _Reduce(core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), crafted, False, [("x", 7)])),
            protocol=2,
        ),
        "huge": b"cbuiltins\nbytearray\n(I10000000000000000\ntR.",
    }


@pytest.mark.parametrize("case", list(_crafted_pickles()))
def test_crafted_pickles_are_refused_without_crashing(tmp_path, case):
    """Run in a child process: an accepted pointer-over-bytes array would crash the interpreter."""
    path = tmp_path / "evil.pkl"
    path.write_bytes(_crafted_pickles()[case])
    code = (
        "import sys; from agcn_cli.errors import AgcnError; from agcn_cli.sources.pkl import load_annotation_file\n"
        "try:\n    load_annotation_file(sys.argv[1])\nexcept AgcnError as e:\n    print(e); sys.exit(3)\n"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr[-500:]
    assert result.stdout.startswith(f"{path}: ") and len(result.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a pickle at all", "not a readable pickle"),
        (pickle.dumps({"split": {}, "annotations": []})[:-5], "not a readable pickle"),
        (pickle.dumps([{"frame_dir": "a"}]), "expected an MMAction2/pyskl annotation file.*found list"),
        (pickle.dumps({"split": {}}), "found a dict with keys split"),
        (pickle.dumps({"split": ["xsub_train"], "annotations": []}), "'split' must map split names"),
        (pickle.dumps({"split": {"xsub_train": [], "xsub_val": []}, "annotations": {}}), "must be a list of dicts"),
    ],
)
def test_malformed_pickles(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(AgcnError, match=message):
        _import(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _corrupt(ntu, tmp_path):
    data = annotations_3d(ntu)
    anns = {a["frame_dir"]: a for a in data["annotations"]}
    train = sorted(data["split"]["xsub_train"])
    anns[train[0]]["keypoint"] = anns[train[0]]["keypoint"][0]  # rank 3
    anns[train[1]]["keypoint"] = anns[train[1]]["keypoint"][:, :, :24]  # 24 joints
    anns[train[2]]["keypoint"] = anns[train[2]]["keypoint"].copy()
    anns[train[2]]["keypoint"][0, 3, 5, 1] = np.nan
    anns[train[3]]["keypoint"] = anns[train[3]]["keypoint"][:, :0]  # zero frames
    anns[train[3]]["total_frames"] = 0
    anns[train[4]]["total_frames"] += 1
    data["split"]["xsub_train"].append("S001C001P001R001A099")  # no annotation
    data["annotations"].append("not a dict")
    return write_pkl(tmp_path / "bad.pkl", data), train


def test_bad_samples_are_skipped_and_listed(ntu, tmp_path):
    path, train = _corrupt(ntu, tmp_path)
    report = _import(path, tmp_path / "out")
    reasons = dict(report.skipped)
    assert len(reasons) == 7
    assert "expected an array (M, T, V, C)" in reasons[train[0]]
    assert "does not fit layout ntu25" in reasons[train[1]]
    assert "NaN" in reasons[train[2]] and "no frames" in reasons[train[3]]
    assert "total_frames" in reasons[train[4]] and "has no annotation" in reasons["S001C001P001R001A099"]
    assert "not a dict" in reasons["annotation #12"] and all(r.startswith(str(path)) for r in reasons.values())
    assert report.splits["train"].samples == len(train) - 5
    assert train[0] not in set(read_meta(tmp_path / "out" / "train.h5")["name"])
    result = runner.invoke(app, ["preprocess", str(path), str(tmp_path / "cli")])
    skipped_lines = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert result.exit_code == 0 and len(skipped_lines) == 7 and "Traceback" not in result.output


def _nothing_in(folder) -> bool:
    return not folder.exists() or not list(folder.iterdir())  # no file, nor a hidden temporary one


def test_strict_and_fatal_inputs_write_nothing(ntu, tmp_path):
    path, train = _corrupt(ntu, tmp_path)
    result = runner.invoke(app, ["preprocess", str(path), str(tmp_path / "out"), "--strict"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "bad.pkl" in result.stderr
    assert _nothing_in(tmp_path / "out")
    data = annotations_3d(ntu)
    last = max(data["split"]["xsub_val"])  # fails while both files are being written
    next(a for a in data["annotations"] if a["frame_dir"] == last)["keypoint"][0, 0, 0, 0] = np.inf
    with pytest.raises(AgcnError, match=f"nan.pkl: {last}: keypoint has NaN or infinite values"):
        _import(write_pkl(tmp_path / "nan.pkl", data), tmp_path / "out", strict=True)
    assert (tmp_path / "out").is_dir() and _nothing_in(tmp_path / "out")
    data = annotations_3d(ntu)
    data["annotations"][0]["label"] = 60
    with pytest.raises(AgcnError, match=r"label 60 is outside 0..59 \(60 classes\); pass the matching --benchmark"):
        _import(write_pkl(tmp_path / "labels.pkl", data), tmp_path / "out")
    for a in data["annotations"]:
        a["keypoint"] = a["keypoint"][:, :, :20]
    with pytest.raises(AgcnError, match=r"keypoints \(M, T, 20, 3\) match no layout"):
        _import(write_pkl(tmp_path / "joints.pkl", data), tmp_path / "out")
    assert _nothing_in(tmp_path / "out")


def test_bad_kinetics_videos(kinetics_root, tmp_path):
    root = tmp_path / "k"
    (root / "kinetics_train").mkdir(parents=True)
    good = json.loads(next((kinetics_root / "kinetics_train").glob("vid*.json")).read_text())
    t = next(i for i, frame in enumerate(good["data"]) if frame["skeleton"])
    nan = json.loads(json.dumps(good))
    nan["data"][t]["skeleton"][0]["pose"][3] = float("nan")
    short = json.loads(json.dumps(good))
    short["data"][t]["skeleton"][0]["pose"] = short["data"][t]["skeleton"][0]["pose"][:30]
    late = json.loads(json.dumps(good))
    late["data"][-1]["frame_index"] = 300
    videos = {"good": good, "nan": nan, "short": short, "late": late, "empty": {**good, "data": []},
              "relabel": {**good, "label_index": 5}, "unlisted": good}  # fmt: skip
    for name, video in videos.items():
        (root / "kinetics_train" / f"{name}.json").write_text(json.dumps(video))
    (root / "kinetics_train" / "broken.json").write_text("{not json")
    labels = {n: {"has_skeleton": True, "label": "x", "label_index": good["label_index"]} for n in videos}
    labels["broken"] = labels["good"]
    del labels["unlisted"]
    (root / "kinetics_train_label.json").write_text(json.dumps(labels))
    report = _import(root, tmp_path / "out")
    reasons = dict(report.skipped)
    assert report.splits["train"].samples == 1 and len(reasons) == 7
    assert "NaN" in reasons["nan.json"] and "pose has 30 values" in reasons["short.json"]
    assert "frame_index 300 is outside" in reasons["late.json"] and "no frames" in reasons["empty.json"]
    assert "differs from the label file" in reasons["relabel.json"] and "not JSON" in reasons["broken.json"]
    assert "is not in kinetics_train_label.json" in reasons["unlisted.json"]
    (root / "kinetics_train_label.json").write_text(json.dumps(["not", "a", "dict"]))
    result = runner.invoke(app, ["preprocess", str(root), str(tmp_path / "o2")])
    assert result.exit_code == 1 and "expected {video_id: {has_skeleton, label, label_index}}" in result.stderr
    assert _nothing_in(tmp_path / "o2")


def test_video_sample_orders_bodies_per_frame():
    def body(value: float, score: float) -> dict:
        return {"pose": [value] * 36, "score": [score] * 18}

    frames = [
        {"frame_index": 0, "skeleton": [body(0.1, 0.2), body(0.9, 0.8)]},
        {"frame_index": 1, "skeleton": [body(0.3, 0.9), body(0.7, 0.0)]},
    ]
    x, persons = video_sample({"data": frames})  # (2, T, V, C)
    assert persons == 2 and x.shape == (2, 2, 18, 3)
    np.testing.assert_allclose(x[:, 0, 0], [[0.4, -0.4, 0.8], [-0.4, 0.4, 0.2]], atol=1e-6)
    np.testing.assert_allclose(x[:, 1, 0], [[-0.2, 0.2, 0.9], [0.0, 0.0, 0.0]], atol=1e-6)  # score 0: x, y zero


def test_cli_detects_pkl_and_kinetics(pkl_3d, kinetics_root, tmp_path):
    result = runner.invoke(app, ["preprocess", str(pkl_3d), str(tmp_path / "a"), "--benchmark", "ntu60-xsub", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["splits"]["train"]["samples"] == 8
    result = runner.invoke(app, ["preprocess", str(pkl_3d), str(tmp_path / "b"), "--split-names", "nope"])
    assert result.exit_code == 1 and "no split 'nope'; the file has: xsub_train, xsub_val" in result.stderr
    result = runner.invoke(app, ["preprocess", str(kinetics_root), str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "k" / "train.h5").exists() and (tmp_path / "k" / "test.h5").exists()
    result = runner.invoke(app, ["info", str(tmp_path / "k" / "test.h5"), "--json"])
    assert json.loads(result.stdout)["layout"] == "openpose18"
    result = runner.invoke(app, ["preprocess", str(kinetics_root), str(tmp_path / "c"), "--benchmark", "ntu60-xsub"])
    assert result.exit_code == 1 and "Kinetics-Skeleton has its own train/val" in result.stderr
    result = runner.invoke(app, ["preprocess", str(tmp_path / "missing.pkl"), str(tmp_path / "d")])
    assert result.exit_code == 1 and "missing.pkl: no such file" in result.stderr


@pytest.mark.slow
def test_pkl_through_train_eval_and_fuse(pkl_2d, tmp_path):
    """An imported 2D annotation file trains, evaluates and fuses like NTU .skeleton data."""
    result = runner.invoke(app, ["preprocess", str(pkl_2d), str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    args = ["--out", str(run), "--epochs", "1", "--clip-len", "8", "--batch-size", "8", "--device", "cpu"]
    result = runner.invoke(app, ["train", str(tmp_path / "data"), *args, "--no-tensorboard", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["epoch"] == 1 and (run / "last.pt").exists()
    scores = tmp_path / "joint.h5"
    test = str(tmp_path / "data" / "test.h5")
    result = runner.invoke(app, ["eval", str(run / "last.pt"), test, "--clips", "2", "--out", str(scores), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] == 4
    result = runner.invoke(app, ["fuse", str(scores), str(scores), "--weights", "2,1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fused"]["samples"] == 4
