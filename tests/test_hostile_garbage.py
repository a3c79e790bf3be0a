"""Issue 15, garbage in: inputs that used to exit 0 with silent wrong results, or made agcn do
unbounded work from a small file. Each is now one line naming the file and the problem."""

import json
import pickle
import time
import warnings

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.errors import AgcnError
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
from agcn_cli.io.scores import Scores, read_scores, write_scores
from agcn_cli.models.agcn import ModelConfig, build_model
from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.sources.ntu import SkeletonError, parse_name, parse_skeleton
from agcn_cli.sources.safe_pickle import load_pickle
from tests import helpers
from tests.helpers import DeclaredArray, random_body, write_skeleton, write_split


def one_error_line(args: list[str]) -> str:
    return helpers.one_error_line(args, notes=True)


def body_frames(seed: int = 0, frames: int = 20, body_id: int = 72057594037931101) -> list:
    body = random_body(np.random.default_rng(seed), frames)
    return [[(body_id, body[t])] for t in range(frames)]


# ---- 1. NTU file names and body ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("S001C001P001R001A000.skeleton", "action 0 is outside 1..120"),  # was stored with label -1
        ("S001C001P001R001A121.skeleton", "action 121 is outside 1..120"),
        ("S000C001P001R001A001.skeleton", "setup 0"),
        ("S001C004P001R001A001.skeleton", "camera 4 is outside 1..3"),
        ("S001C001P000R001A001.skeleton", "performer 0"),
        ("S001C001P001R003A001.skeleton", "replication 3 is outside 1..2"),
        ("S001C001P001R001A\u0661\u0662\u0663.skeleton", "does not follow the NTU convention"),  # Arabic-Indic digits
        ("S001C001P001R001A001\n.skeleton", "does not follow the NTU convention"),  # `$` took the newline
        ("S001C001P001R001A001\n", "does not follow the NTU convention"),
    ],
)
def test_ntu_names_outside_the_convention(name, problem):
    with pytest.raises(SkeletonError, match=problem) as e:
        parse_name(name)
    assert "\n" not in str(e.value)


def test_ntu_name_fields_still_parse():
    info = parse_name("S032C003P106R002A120.skeleton")
    assert (info.setup, info.camera, info.subject, info.replication, info.label) == (32, 3, 106, 2, 119)


def test_strict_preprocess_refuses_action_zero(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_skeleton(raw / "S001C001P001R001A001.skeleton", body_frames(0))
    write_skeleton(raw / "S001C001P001R001A000.skeleton", body_frames(1))
    line = one_error_line(["preprocess", str(raw), str(tmp_path / "out"), "--strict"])
    assert "S001C001P001R001A000.skeleton: action 0 is outside 1..120" in line
    assert not (tmp_path / "out" / "train.h5").exists()


def test_body_id_beyond_int64_is_one_line(tmp_path):
    path = write_skeleton(tmp_path / "S001C001P001R001A001.skeleton", body_frames(0, frames=3, body_id=2**64))
    with pytest.raises(SkeletonError, match=r"S001C001P001R001A001.skeleton: line 3: body id 18446744073709551616 "):
        parse_skeleton(path)


# ---- 2. coordinates beyond float16 (the mmaction2 recipe stores float16) ---------------------------


def huge_sample(raw, value: float = 1e6):
    frames = body_frames(2)
    frames[3][0][1][5, 0] = value  # finite, but beyond float16's 65504
    return write_skeleton(raw / "S001C001P001R001A002.skeleton", frames)


@pytest.mark.parametrize("value", [1e6, -7e4])
def test_coordinate_beyond_float16_is_refused(tmp_path, value):
    raw = tmp_path / "raw"
    raw.mkdir()
    huge_sample(raw, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning either
        line = one_error_line(["preprocess", str(raw), str(tmp_path / "out"), "--strict"])
    assert "S001C001P001R001A002.skeleton: coordinate out of float16 range" in line


def test_predict_refuses_a_coordinate_beyond_float16(tmp_path, ckpt):
    raw = tmp_path / "raw"
    raw.mkdir()
    path = huge_sample(raw)
    r = CliRunner().invoke(app, ["predict", str(ckpt), str(path)])
    assert r.exit_code == 1, r.output
    assert "nan" not in r.output.lower()
    assert "coordinate out of float16 range" in r.output and path.name in r.output
    assert "Traceback" not in r.output


def test_the_2sagcn_recipe_keeps_float32_range(tmp_path):
    from agcn_cli.sources.recipes import make_sample

    sk = parse_skeleton(huge_sample(tmp_path))
    sample, _ = make_sample(sk, "2s-agcn", get_layout("ntu25").normalize)
    assert np.isfinite(sample).all()
    with pytest.raises(SkeletonError, match="coordinate out of float16 range"):
        make_sample(sk, "mmaction2", {})


# ---- 3. NaN in split files and score files ----------------------------------------------------------


def nan_split(path, sample: int = 2):
    write_split(path, lengths=(9, 12, 10, 11))
    with h5py.File(path, "r+") as f:
        start = int(f["offset"][sample])
        f["joint"][start + 3] = np.nan
    return path


def test_eval_refuses_nan_joints(tmp_path, ckpt):
    test = nan_split(tmp_path / "test.h5")
    line = one_error_line(["eval", str(ckpt), str(test), "--out", str(tmp_path / "s.h5"), "--clips", "1"])
    assert f"{test}: sample 'S001C001P001R001A003' holds NaN or infinite values" in line
    assert not (tmp_path / "s.h5").exists()


def test_eval_refuses_non_finite_model_output(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=3))
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.startswith("fc")).fill_(float("inf"))
    save_checkpoint(tmp_path / "bad.pt", model, DataInfo(clip_len=8), epoch=1)
    test = write_split(tmp_path / "test.h5", lengths=(9, 12))
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "bad.pt"), str(test), "--clips", "1"])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.output.count("error:") == 1 and "accuracy" not in r.output.lower(), r.output
    assert "S001C001P001R001A001" in r.output and str(test) in r.output


