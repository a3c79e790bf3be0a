"""`agcn extract` of pose estimators' per-frame output (OpenPose folders, MMPose files): several people
tracked into an annotation file that `agcn preprocess` reads, and the bad inputs beside good ones."""

import json
import pickle

import numpy as np
from typer.testing import CliRunner

from agcn_cli.cli import app
from tests.helpers import one_error_line


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def body25(x: float, y: float) -> list[float]:
    """A BODY_25 person standing at (x, y): joint j a little below the last, confidence 0.9."""
    return [v for j in range(25) for v in (x + 3 * (j % 5), y + 8 * j, 0.9)]


def write_frames(folder, people_per_frame: list[list[tuple[float, float]]], skip: tuple[int, ...] = ()) -> None:
    folder.mkdir(parents=True)
    for t, people in enumerate(people_per_frame):
        if t in skip:
            continue
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": body25(x, y)} for x, y in people]}
        (folder / f"scene_{t:012d}_keypoints.json").write_text(json.dumps(doc))


def crossing(frames: int = 40) -> list[list[tuple[float, float]]]:
    """Two people walking past each other (A left to right, B right to left, B a little lower), listed
    in a different order every other frame, and a third who is there for 6 frames only."""
    out = []
    for t in range(frames):
        a, b = (100 + 10 * t, 200.0), (500 - 10 * t, 230.0)
        people = [a, b] if t % 2 else [b, a]
        if 10 <= t < 16:
            people.append((900.0, 100.0))
        out.append(people)
    return out


def test_an_openpose_folder_becomes_tracks_in_mmaction2_order(tmp_path):
    write_frames(tmp_path / "scene", crossing(), skip=(20, 21))
    r = run("extract", tmp_path / "scene", "--out", tmp_path / "scene.pkl", "--json")
    assert r.exit_code == 0, r.output
    (item,) = json.loads(r.stdout)["inputs"]
    assert item["people"] == 2 and item["frames"] == 40  # the third, seen for 6 frames, is past --max-people 2
    assert "2 frames missing from the numbering" in r.stderr
    data = pickle.loads((tmp_path / "scene.pkl").read_bytes())
    assert data["split"] == {"unlabelled": ["scene"]}
    (ann,) = data["annotations"]
    kp, score = ann["keypoint"], ann["keypoint_score"]
    assert kp.shape == (2, 40, 17, 2) and score.shape == (2, 40, 17)
    present = score.max(-1) > 0
    assert present[:, 20:22].sum() == 0 and present.sum(1).tolist() == [38, 38]
    # each track is one walker all the way: x of the nose moves 10 px a frame one way or the other
    nose_x = kp[:, :, 0, 0]
    frames = np.flatnonzero(present[0])
    steps = np.diff(nose_x[:, frames], axis=1) / np.diff(frames)
    assert {round(float(s)) for s in np.unique(steps[0].round())} | {
        round(float(s)) for s in np.unique(steps[1].round())
    } == {10, -10}
    assert (np.abs(steps[0]) == 10).all() and (np.sign(steps[0]) == np.sign(steps[0, 0])).all()
    assert (np.sign(steps[1]) == -np.sign(steps[0, 0])).all()
    # img_shape: the smallest frame holding every keypoint (OpenPose files do not say)
    assert ann["img_shape"][0] > kp[..., 1].max() and ann["img_shape"][1] > kp[..., 0].max()


def test_three_people_kept_with_max_people_and_read_by_preprocess(tmp_path):
    write_frames(tmp_path / "scene", crossing())
    r = run("extract", tmp_path / "scene", "--out", tmp_path / "s.pkl", "--max-people", "3", "--json")
    assert r.exit_code == 0, r.output
    (ann,) = pickle.loads((tmp_path / "s.pkl").read_bytes())["annotations"]
    assert ann["keypoint"].shape[0] == 3
    assert (ann["keypoint_score"][2].max(-1) > 0).sum() == 6  # the short-lived third comes last
    # unlabelled: preprocess says so and points to predict
    line = one_error_line(["preprocess", str(tmp_path / "s.pkl"), str(tmp_path / "d"), "--split", "test"])
    assert "unlabelled" in line or "no label" in line


def test_a_malformed_frame_fails_its_input_only(tmp_path):
    write_frames(tmp_path / "good", crossing(10))
    write_frames(tmp_path / "bad", crossing(10))
    (tmp_path / "bad" / "scene_000000000004_keypoints.json").write_text('{"version": 1.3, "people": [{"pose_k')
    r = run("extract", tmp_path / "good", tmp_path / "bad", "--out", tmp_path / "o.pkl", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert [i["name"] for i in summary["inputs"]] == ["good"]
    (failed,) = summary["failed"]
    assert "scene_000000000004_keypoints.json" in failed["error"] and failed["file"] == str(tmp_path / "bad")
    assert [a["frame_dir"] for a in pickle.loads((tmp_path / "o.pkl").read_bytes())["annotations"]] == ["good"]


def test_preprocess_of_a_video_or_openpose_folder_points_to_extract(tmp_path):
    write_frames(tmp_path / "scene", crossing(4))
    line = one_error_line(["preprocess", str(tmp_path / "scene"), str(tmp_path / "d")])
    assert "agcn extract" in line and str(tmp_path / "scene") in line


def test_extract_refuses_bad_options_and_outputs(tmp_path):
    write_frames(tmp_path / "scene", crossing(4))
    assert "NAME.pkl" in one_error_line(["extract", str(tmp_path / "scene"), "--out", str(tmp_path / "o.h5")])
    assert "no such file or folder" in one_error_line(
        ["extract", str(tmp_path / "nope"), "--out", str(tmp_path / "o.pkl")]
    )
    (tmp_path / "empty").mkdir()
    assert "no video" in one_error_line(["extract", str(tmp_path / "empty"), "--out", str(tmp_path / "o.pkl")])
