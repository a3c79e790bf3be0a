"""pose/keypoint_json.py: OpenPose --write_json folders and MMPose prediction files, joints to COCO-17."""

import json

import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.pose.keypoint_json import is_keypoint_input, read_keypoints
from agcn_cli.skeleton.layouts import get_layout

# COCO-17 joint k is this joint of the source, by name (nose, eyes, ears, shoulders, ... ankles)
BODY25_TO_COCO17 = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
COCO18_TO_COCO17 = [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]


def openpose_numbers(joints: int, offset: float) -> list[float]:
    """Source joint j at (offset + 10 j, 100 + j) with confidence 0.5 + j / 100."""
    return [v for j in range(joints) for v in (offset + 10 * j, 100 + j, 0.5 + j / 100)]


def person(numbers: list, pid: int = -1) -> dict:
    return {"person_id": [pid], "pose_keypoints_2d": numbers, "face_keypoints_2d": [], "hand_left_keypoints_2d": []}


def write_openpose(folder, frames: dict[int, list[dict]], video: str = "clip") -> None:
    folder.mkdir(exist_ok=True)
    for t, people in frames.items():
        (folder / f"{video}_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))


def instance(offset: float, joints: int = 17, **extra) -> dict:
    """An MMPose instance: joint j at (offset + 10 j, 100 + j), score 0.5 + j / 100."""
    return {
        "keypoints": [[offset + 10 * j, 100 + j] for j in range(joints)],
        "keypoint_scores": [0.5 + j / 100 for j in range(joints)],
        "bbox": [[offset, 90, offset + 200, 300]],
        "bbox_score": 0.9,
    } | extra


def assert_person(frame, p: int, offset: float, index: list[int]) -> None:
    np.testing.assert_allclose(frame.keypoints[p, :, 0], offset + 10 * np.array(index))
    np.testing.assert_allclose(frame.keypoints[p, :, 1], 100 + np.array(index))
    np.testing.assert_allclose(frame.scores[p], 0.5 + np.array(index) / 100, rtol=1e-6)


def test_openpose_body25_folder(tmp_path):
    zeroed = openpose_numbers(25, 0)
    zeroed[4 * 3 : 4 * 3 + 3] = [0, 0, 0]  # BODY_25 joint 4, the right wrist, not found
    write_openpose(tmp_path / "op", {t: [person(zeroed), person(openpose_numbers(25, 1000))] for t in range(3)})
    seq = read_keypoints(tmp_path / "op")
    assert (len(seq.frames), seq.source, seq.missing_frames, seq.fps) == (3, "openpose-body25", 0, None)
    frame = seq.frames[2]
    assert frame.keypoints.shape == (2, 17, 2) and frame.keypoints.dtype == np.float32 and frame.ids is None
    assert_person(frame, 1, 1000, BODY25_TO_COCO17)
    # COCO-17 joint 10 (right wrist) kept where OpenPose found nothing, with score 0
    assert frame.keypoints[0, 10].tolist() == [0, 0] and frame.scores[0, 10] == 0
    keep = [k for k in range(17) if k != 10]
    np.testing.assert_allclose(frame.keypoints[0, keep, 0], 10 * np.array(BODY25_TO_COCO17)[keep])
    # another target layout: OpenPose-18 keeps the neck (BODY_25 joint 1) and drops the mid-hip and feet
    body25_to_coco18 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    assert_person(read_keypoints(tmp_path / "op", get_layout("openpose18")).frames[0], 1, 1000, body25_to_coco18)
    with pytest.raises(AgcnError, match="frame 0: keypoint source 'coco17' has no joint 'neck'"):
        (tmp_path / "coco.json").write_text(json.dumps([[instance(0)]]))
        read_keypoints(tmp_path / "coco.json", get_layout("openpose18"))


def test_openpose_coco18_gaps_and_ids(tmp_path):
    frames = {t: [person(openpose_numbers(18, 0), pid=3), person(openpose_numbers(18, 500), pid=5)] for t in (0, 1, 2)}
    frames |= {5: [person(openpose_numbers(18, 7))], 6: []}  # frames 3 and 4 have no file; 6 has nobody
    write_openpose(tmp_path / "op", frames)
    seq = read_keypoints(tmp_path / "op")
    assert (len(seq.frames), seq.source, seq.missing_frames) == (7, "openpose-coco18", 2)
    assert [f.count for f in seq.frames] == [2, 2, 2, 0, 0, 1, 0]
    assert seq.frames[3].keypoints.shape == (0, 17, 2)
    assert seq.frames[1].ids.tolist() == [3, 5] and seq.frames[5].ids is None
    assert_person(seq.frames[1], 1, 500, COCO18_TO_COCO17)
    assert_person(seq.frames[5], 0, 7, COCO18_TO_COCO17)


def test_json_files_named_by_frame_number(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in (1, 2):
        (folder / f"{t}.json").write_text(json.dumps({"people": [person(openpose_numbers(25, t))]}))
    (folder / "notes.json").write_text("{}")  # not named by a frame number: not read
    seq = read_keypoints(folder)
    assert [f.count for f in seq.frames] == [0, 1, 1] and seq.missing_frames == 1
    assert_person(seq.frames[2], 0, 2, BODY25_TO_COCO17)


def test_mmpose_per_image_folder(tmp_path):
    folder = tmp_path / "preds"
    folder.mkdir()
    (folder / "img_000001.json").write_text(json.dumps([instance(0, track_id=1), instance(300, track_id=4)]))
    (folder / "img_000002.json").write_text("[]")
    seq = read_keypoints(folder)
    assert (seq.source, [f.count for f in seq.frames], seq.missing_frames) == ("coco17", [0, 2, 0], 1)
    assert_person(seq.frames[1], 1, 300, list(range(17)))
    assert is_keypoint_input(folder)


BAD_FRAMES = [
    (b"{not json", "clip_000000000000_keypoints.json: not JSON (Expecting property name"),
    (json.dumps({"people": [person(openpose_numbers(25, 0))]})[:-30].encode(), "truncated JSON"),
    (b'{"people": [{"pose_keypoints_2d": [1.', "truncated JSON (it stops at line 1, mid-value)"),
    (b'{"people": [1, ]}', "not JSON (Expecting value at line 1, column 16)"),
    (b"", "empty file, not JSON"),
    (b"\x80\x81 binary", "not JSON (not UTF-8 text)"),
    (b'{"people": {}}', "frame 0: no 'people' list"),
    (b'{"people": [{"pose_keypoints_2d": 3}]}', "frame 0: person 0 has no 'pose_keypoints_2d' list"),
    (json.dumps({"people": [person([1.0] * 51)]}).encode(), "frame 0: person 0: pose_keypoints_2d has 51 numbers"),
    (json.dumps({"people": [person(["1"] * 75)]}).encode(), "pose_keypoints_2d holds something other than numbers"),
    (json.dumps({"people": [person([float("nan")] + [1.0] * 74)]}).encode(), "person 0, joint 0 (nose): x nan is"),
    (json.dumps({"people": [person([1.0] * 74 + [1.5])]}).encode(), "joint 24 (right_heel): score 1.5 is outside"),
    (json.dumps({"people": [person([1.0] * 74 + [-0.2])]}).encode(), "score -0.2 is outside [0, 1]"),
    (json.dumps({"people": [person([1.0] * 75, pid="a")]}).encode(), "person 0: person_id 'a' is not an integer"),
    (json.dumps({"people": [person([1.0] * 75, 3), person([1.0] * 75)]}).encode(), "some people have an id"),
    (json.dumps({"people": [person([1.0] * 75, 3), person([1.0] * 75, 3)]}).encode(), "id 3 given to two people"),
    (json.dumps({"people": [person([1.0] * 75), person([1.0] * 54)]}).encode(), "mixed OpenPose models in one frame"),
    (json.dumps({"people": [person([1.0] * 75)] * 1001}).encode(), "1001 people, more than 1000 in one frame"),
]


@pytest.mark.parametrize("content, fragment", BAD_FRAMES)
def test_bad_openpose_files(tmp_path, content, fragment):
    (tmp_path / "clip_000000000000_keypoints.json").write_bytes(content)
    with pytest.raises(AgcnError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        read_keypoints(tmp_path)


def test_bad_openpose_folders(tmp_path):
    with pytest.raises(AgcnError, match="no keypoint files"):
        read_keypoints(tmp_path)
    write_openpose(tmp_path / "mixed", {0: [person([1.0] * 75)], 1: [person([1.0] * 54)]})
    with pytest.raises(AgcnError, match="frame 1: openpose-coco18 joints, but .*frame 0 has openpose-body25"):
        read_keypoints(tmp_path / "mixed")
    write_openpose(tmp_path / "two", {1: [person([1.0] * 75)]}, video="a")
    write_openpose(tmp_path / "two", {1: [person([1.0] * 75)]}, video="b")
    with pytest.raises(AgcnError, match="frame 1 twice"):
        read_keypoints(tmp_path / "two")
    write_openpose(tmp_path / "long", {100_000: []})
    with pytest.raises(AgcnError, match="frame 100000 is beyond 100000 frames"):
        read_keypoints(tmp_path / "long")
    with pytest.raises(AgcnError, match="no such file or folder"):
        read_keypoints(tmp_path / "nothing")


def test_mmpose_topdown_demo_file(tmp_path):
    doc = {
        "meta_info": {"dataset_name": "coco", "keypoint_id2name": {str(k): f"j{k}" for k in range(17)}},
        "instance_info": [
            {"frame_id": 1, "instances": [instance(0, track_id=7), instance(400, track_id=2)]},
            {"frame_id": 2, "instances": []},
            {"frame_id": 4, "instances": [instance(50, track_id=7)]},
        ],
    }
    (tmp_path / "results_clip.json").write_text(json.dumps(doc, indent="\t"))
    seq = read_keypoints(tmp_path / "results_clip.json")
    assert (seq.source, [f.count for f in seq.frames], seq.missing_frames) == ("coco17", [2, 0, 0, 1], 1)
    assert seq.frames[0].ids.tolist() == [7, 2]  # frame_id 1 is frame 0
    assert_person(seq.frames[0], 1, 400, list(range(17)))
    assert_person(seq.frames[3], 0, 50, list(range(17)))


def test_mmpose_inferencer_and_plain_lists(tmp_path):
    video = [{"frame_id": 0, "instances": [instance(10)]}, {"frame_id": 1, "instances": [instance(20), instance(30)]}]
    (tmp_path / "video.json").write_text(json.dumps(video))
    seq = read_keypoints(tmp_path / "video.json")
    assert [f.count for f in seq.frames] == [1, 2] and seq.frames[0].ids is None
    assert_person(seq.frames[0], 0, 10, list(range(17)))
    (tmp_path / "frames.json").write_text(json.dumps([[instance(5, id=1)], [], [instance(6, id=1)]]))
    seq = read_keypoints(tmp_path / "frames.json")
    assert [f.count for f in seq.frames] == [1, 0, 1] and seq.frames[2].ids.tolist() == [1]
    assert_person(seq.frames[2], 0, 6, list(range(17)))
    rtm = instance(0)
    rtm["keypoint_scores"][3] = 1.1  # RTMPose's scores pass 1: clipped
    (tmp_path / "image.json").write_text(json.dumps([rtm]))
    seq = read_keypoints(tmp_path / "image.json")
    assert len(seq.frames) == 1 and seq.frames[0].scores[0, 3] == 1.0 and seq.frames[0].scores[0, 4] == np.float32(0.54)


def mmpose_error(tmp_path, doc, fragment: str) -> None:
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(AgcnError, match=fragment):
        read_keypoints(tmp_path / "p.json")


def test_bad_mmpose_files(tmp_path):
    mmpose_error(tmp_path, [[instance(0, joints=133)]], r"frame 0: instances have 133 \(COCO-WholeBody\) keypoints")
    mmpose_error(tmp_path, [[instance(0), instance(0, joints=26)]], r"have 17, 26 \(Halpe-26\) keypoints")
    bad = instance(0)
    bad["keypoint_scores"][0] = -0.5
    mmpose_error(tmp_path, [[bad]], r"person 0, joint 0 \(nose\): score -0.5 is outside \[0, 1\]")
    bad["keypoints"] = [[1, 2, 3]] * 17
    mmpose_error(tmp_path, [[bad]], r"keypoints are not \[x, y\] pairs")
    mmpose_error(tmp_path, [[{"keypoints": [[0, 0]] * 17}]], "instance 0 has no 'keypoint_scores' list")
    mmpose_error(tmp_path, {"instance_info": [{"frame_id": 0, "instances": []}]}, "frame_id 0 is not an integer from 1")
    mmpose_error(tmp_path, [{"frame_id": 3, "instances": []}] * 2, "frame 3 appears twice")
    mmpose_error(tmp_path, {"instance_info": [{"frame_id": 100_001, "instances": []}]}, "beyond 100000 frames")
    short = instance(0)
    short["keypoint_scores"].pop()
    mmpose_error(tmp_path, [[instance(0), short]], "frame 0: instance 1: 16 keypoint_scores for 17 keypoints")
    mmpose_error(tmp_path, [], "no frames")
    mmpose_error(tmp_path, 5, "top level is a number; expected MMPose predictions")
    mmpose_error(tmp_path, [[instance(0)], {"x": 1}], "frame 1: instances are an object, expected a list")
    mmpose_error(tmp_path, {"data": [], "label": "x"}, r"without 'instance_info' \(a Kinetics-Skeleton video file\?\)")
    mmpose_error(tmp_path, [[instance(0)], [instance(0, track_id=True)]], "frame 1: instance 0: track_id True")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(AgcnError, match="expected a folder of per-frame keypoint .json files"):
        read_keypoints(tmp_path / "p.txt")


def test_detection(tmp_path):
    write_openpose(tmp_path / "op", {0: []})
    topdown = {"meta_info": {"pad": "x" * 200_000}, "instance_info": []}  # meta_info comes first
    files = {
        "topdown.json": topdown,
        "video.json": [{"frame_id": 0, "instances": []}],
        "frames.json": [[], [instance(0)]],
        "image.json": [instance(0)],
        "kinetics.json": {"data": [{"frame_index": 1, "skeleton": [{"pose": [0.5] * 36, "score": [1] * 18}]}]},
        "numbers.json": [1, 2],
        "empty.json": [],
    }
    for name, doc in files.items():
        (tmp_path / name).write_text(json.dumps(doc))
    found = {name: is_keypoint_input(tmp_path / name) for name in files}
    assert found == {name: name in ("topdown.json", "video.json", "frames.json", "image.json") for name in files}
    assert is_keypoint_input(tmp_path / "op")
    kinetics = tmp_path / "kinetics_val"  # video ids may end in a digit
    kinetics.mkdir()
    (kinetics / "abc123.json").write_text(json.dumps(files["kinetics.json"]))
    assert not is_keypoint_input(kinetics)
    assert not is_keypoint_input(tmp_path / "missing.json") and not is_keypoint_input(tmp_path / "missing")
    with pytest.raises(AgcnError, match="abc123.json: frame 123: no 'people' list"):
        read_keypoints(kinetics)