def score_file(path, prob):
    n = len(prob)
    names = [f"S001C001P001R001A{i + 1:03d}" for i in range(n)]
    write_scores(path, Scores(names, np.arange(n) % 3, prob, np.log(prob), {"modality": "joint"}))
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fuse_refuses_non_finite_score_files(tmp_path, bad):
    prob = np.full((4, 3), 1 / 3, np.float32)
    good = score_file(tmp_path / "joint.h5", prob)
    prob = prob.copy()
    prob[1, 2] = bad
    poisoned = score_file(tmp_path / "bone.h5", prob)
    line = one_error_line(["fuse", str(good), str(poisoned), "--out", str(tmp_path / "f.h5")])
    assert f"{poisoned}: prob scores of sample 'S001C001P001R001A002' are NaN or infinite" in line
    assert not (tmp_path / "f.h5").exists()
    with pytest.raises(AgcnError, match="S001C001P001R001A002"):
        read_scores(poisoned)


# ---- 4. every file bad: no empty splits, the old output kept -----------------------------------------


def test_a_folder_of_bad_files_writes_nothing(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    write_skeleton(raw / "S001C001P001R001A001.skeleton", body_frames(0))  # P001: train
    write_skeleton(raw / "S001C001P003R001A001.skeleton", body_frames(1))  # P003: test
    r = CliRunner().invoke(app, ["preprocess", str(raw), str(out)])
    assert r.exit_code == 0, r.output
    before = {p.name: p.read_bytes() for p in out.glob("*.h5")}
    assert set(before) == {"train.h5", "test.h5"}
    for path in raw.iterdir():
        path.write_text("garbage\n")
    line = one_error_line(["preprocess", str(raw), str(out), "--overwrite"])
    assert "train.h5: no sample for the train split (2 skipped, the first: " in line
    assert "line 1: expected the number of frames" in line
    assert {p.name: p.read_bytes() for p in out.glob("*.h5")} == before  # the good output is kept
    assert sorted(p.name for p in out.iterdir()) == ["test.h5", "train.h5"]  # no temporary left


def test_a_split_whose_files_are_all_bad_is_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_skeleton(raw / "S001C001P001R001A001.skeleton", body_frames(0))  # train
    (raw / "S001C001P003R001A001.skeleton").write_text("3\n")  # the only test file: truncated
    line = one_error_line(["preprocess", str(raw), str(tmp_path / "out")])
    assert "test.h5: no sample for the test split (1 skipped, the first: " in line
    assert "S001C001P003R001A001.skeleton: truncated at line 2" in line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    # a split no input belongs to (a subset of the data) is written empty, as before
    (raw / "S001C001P003R001A001.skeleton").unlink()
    r = CliRunner().invoke(app, ["preprocess", str(raw), str(tmp_path / "out")])
    assert r.exit_code == 0, r.output


# ---- 5. Kinetics files sharing a video id -------------------------------------------------------


def kinetics_folder(root, files: dict[str, int]):
    """A single `kinetics_val` folder whose files hold a one-person pose; `files`: name -> label."""
    folder = root / "kinetics_val"
    folder.mkdir()
    rng = np.random.default_rng(0)
    labels = {}
    for name, label in files.items():
        frames = [
            {"frame_index": t + 1, "skeleton": [{"pose": rng.uniform(0, 1, 36).tolist(), "score": [0.9] * 18}]}
            for t in range(5)
        ]
        (folder / name).write_text(json.dumps({"data": frames, "label": "x", "label_index": label}))
        labels[name.split(".")[0]] = {"has_skeleton": True, "label": "x", "label_index": label}
    (root / "kinetics_val_label.json").write_text(json.dumps(labels))
    return folder


def test_kinetics_duplicate_video_id_is_skipped(tmp_path):
    folder = kinetics_folder(tmp_path, {"aaa.json": 1, "aaa.v2.json": 1, "bbb.json": 2})
    r = CliRunner().invoke(app, ["preprocess", str(folder), str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "out" / "test.h5") as f:
        assert list(f["name"].asstr()[:]) == ["aaa", "bbb"]  # one sample per name
    assert "video id aaa repeats aaa.json" in r.output
    line = one_error_line(["preprocess", str(folder), str(tmp_path / "strict"), "--strict"])
    assert f"{folder / 'aaa.v2.json'}: video id aaa repeats aaa.json" in line


# ---- 6. unbounded work from small input ---------------------------------------------------------------


def annotation_file(path, keypoint, total_frames: int) -> object:
    ann = {"frame_dir": "S001C001P001R001A001", "label": 0, "total_frames": total_frames, "keypoint": keypoint}
    path.write_bytes(pickle.dumps({"split": {"xsub_train": ["S001C001P001R001A001"]}, "annotations": [ann]}, 2))
    return path


def test_a_small_pickle_declaring_a_huge_array_is_refused(tmp_path):
    pkl = annotation_file(tmp_path / "a.pkl", DeclaredArray((1, 10**6, 25, 3)), 10**6)
    assert pkl.stat().st_size < 400
    t0 = time.perf_counter()
    line = one_error_line(
        ["preprocess", str(pkl), str(tmp_path / "out"), "--split-names", "xsub_train", "--num-classes", "3"]
    )
    assert time.perf_counter() - t0 < 5
    assert f"{pkl}: not a readable pickle" in line and "shape (1, 1000000, 25, 3) but no data" in line


def test_bytes_from_a_size_are_refused(tmp_path):
    path = tmp_path / "b.pkl"
    # protocol 0: GLOBAL builtins.bytearray, then a call with the int 10**10
    path.write_bytes(b"c__builtin__\nbytearray\n(I10000000000\ntR.")
    with pytest.raises(AgcnError, match=r"bytearray\(10000000000\) from a size is not allowed"):
        load_pickle(path)


def test_frames_beyond_the_limit_are_skipped(tmp_path):
    from agcn_cli.sources import pkl as pkl_module

    pkl = annotation_file(tmp_path / "a.pkl", np.zeros((1, 40, 25, 3), np.float32), 40)
    saved = pkl_module.PKL_MAX_FRAMES
    pkl_module.PKL_MAX_FRAMES = 30
    try:
        line = one_error_line(
            [
                "preprocess",
                str(pkl),
                str(tmp_path / "out"),
                "--split-names",
                "xsub_train",
                "--num-classes",
                "3",
                "--strict",
            ]
        )
    finally:
        pkl_module.PKL_MAX_FRAMES = saved
    assert "S001C001P001R001A001" in line and "more than 1000 persons or 30 frames" in line


def test_fuse_search_grid_is_bounded(tmp_path):
    rng = np.random.default_rng(0)
    files = [score_file(tmp_path / f"s{i}.h5", rng.dirichlet(np.ones(3), size=4).astype(np.float32)) for i in range(9)]
    t0 = time.perf_counter()
    line = one_error_line(["fuse", *map(str, files), "--search"])
    assert time.perf_counter() - t0 < 5
    assert "tries 1,953,125 weight combinations, more than 100,000; give --grid with fewer values" in line
    r = CliRunner().invoke(app, ["fuse", *map(str, files), "--search", "--grid", "0,1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["search"]["tried"] == 511  # 2**9 less the all-zero one


# ---- 7. a symlink loop names the link, not the folder -------------------------------------------------


def test_a_symlink_loop_is_one_skipped_file(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    write_skeleton(raw / "S001C001P001R001A001.skeleton", body_frames(0))
    write_skeleton(raw / "S001C001P003R001A001.skeleton", body_frames(1))
    loop = raw / "S001C001P001R001A002.skeleton"
    loop.symlink_to(raw / "S001C001P001R001A003.skeleton")
    (raw / "S001C001P001R001A003.skeleton").symlink_to(loop)
    r = CliRunner().invoke(app, ["preprocess", str(raw), str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert f"{loop}: cannot read" in r.output and "Traceback" not in r.output
    with h5py.File(out / "train.h5") as f:
        assert list(f["name"].asstr()[:]) == ["S001C001P001R001A001"]
    line = one_error_line(["preprocess", str(raw), str(tmp_path / "strict"), "--strict"])
    assert f"{loop}: cannot read (Too many levels of symbolic links)" in line


def test_centring_that_overflows_float16_is_refused(tmp_path):
    from agcn_cli.sources.recipes import make_sample

    frames = body_frames(3)
    for bodies in frames:
        bodies[0][1][1] = (-6e4, 0, 3)  # the origin joint, within float16
        bodies[0][1][7] = (6e4, 0, 3)  # 120,000 away from it: inf once centred in float16
    sk = parse_skeleton(write_skeleton(tmp_path / "S001C001P001R001A001.skeleton", frames))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SkeletonError, match="normalisation gives inf/NaN"):
            make_sample(sk, "mmaction2", get_layout("ntu25").normalize)
