"""`agcn extract`: BlazePose on clips of a real person (matplotlib's grace_hopper.jpg, tests/videos.py),
the annotation file, class folders, the cache, bad videos, and the whole path to `agcn predict`."""

import json
import pickle
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from agcn_cli.cli import app
from tests.helpers import one_error_line

cv2 = pytest.importorskip("cv2")
pytest.importorskip("ai_edge_litert")
from agcn_cli.pose.models import MODELS_ENV, pose_model_bytes  # noqa: E402
from tests.videos import clip, write_video  # noqa: E402

try:
    pose_model_bytes()
except Exception as e:  # noqa: BLE001
    pytest.skip(f"no BlazePose models: {e}", allow_module_level=True)

NOSE, L_EYE, R_EYE, L_SH, R_SH, L_HIP = 0, 1, 2, 5, 6, 11
W = 640


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def poses(tmp_path_factory):
    """BlazePose over clips: still, shifted right 4 px a frame, mirrored, smaller, two blank frames."""
    from agcn_cli.pose.blazepose import BlazePose
    from agcn_cli.pose.poses import blazepose_video
    from agcn_cli.pose.video import probe_video
    from agcn_cli.skeleton.layouts import get_layout

    folder = tmp_path_factory.mktemp("clips")
    estimator, layout = BlazePose(1), get_layout("coco17")
    kinds = {"still": {}, "shift": {"step": 4}, "mirror": {"mirror": True}, "small": {"scale": 0.6},
             "blank": {"blank": (3, 4)}}  # fmt: skip
    return {
        k: blazepose_video(probe_video(clip(folder / f"{k}.mp4", **kw)), estimator, layout) for k, kw in kinds.items()
    }


def test_one_person_in_every_frame_with_the_face_above_the_shoulders(poses):
    p = poses["still"]
    assert p.keypoint.shape == (1, 12, 17, 2) and p.keypoint_score.shape == (1, 12, 17)
    assert p.frames_with_people == 12
    kp, score = p.keypoint[0], p.keypoint_score[0]
    assert (score[:, [NOSE, L_EYE, R_EYE, L_SH, R_SH]] > 0.9).all()  # visible: the face and shoulders
    assert (score[:, L_HIP] < 0.5).all()  # a portrait: the hips are out of the picture
    assert (kp[:, NOSE, 1] < kp[:, L_SH, 1] - 50).all() and (kp[:, NOSE, 1] < kp[:, R_SH, 1] - 50).all()
    assert (kp[:, [L_EYE, R_EYE], 1] < kp[:, [NOSE], 1]).all()
    # facing the camera: her left is on the image's right
    assert (kp[:, L_SH, 0] > kp[:, NOSE, 0] + 50).all() and (kp[:, R_SH, 0] < kp[:, NOSE, 0] - 50).all()
    # the nose is at the centre of the face: between the eyes, near the canvas centre
    assert (np.abs(kp[:, NOSE, 0] - W / 2) < 20).all()


def test_keypoints_follow_the_shift(poses):
    still, shift = poses["still"].keypoint[0], poses["shift"].keypoint[0]
    moved = shift[:, [NOSE, L_SH, R_SH], 0] - still[:, [NOSE, L_SH, R_SH], 0]  # (T, 3)
    slopes = np.polyfit(np.arange(12), moved, 1)[0]  # pixels a frame: 4 drawn, the smoothing lags a little
    assert (np.abs(slopes - 4) < 0.8).all(), slopes
    assert np.abs(moved - 4 * np.arange(12)[:, None]).max() < 12, moved
    assert np.abs(shift[:, NOSE, 1] - still[:, NOSE, 1]).max() < 6  # no vertical motion


