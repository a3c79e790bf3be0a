"""`agcn preprocess` of the formats people already have on disk: the ST-GCN / 2s-AGCN gendata
arrays (`train_data_joint.npy` + `train_label.pkl`, streams beside them), and annotation `.pkl`
files holding one split (a single annotation dict, a bare list of them).

Every input is made here, tiny, with np.save and pickle.dump in the layouts the reference scripts
write (`data_gen/ntu_gendata.py`, `kinetics_gendata.py`, `gen_bone_data.py`, `gen_motion_data.py`).
"""

import json
import pickle
from datetime import date

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.engine.data import BatchLoader, SkeletonDataset
from agcn_cli.io.splitfile import check_split_file, read_meta
from agcn_cli.sources.formats import source_format
from tests.helpers import one_error_line, random_body
from tests.reference.preprocess import _pre_normalization

runner = CliRunner()
STREAM_FILES = {"bone": "bone", "joint-motion": "joint_motion", "bone-motion": "bone_motion"}


def _ntu_name(subject: int, action: int, camera: int = 1) -> str:
    return f"S001C{camera:03d}P{subject:03d}R001A{action:03d}.skeleton"


def _save_part(folder, part, data, names, labels, suffix="_data_joint", streams=()):
    """One part as the gendata scripts write it: the array, `(names, labels)` and stream arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{part}{suffix}.npy", data)
    with open(folder / f"{part}_label.pkl", "wb") as f:
        pickle.dump((list(names), list(labels)), f)
    rng = np.random.default_rng(len(names))
    for tail in streams:
        np.save(folder / f"{part}_data_{tail}.npy", rng.normal(size=data.shape).astype(np.float32))


def normalised_ntu(n: int, rng: np.random.Generator, frames: int = 300) -> np.ndarray:
    """(N, 3, T, 25, 2) as 2s-AGCN's ntu_gendata leaves it: person 0's centre joint at the
    origin in every frame, all frames filled; sample 1 holds one person."""
    x = rng.normal(size=(n, 3, frames, 25, 2)).astype(np.float32)
    x[:, :, :, 1, 0] = 0
    x[1, ..., 1] = 0
    return x


def kinetics_arrays(lengths, rng: np.random.Generator) -> np.ndarray:
    """(N, 3, 300, 18, 2) as kinetics_gendata writes it: x, y, score, zero past each video."""
    x = np.zeros((len(lengths), 3, 300, 18, 2), np.float32)
    for i, t in enumerate(lengths):
        x[i, :, :t] = rng.uniform(-0.5, 0.5, size=(3, t, 18, 2))
        x[i, 2, :t] = rng.uniform(0.1, 1.0, size=(t, 18, 2))
    x[0, :, 3] = 0  # an empty frame inside the video stays
    return x


def raw_ntu(specs, rng: np.random.Generator) -> np.ndarray:
    """(N, 3, 300, 25, 2) as ST-GCN's ntu_gendata writes it: camera coordinates, zero-padded;
    `specs[i]` = (frames of person 0, frames of person 1)."""
    x = np.zeros((len(specs), 3, 300, 25, 2), np.float32)
    for i, lengths in enumerate(specs):
        for m, t in enumerate(lengths):
            x[i, :, :t, :, m] = random_body(rng, t, offset=(0.3 * m, 0.0, 3.0)).transpose(2, 0, 1)
    return x


@pytest.fixture(scope="module")
def agcn_folder(tmp_path_factory):
    """2s-AGCN's data/ntu/xsub/: train (subjects 1, 2) and val (subject 3) arrays with all streams."""
    folder = tmp_path_factory.mktemp("gendata") / "xsub"
    rng = np.random.default_rng(0)
    train = [_ntu_name(s, a) for s, a in ((2, 5), (1, 9), (1, 2), (2, 60))]  # not in name order
    val = [_ntu_name(3, a) for a in (7, 1, 33)]
    for part, names in (("train", train), ("val", val)):
        labels = [int(n[17:20]) - 1 for n in names]
        _save_part(folder, part, normalised_ntu(len(names), rng), names, labels, streams=STREAM_FILES.values())
    return folder