def test_mirrored_clip_mirrors_the_keypoints_with_sides_kept_anatomical(poses):
    still, mirror = poses["still"].keypoint[0], poses["mirror"].keypoint[0]
    # a mirrored person facing the camera is still a person facing the camera: her left on the image's right,
    # at the mirror image of where the original's right shoulder was
    assert (mirror[:, L_SH, 0] > mirror[:, R_SH, 0]).all()
    span = np.median(still[:, L_SH, 0] - still[:, R_SH, 0])  # ~240 px; the model is not exactly symmetric
    assert np.abs(mirror[:, L_SH, 0] - (W - still[:, R_SH, 0])).max() < 0.1 * span
    assert np.abs(mirror[:, R_SH, 0] - (W - still[:, L_SH, 0])).max() < 0.1 * span
    assert np.abs(mirror[:, NOSE, 0] - (W - still[:, NOSE, 0])).max() < 0.1 * span
    assert np.abs(mirror[:, NOSE, 1] - still[:, NOSE, 1]).max() < 12


def test_a_smaller_person_has_a_narrower_shoulder_span(poses):
    span = lambda p: np.median(p.keypoint[0, :, L_SH, 0] - p.keypoint[0, :, R_SH, 0])  # noqa: E731
    assert 0.5 < span(poses["small"]) / span(poses["still"]) < 0.7  # drawn at 0.6 of the size


def test_frames_without_anybody_keep_their_place_with_zeros(poses):
    p = poses["blank"]
    assert p.frames == 12 and p.frames_with_people == 10
    assert (p.keypoint[0, 3:5] == 0).all() and (p.keypoint_score[0, 3:5] == 0).all()
    assert (p.keypoint_score[0, [2, 5], NOSE] > 0.9).all()  # found again after the gap
    assert np.abs(p.keypoint[0, 5, NOSE] - poses["still"].keypoint[0, 5, NOSE]).max() < 8


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    """clips/left/*.mp4 move left, clips/right/*.mp4 move right, and a file that is no video."""
    root = tmp_path_factory.mktemp("videos") / "clips"
    for i in range(3):
        (root / "left").mkdir(parents=True, exist_ok=True)
        (root / "right").mkdir(exist_ok=True)
        clip(root / "left" / f"l{i}.mp4", frames=10, size=(240, 320), step=-(3 + i))
        clip(root / "right" / f"r{i}.mp4", frames=10, size=(240, 320), step=3 + i)
    (root / "right" / "notes.txt").write_text("not a video")
    return root


def test_class_folders_become_a_labelled_annotation_file(classes, tmp_path):
    out = tmp_path / "mine.pkl"
    r = run("extract", classes, "--out", out, "--val-fraction", "0.34", "--json")
    assert r.exit_code == 0, r.output
    data = pickle.loads(out.read_bytes())
    assert data["label_names"] == ["left", "right"]
    assert (tmp_path / "mine_label_map.txt").read_text() == "left\nright\n"
    anns = {a["frame_dir"]: a for a in data["annotations"]}
    assert sorted(anns) == [f"left/l{i}" for i in range(3)] + [f"right/r{i}" for i in range(3)]
    assert sorted(data["split"]["train"] + data["split"]["val"]) == sorted(anns)
    for name, a in anns.items():
        assert a["label"] == (0 if name.startswith("left") else 1)
        assert a["total_frames"] == 10 and a["img_shape"] == (240, 320) and a["original_shape"] == (240, 320)
        assert a["keypoint"].shape == (1, 10, 17, 2) and a["keypoint"].dtype == np.float32
        assert a["keypoint_score"].shape == (1, 10, 17)
        dx = a["keypoint"][0, -1, NOSE, 0] - a["keypoint"][0, 0, NOSE, 0]
        assert (dx < -15) if name.startswith("left") else (dx > 15)
    assert "not a video" in r.stderr and "notes.txt" in r.stderr  # said, and left out


def test_a_rerun_extracts_only_new_videos_and_a_bad_one_fails_alone(classes, tmp_path):
    out = tmp_path / "mine.pkl"
    assert run("extract", classes, "--out", out).exit_code == 0
    first = out.read_bytes()
    extra = classes.parent / "more"
    (extra / "right").mkdir(parents=True)
    (extra / "left").mkdir()
    for f in ("left/l0.mp4", "right/r0.mp4"):
        (extra / f).write_bytes((classes / f).read_bytes())
    clip(extra / "right" / "new.mp4", frames=8, size=(240, 320), step=2)
    (extra / "left" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing")
    r = run("extract", extra, "--out", tmp_path / "more.pkl", "--cache", f"{out}.cache", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    cached = {i["name"]: i["cached"] for i in summary["inputs"]}
    assert cached == {"left/l0": True, "right/new": False, "right/r0": True}
    assert [f["file"] for f in summary["failed"]] == [str(extra / "left" / "broken.mp4")]
    assert "broken.mp4: not a video" in r.stderr
    # the first file is untouched; an existing output needs --overwrite
    assert out.read_bytes() == first
    assert "--overwrite" in one_error_line(["extract", str(classes), "--out", str(out)])


def test_bad_videos_are_one_line_each_and_nothing_is_written_when_all_fail(tmp_path):
    full = clip(tmp_path / "full.avi", frames=30, size=(120, 160))
    (tmp_path / "trunc.avi").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    (tmp_path / "text.mp4").write_text("hello")
    writer = cv2.VideoWriter(str(tmp_path / "zero.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    writer.release()
    write_video(tmp_path / "nobody.mp4", [np.full((120, 160, 3), 90, np.uint8)] * 6)
    r = run(
        "extract", tmp_path / "text.mp4", tmp_path / "zero.mp4", tmp_path / "nobody.mp4", "--out", tmp_path / "o.pkl"
    )
    assert r.exit_code == 1 and not (tmp_path / "o.pkl").exists()
    assert "error: " + str(tmp_path / "o.pkl") + ": not written, none of the 3 inputs could be extracted" in r.stderr
    failed = [line for line in r.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 3, r.stderr
    assert any("nobody.mp4: nobody found in any of its 6 frames" in line for line in failed)
    assert any("zero.mp4: not a video" in line for line in failed)
    r = run("extract", tmp_path / "trunc.avi", "--out", tmp_path / "t.pkl", "--json")
    assert r.exit_code == 0, r.output
    (item,) = json.loads(r.stdout)["inputs"]
    assert 0 < item["frames"] < 30 and "truncated" in item["notes"][0] and "trunc.avi: truncated" in r.stderr


def test_without_the_video_extra_extract_says_what_to_install(tmp_path, monkeypatch):
    video = clip(tmp_path / "a.mp4", frames=3, size=(120, 160))
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    line = one_error_line(["extract", str(video), "--out", str(tmp_path / "a.pkl")])
    assert "pip install 'agcn[video]'" in line and "--no-deps mediapipe==0.10.21" in line


def test_other_pose_weights_are_refused(tmp_path, monkeypatch):
    video = clip(tmp_path / "a.mp4", frames=3, size=(120, 160))
    models = tmp_path / "models"
    models.mkdir()
    (models / "pose_detection.tflite").write_bytes(b"not the model")
    (models / "pose_landmark_full.tflite").write_bytes(b"nor this")
    monkeypatch.setenv(MODELS_ENV, str(models))
    pose_model_bytes.cache_clear()
    try:
        line = one_error_line(["extract", str(video), "--out", str(tmp_path / "a.pkl")])
    finally:
        pose_model_bytes.cache_clear()
    assert "pose_detection.tflite: not the BlazePose model of mediapipe 0.10.21" in line


@pytest.mark.slow
def test_videos_to_a_trained_model_to_predict(classes, tmp_path):
    """The whole path: class folders -> extract -> preprocess -> train (a few steps) -> predict on a video."""
    pkl, data, run_dir = tmp_path / "mine.pkl", tmp_path / "data", tmp_path / "run"
    assert run("extract", classes, "--out", pkl, "--val-fraction", "0.34").exit_code == 0
    r = run("preprocess", pkl, data)
    assert r.exit_code == 0, r.output
    r = run("train", data, "--out", run_dir, "--clip-len", "8", "--epochs", "2", "--batch-size", "2",
            "--val-every", "1", "--no-tensorboard", "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    video = classes / "right" / "r1.mp4"
    r = run("predict", run_dir / "last.pt", video, "--json")
    assert r.exit_code == 0, r.output
    (result,) = json.loads(r.stdout)["predictions"]
    assert result["name"] == "r1" and result["frames"] == 10 and result["label"] is None
    assert {c["name"] for c in result["top"]} == {"left", "right"}
    assert abs(sum(c["probability"] for c in result["top"]) - 1) < 1e-4
    # the class folders say the truth, in the checkpoint's label space (the same class names)
    r = run("predict", run_dir / "last.pt", classes, "--json")
    assert r.exit_code == 0, r.output
    results = {p["name"]: p for p in json.loads(r.stdout)["predictions"]}
    assert sorted(results) == [f"left/l{i}" for i in range(3)] + [f"right/r{i}" for i in range(3)]
    assert [results[n]["label_name"] for n in sorted(results)] == ["left"] * 3 + ["right"] * 3
    # the video classified on the way equals the same video through extract + preprocess's conversion
    assert results["right/r1"]["top"] == result["top"]


def test_an_enormous_frame_and_an_unreadable_class_folder_are_one_line_each(tmp_path, monkeypatch):
    import agcn_cli.pose.video as video

    root = tmp_path / "clips"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    clip(root / "a" / "ok.mp4", frames=4, size=(120, 160))
    clip(root / "a" / "big.mp4", frames=2, size=(240, 320))
    monkeypatch.setattr(video, "MAX_PIXELS", 200 * 200)  # as an 8K+ frame would be refused
    real_iterdir = type(root).iterdir

    def iterdir(self):
        if self.name == "b":
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    monkeypatch.setattr(type(root), "iterdir", iterdir)
    r = run("extract", root, "--out", tmp_path / "o.pkl", "--workers", "1", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert [i["name"] for i in summary["inputs"]] == ["a/ok"]
    (failed,) = summary["failed"]
    assert "big.mp4: 320x240 frames, more than 8K" in failed["error"]
    assert any(s["file"].endswith("/b") and "Permission denied" in s["reason"] for s in summary["skipped"])


def test_variable_frame_rate_and_early_stops_are_noted():
    from agcn_cli.pose.video import Decoded, VideoInfo

    info = VideoInfo(None, 640, 480, 30.0, 10)
    steady = Decoded(frames=10, times_ms=[33.3 * k for k in range(10)])
    assert steady.problems(info) == []
    varying = Decoded(frames=10, times_ms=[0, 33, 66, 133, 166, 300, 333, 366, 400, 433])
    (note,) = varying.problems(info)
    assert note.startswith("variable frame rate (33.0-134.0 ms between frames)")
    short = Decoded(frames=5, times_ms=[33.3 * k for k in range(5)])
    assert short.problems(info) == ["truncated: decoded 5 of the 10 frames it announces"]


def test_two_extractions_into_one_file_do_not_mix(tmp_path):
    from agcn_cli.io.atomic import locked

    video = clip(tmp_path / "a.mp4", frames=3, size=(120, 160))
    out = tmp_path / "o.pkl"
    with locked(out, wait=False, holder="agcn extract"):
        line = one_error_line(["extract", str(video), "--out", str(out)])
    assert "in use by another agcn extract" in line and not out.exists()


def test_watch_reads_a_video_frame_by_frame_as_it_decodes(tmp_path):
    import torch

    from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
    from agcn_cli.models.agcn import ModelConfig, build_model
    from agcn_cli.skeleton.layouts import get_layout

    layout = get_layout("coco17")
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=3, layout="coco17", in_channels=3, layout_spec=layout.spec()))
    ckpt = tmp_path / "coco.pt"
    save_checkpoint(ckpt, model, DataInfo(layout="coco17", channels="x,y,score", clip_len=8, layout_spec=layout.spec()),
                    epoch=1)  # fmt: skip
    video = clip(tmp_path / "walk.mp4", frames=16, size=(240, 320), step=3, blank=(14, 15))
    r = run("watch", ckpt, video, "--stride", "4", "--json")
    assert r.exit_code == 0, r.output
    evs = [json.loads(line) for line in r.stdout.splitlines()]
    windows = [e for e in evs if e["type"] == "window"]
    # the third window ends in frames 14-15, which hold nobody: the person is in 6 of its 8 frames, scored
    assert [(w["start"], w["end"]) for w in windows] == [(0, 7), (4, 11), (8, 15)]
    assert {w["sequence"] for w in windows} == {"walk"} and {w["person"] for w in windows} == {0}
    segments = [e for e in evs if e["type"] == "segment"]
    assert segments and segments[0]["start"] == 0 and segments[-1]["end"] == 13