def _preprocess(*args) -> object:
    result = runner.invoke(app, ["preprocess", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _rows(split_file, npy_names) -> list[int]:
    """For each sample of the split file, in file order, its row in the gendata arrays."""
    stems = [n.split(".")[0] for n in npy_names]
    return [stems.index(n) for n in read_meta(split_file)["name"]]


def _stored(split_file, stream="joint") -> list[np.ndarray]:
    """Each sample's frames (T, M, V, C) of a stream, in file order."""
    with h5py.File(split_file) as f:
        offset, frames, data = f["offset"][:], f["num_frames"][:], f[stream][:]
    return [data[o : o + t] for o, t in zip(offset, frames, strict=True)]


def _window(split_file, stream="joint") -> np.ndarray:
    """The full 300-frame window of every sample (N, C, 300, V, M), in file order."""
    ds = SkeletonDataset(split_file, stream, test_mode=True, window=300)
    (x, _, idx), *_ = BatchLoader(ds, len(ds), shuffle=False)
    return x.numpy()[np.argsort(idx.numpy())]


# ---- gendata arrays: values -----------------------------------------------------------------------


def test_2sagcn_ntu_arrays_are_stored_as_they_are(agcn_folder, tmp_path):
    report = _preprocess(agcn_folder, tmp_path / "out", "--benchmark", "ntu60-xsub")
    assert report["splits"]["train"]["samples"] == 4 and report["splits"]["test"]["samples"] == 3
    for part, split in (("train", "train"), ("val", "test")):
        path = tmp_path / "out" / f"{split}.h5"
        attrs = check_split_file(path)
        assert (attrs["recipe"], attrs["source"], attrs["layout"]) == ("2s-agcn", "stgcn-npy", "ntu25")
        assert (attrs["benchmark"], attrs["num_classes"], attrs["split"]) == ("ntu60-xsub", 60, split)
        assert attrs["source_file"] == f"{part}_data_joint.npy"
        names, labels = pickle.loads((agcn_folder / f"{part}_label.pkl").read_bytes())
        meta = read_meta(path)
        assert list(meta["name"]) == sorted(n.removesuffix(".skeleton") for n in names)  # name order
        rows = _rows(path, names)
        assert list(meta["label"]) == [labels[r] for r in rows]
        assert list(meta["subject"]) == [int(names[r][9:12]) for r in rows] and set(meta["setup"]) == {1}
        assert set(meta["num_frames"]) == {300}  # the real length is lost in the padded array
        joint = np.load(agcn_folder / f"{part}_data_joint.npy")
        for r, frames in zip(rows, _stored(path), strict=True):
            np.testing.assert_array_equal(frames, joint[r].transpose(1, 3, 2, 0))  # (C,T,V,M) -> (T,M,V,C)
        for stream, tail in STREAM_FILES.items():
            data = np.load(agcn_folder / f"{part}_data_{tail}.npy")
            for r, frames in zip(rows, _stored(path, stream), strict=True):
                np.testing.assert_array_equal(frames, data[r].transpose(1, 3, 2, 0))
        with h5py.File(path) as f:
            one_person = rows.index(1) if 1 in rows else None
            periods = f["pad_period"][:]
            assert set(periods[:, 0]) == {300} and not f["pad_centre"][:].any()
            if one_person is not None:
                assert periods[one_person, 1] == 0 and meta["num_persons"][one_person] == 1
        np.testing.assert_array_equal(_window(path), joint[rows])  # the full window is the array itself


def test_stgcn_raw_ntu_arrays_get_2sagcn_normalisation(tmp_path):
    folder = tmp_path / "stgcn"
    specs = [(40, 40), (35, 12), (28, 0)]  # two persons, a short second person, one person
    names = [_ntu_name(1, a) for a in (4, 2, 9)]
    raw = raw_ntu(specs, np.random.default_rng(3))
    _save_part(folder, "train", raw, names, [3, 1, 8], suffix="_data")  # ST-GCN's name
    assert source_format(folder) == "npy"
    _preprocess(folder, tmp_path / "out", "--num-classes", "10")
    path = tmp_path / "out" / "train.h5"
    attrs = check_split_file(path)
    assert (attrs["benchmark"], attrs["num_classes"], attrs["recipe"]) == ("custom", 10, "2s-agcn")
    rows = _rows(path, names)
    assert list(read_meta(path)["num_frames"]) == [specs[r][0] for r in rows]  # trailing zero frames cut
    reference = _pre_normalization(raw.copy())  # 2s-AGCN's pre_normalization of the padded arrays
    np.testing.assert_allclose(_window(path), reference[rows], atol=1e-4, rtol=0)


def test_kinetics_arrays_are_cut_to_their_frames(tmp_path):
    folder = tmp_path / "kinetics"
    lengths = [17, 300, 5]
    joint = kinetics_arrays(lengths, np.random.default_rng(4))
    names = ["vid_b.json", "vid_a.json", "vid_c.json"]
    _save_part(folder, "val", joint, names, [399, 0, 12], streams=["bone"])
    _preprocess(folder, tmp_path / "out")
    path = tmp_path / "out" / "test.h5"
    attrs = check_split_file(path)
    assert attrs["source"] == attrs["benchmark"] == "kinetics-skeleton" and attrs["num_classes"] == 400
    assert attrs["layout"] == "openpose18" and not (tmp_path / "out" / "train.h5").exists()
    meta = read_meta(path)
    assert list(meta["name"]) == ["vid_a", "vid_b", "vid_c"] and list(meta["label"]) == [0, 399, 12]
    rows = _rows(path, names)
    assert list(meta["num_frames"]) == [lengths[r] for r in rows]
    bone = np.load(folder / "val_data_bone.npy")
    for r, frames, bones in zip(rows, _stored(path), _stored(path, "bone"), strict=True):
        np.testing.assert_array_equal(frames, joint[r, :, : lengths[r]].transpose(1, 3, 2, 0))
        np.testing.assert_array_equal(bones, bone[r, :, : lengths[r]].transpose(1, 3, 2, 0))
    np.testing.assert_array_equal(_window(path), joint[rows])  # zero past the video, as the array


def test_one_array_file_imports_its_part(agcn_folder, tmp_path):
    _preprocess(agcn_folder / "val_data_joint.npy", tmp_path / "out", "--benchmark", "ntu60-xsub", "--format", "npy")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.h5"]
    assert len(read_meta(tmp_path / "out" / "test.h5")["name"]) == 3
    line = one_error_line(["preprocess", str(agcn_folder / "val_label.pkl"), str(tmp_path / "o2")])
    assert (
        f"the label file of ST-GCN/2s-AGCN .npy arrays; import the folder holding them: agcn preprocess {agcn_folder}"
        in line
    )


# ---- gendata arrays: bad input --------------------------------------------------------------------


def _bad_folder(tmp_path, case: str):
    """A 2s-AGCN folder of 3 train samples, broken as `case` says; (folder, extra CLI args, message)."""
    folder = tmp_path / "bad"
    rng = np.random.default_rng(5)
    names = [_ntu_name(1, a) for a in (1, 2, 3)]
    data, labels, args = normalised_ntu(3, rng), [0, 1, 2], ["--benchmark", "ntu60-xsub"]
    streams = ["bone"] if case == "bone shape" else []
    _save_part(folder, "train", data, names, labels, streams=streams)
    joint, label_file = folder / "train_data_joint.npy", folder / "train_label.pkl"
    if case == "joints":
        np.save(joint, data[:, :, :, :20])
        return folder, args, f"{joint}: shape (3, 3, 300, 20, 2), expected (N, 3, T, 25, M)"
    if case == "label count":
        label_file.write_bytes(pickle.dumps((names[:2], labels[:2])))
        return folder, args, f"{label_file}: 2 samples, but train_data_joint.npy holds 3"
    if case == "not a pair":
        label_file.write_bytes(pickle.dumps({"names": names, "labels": labels}))
        return folder, args, f"{label_file}: expected a pickle of (names, labels), two lists"
    if case == "unsafe label pickle":
        label_file.write_bytes(pickle.dumps((names, [date(2020, 1, 1)] * 3)))
        return folder, args, f"{label_file}: refusing to load datetime.date from the pickle"
    if case == "no label file":
        label_file.unlink()
        return folder, args, f"{label_file}: no such file"
    if case == "label range":
        label_file.write_bytes(pickle.dumps((names, [0, 1, 60])))
        return folder, args, "label 60 is outside 0..59 (60 classes)"
    if case == "bone shape":
        np.save(folder / "train_data_bone.npy", data[:, :, :299])
        return folder, args, f"{folder / 'train_data_bone.npy'}: shape (3, 3, 299, 25, 2), but train_data_joint.npy"
    if case == "truncated":
        joint.write_bytes(joint.read_bytes()[:-1000])
        return folder, args, f"{joint}: not a readable .npy array"
    if case == "nan":
        data[2, 0, 7, 3, 0] = np.nan
        np.save(joint, data)
        return folder, [*args, "--strict"], f"{joint}: {names[2][:-9]}: joint has NaN or infinite values"
    if case == "benchmark":
        return folder, ["--benchmark", "ntu60-xview"], "belongs to the test split of ntu60-xview"
    if case == "class count":
        return folder, [], "NTU arrays: pass --benchmark"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["joints", "label count", "not a pair", "unsafe label pickle", "no label file", "label range", "bone shape",
     "truncated", "nan", "benchmark", "class count"],
)  # fmt: skip
def test_bad_gendata_inputs_fail_in_one_line(tmp_path, case):
    folder, args, message = _bad_folder(tmp_path, case)
    line = one_error_line(["preprocess", str(folder), str(tmp_path / "out"), *args])
    assert message in line, line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing, not even a temp


def test_kinetics_arrays_refuse_a_benchmark(tmp_path):
    folder = tmp_path / "k"
    _save_part(folder, "train", kinetics_arrays([4, 6], np.random.default_rng(6)), ["a.json", "b.json"], [1, 2])
    line = one_error_line(["preprocess", str(folder), str(tmp_path / "out"), "--benchmark", "ntu60-xsub"])
    assert "--benchmark is for NTU arrays" in line


# ---- annotation files of one split --------------------------------------------------------------


def _annotation(name: str | None, label, rng: np.random.Generator, frames: int = 20) -> dict:
    """A pyskl-style 3D annotation (NTU-25 bodies)."""
    kp = random_body(rng, frames)[None].astype(np.float32)  # (1, T, 25, 3)
    ann = {"keypoint": kp, "total_frames": frames, "img_shape": (1080, 1920)}
    if name is not None:
        ann["frame_dir"] = name
    if label is not None:
        ann["label"] = label
    return ann


def test_single_annotation_and_bare_list(tmp_path):
    rng = np.random.default_rng(7)
    anns = [_annotation(n, label, rng) for n, label in (("clip_b", 3), ("clip_a", 1), ("clip_c", 0))]
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps(anns, protocol=2))  # MMAction2 0.x: a bare list
    _preprocess(listed, tmp_path / "list", "--split", "train", "--num-classes", "5")
    attrs = check_split_file(tmp_path / "list" / "train.h5")
    assert attrs["benchmark"] == "custom" and attrs["num_classes"] == 5 and "source_split" not in attrs
    meta = read_meta(tmp_path / "list" / "train.h5")
    assert list(meta["name"]) == ["clip_a", "clip_b", "clip_c"] and list(meta["label"]) == [1, 3, 0]
    # the same samples through MMAction2's full layout are stored the same
    full = tmp_path / "full.pkl"
    full.write_bytes(pickle.dumps({"split": {"train": [a["frame_dir"] for a in anns]}, "annotations": anns}))
    _preprocess(full, tmp_path / "full", "--split-names", "train", "--num-classes", "5")
    for a, b in zip(_stored(tmp_path / "list" / "train.h5"), _stored(tmp_path / "full" / "train.h5"), strict=True):
        np.testing.assert_array_equal(a, b)

    single = tmp_path / "S002C003P004R001A010.pkl"  # pyskl's per-video output: one dict, no frame_dir here
    single.write_bytes(pickle.dumps(_annotation(None, 9, rng)))
    _preprocess(single, tmp_path / "one", "--split", "test", "--benchmark", "ntu60-xsub")
    meta = read_meta(tmp_path / "one" / "test.h5")
    assert list(meta["name"]) == ["S002C003P004R001A010"] and list(meta["label"]) == [9]
    assert (meta["setup"][0], meta["camera"][0], meta["subject"][0]) == (2, 3, 4)  # from the NTU name
    assert check_split_file(tmp_path / "one" / "test.h5")["num_classes"] == 60


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "found list of 2 annotation dicts; pass --split train or --split test"),
        (["--split", "train"], "with --split and no --benchmark, pass --num-classes"),
        (["--split", "val", "--num-classes", "3"], "--split 'val': choose one of: train, test"),
        (["--split", "train", "--split-names", "a", "--num-classes", "3"], "name its split with --split"),
    ],
)
def test_one_split_pkl_options(tmp_path, args, message):
    rng = np.random.default_rng(8)
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([_annotation("a", 0, rng), _annotation("b", 1, rng)]))
    assert message in one_error_line(["preprocess", str(path), str(tmp_path / "out"), *args])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("label", [None, -1])
def test_unlabelled_samples_are_refused(tmp_path, label):
    rng = np.random.default_rng(9)
    path = tmp_path / "video.pkl"
    path.write_bytes(pickle.dumps(_annotation("video", label, rng)))
    line = one_error_line(["preprocess", str(path), str(tmp_path / "out"), "--split", "test", "--num-classes", "3"])
    found = "no label" if label is None else "label -1"
    assert f"{path}: video: {found} (1 of 1 samples unlabelled)" in line and "agcn predict" in line
    assert not (tmp_path / "out").exists()


def test_full_layout_refuses_split_option(tmp_path):
    rng = np.random.default_rng(10)
    path = tmp_path / "full.pkl"
    path.write_bytes(pickle.dumps({"split": {"xsub_train": ["a"]}, "annotations": [_annotation("a", 0, rng)]}))
    line = one_error_line(["preprocess", str(path), str(tmp_path / "out"), "--split", "train"])
    assert "holds splits xsub_train; pick them with --split-names" in line
