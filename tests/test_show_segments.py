"""`agcn show FILE.pkl --segments SEGMENTS`: each person's current action of agcn watch drawn by
them, frame by frame. A 3D annotation file (no video) drawn with matplotlib, its labels read back
from the drawing; a 2D one on its video, the pixels above the head changed; the labels of each
frame computed from the file's ids (rows, pairs, `NAME:m` of several samples); bad files, unknown
ids and other inputs one `error:` line."""

import json
import pickle

import numpy as np
import pytest

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

from agcn_cli.viz.overlay import (  # noqa: E402
    annotation_clip,
    annotation_scene,
    overlay_frame,
    read_annotation,
    segment_labels,
)
from agcn_cli.viz.render import frame_figure  # noqa: E402
from agcn_cli.viz.timeline import read_segments  # noqa: E402
from tests.helpers import one_error_line, random_body, run_ok, write_skeleton, write_split  # noqa: E402

NAME, FRAMES = "S001C001P001R001A023", 40
WAVE, KICK = "frames 0-19 hand waving (0.91)", "frames 20-39 kicking (0.80)"
SEGMENTS = [  # person 0 waves then kicks; person 1 kicks in frames 10-29 only
    {"person": 0, "start": 0, "end": 19, "class": 0, "name": "hand waving", "probability": 0.91},
    {"person": 0, "start": 20, "end": 39, "class": 1, "name": "kicking", "probability": 0.8},
    {"person": 1, "start": 10, "end": 29, "class": 1, "name": "kicking", "probability": 0.7},
]


def segments_file(path, segments=SEGMENTS, people=(0, 1)):
    doc = {"format": "agcn-segments", "version": 1, "input": "x.pkl", "frames": FRAMES, "window": 16, "stride": 4,
           "classes": ["hand waving", "kicking"], "people": list(people), "segments": segments}  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


def pkl_3d(path):
    """Two NTU-25 bodies (Kinect camera space, metres), 40 frames, no score, no video; a second sample."""
    rng = np.random.default_rng(0)
    kp = np.stack([random_body(rng, FRAMES), random_body(rng, FRAMES, (1.2, 0.0, 3.5))]).astype(np.float32)
    anns = [{"frame_dir": NAME, "label": 22, "total_frames": FRAMES, "keypoint": kp},
            {"frame_dir": "other", "label": 1, "total_frames": 5, "keypoint": kp[:, :5]}]  # fmt: skip
    path.write_bytes(pickle.dumps({"split": {"xsub_val": [NAME, "other"]}, "annotations": anns}))
    return path


def cli(*args):
    return run_ok("show", *args)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("segments")
    return d, pkl_3d(d / "ntu.pkl"), segments_file(d / "segs.json")


def test_each_frame_has_the_label_of_the_segment_holding_it(files):
    d, _, segs = files
    labels = segment_labels(read_segments(segs), NAME, 2, FRAMES)
    assert labels[0][5] == WAVE and labels[0][30] == KICK
    assert labels[1][5] is None and labels[1][10] == labels[1][29] == "frames 10-29 kicking (0.70)"
    assert labels[1][30] is None and len(labels[1]) == FRAMES
    # several samples watched: "NAME:m", pairs "NAME:a+b" in a CSV; other samples' segments left out
    (d / "many.csv").write_text(
        f"person,start,end,class,name,probability\n{NAME}:0+1,0,9,1,kicking,0.5\nother:0,0,4,0,hand waving,1\n"
    )
    labels = segment_labels(read_segments(d / "many.csv"), NAME, 2, FRAMES)
    assert labels[0][9] == labels[1][9] == "frames 0-9 kicking (0.50)" and labels[0][10] is None
    pair = segments_file(d / "pair.json", [{**SEGMENTS[0], "person": [0, 1]}], people=[[0, 1]])  # --pairs
    assert segment_labels(read_segments(pair), NAME, 2, FRAMES)[1][0] == WAVE


def test_a_3d_sample_without_a_video_is_drawn_with_its_labels(files):
    d, pkl, segs = files
    scene = annotation_scene(read_annotation(pkl, NAME), segments=read_segments(segs))
    assert (scene.view, scene.labels, scene.joints.shape) == ("y-up", ["person 0", "person 1"], (2, FRAMES, 25, 3))
    for t, shown in ((5, [WAVE]), (15, [WAVE, "frames 10-29 kicking (0.70)"]), (35, [KICK])):
        (ax,) = frame_figure([scene], t).axes
        assert sorted(x.get_text() for x in ax.texts if x.get_visible()) == sorted(shown)
    (ax,) = frame_figure([annotation_scene(read_annotation(pkl, NAME))], 5).axes
    assert not [x for x in ax.texts if x.get_visible()]  # no segments, no labels

    r = cli(pkl, "--sample", NAME, "--segments", segs, "--out", d / "s.png")
    assert "strip, 8 frames, no video" in r.output
    cli(pkl, "--sample", NAME, "--out", d / "plain.png")
    with Image.open(d / "s.png") as s, Image.open(d / "plain.png") as plain:
        assert s.size == plain.size == (8 * 240, 240)
        assert (np.asarray(s) != np.asarray(plain)).any()  # the labels
    cli(pkl, "--sample", NAME, "--segments", segs, "--out", d / "s.gif", "--every", "8")
    with Image.open(d / "s.gif") as gif:
        assert (gif.n_frames, gif.size) == (5, (480, 480))


def test_a_2d_sample_without_a_video_is_drawn_in_image_coordinates(files, tmp_path, monkeypatch):
    kp = np.zeros((1, 6, 17, 2), np.float32)
    kp[0, :, 5], kp[0, :, 7] = (200, 100), (200, 300)  # left shoulder above left elbow, in pixels
    score = np.zeros((1, 6, 17), np.float32)
    score[0, :, [5, 7]] = 0.9
    ann = {"frame_dir": "clip", "total_frames": 6, "keypoint": kp, "keypoint_score": score}
    (tmp_path / "2d.pkl").write_bytes(pickle.dumps(ann))
    scene = annotation_scene(read_annotation(tmp_path / "2d.pkl"))
    assert scene.view == "image" and np.isfinite(scene.joints[0, :, [5, 7]]).all()
    assert np.isnan(scene.joints[0, :, 0]).all()  # not found: not drawn
    monkeypatch.chdir(tmp_path)
    assert "animation, 6 frames, no video" in cli("2d.pkl").output
    assert (tmp_path / "clip.gif").is_file()  # NAME.gif: matplotlib writes no .mp4 without ffmpeg


def test_a_2d_sample_on_its_video_has_the_labels_above_the_heads(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from tests.test_show_video import ON_BONE0, read_video, write_pkl
    from tests.videos import clip

    video = clip(tmp_path / "v.mp4", 12, (480, 640))
    pkl = write_pkl(tmp_path / "v.pkl", video)  # person 0: a bone from (200, 100) down to (200, 300)
    segs = segments_file(tmp_path / "v.json", [{**SEGMENTS[0], "end": 5}, {**SEGMENTS[2], "start": 3, "end": 11}])
    c = annotation_clip(read_annotation(pkl))
    frame = read_video(video)[4]
    labels = segment_labels(read_segments(segs), c.name, 2, c.num_frames)
    plain, labelled = overlay_frame(c, 4, frame), overlay_frame(c, 4, frame, labels=labels)
    above = (slice(60, 95), slice(150, 250))  # over person 0's topmost joint, (200, 100)
    assert (labelled[above] != plain[above]).mean() > 0.3 and (labelled[above] == 0).all(axis=-1).mean() > 0.3
    assert (labelled[ON_BONE0] == plain[ON_BONE0]).all() and (labelled[400:] == plain[400:]).all()
    labels[0][4] = None
    assert (overlay_frame(c, 4, frame, labels=labels)[above] == plain[above]).all()  # outside the segment: none

    cli(pkl, "--segments", segs, "--out", tmp_path / "s.png", "--frames", "4:7", "--every", "2")  # frames 4, 6
    cli(pkl, "--out", tmp_path / "p.png", "--frames", "4:7", "--every", "2")
    s, p = (cv2.imread(str(tmp_path / n)) for n in ("s.png", "p.png"))
    assert s.shape == p.shape == (480, 2 * 640, 3)
    assert (s[above] != p[above]).any()  # frame 4: person 0's label
    assert (s[:, 640:][above] == p[:, 640:][above]).all()  # frame 6: past person 0's segment


def test_bad_segments_and_other_inputs_are_one_line(files, tmp_path):
    d, pkl, segs = files
    out = str(tmp_path / "x.png")
    show = ["show", str(pkl), "--sample", NAME, "--out", out]
    unknown = segments_file(tmp_path / "unknown.json", [{**SEGMENTS[0], "person": 2}], people=[2])
    line = one_error_line([*show, "--segments", str(unknown)])
    assert f"{unknown}: person 2 is not one of sample {NAME}'s people" in line and "0-1 here" in line
    named = segments_file(tmp_path / "named.json", [{**SEGMENTS[0], "person": "alice"}], people=["alice"])
    assert f"{named}: person 'alice' is not one of" in one_error_line([*show, "--segments", str(named)])
    late = segments_file(tmp_path / "late.json", [{**SEGMENTS[0], "start": 50, "end": 60}])
    assert "starts past the last frame" in one_error_line([*show, "--segments", str(late)])
    (tmp_path / "bad.json").write_text('{"format": "agcn-segments", "version": 1}')
    assert f"{tmp_path / 'bad.json'}: no 'input' key" in one_error_line(
        [*show, "--segments", str(tmp_path / "bad.json")]
    )
    assert "no such file" in one_error_line([*show, "--segments", str(tmp_path / "none.json")])
    other = segments_file(tmp_path / "o.json", [{**SEGMENTS[0], "person": "other:0"}], people=["other:0"])
    assert f"no segment of sample {NAME}" in one_error_line([*show, "--segments", str(other)])
    assert "--min-score is for 2D keypoints" in one_error_line([*show, "--min-score", "0.5"])
    assert "names no video (no 'filename') for --beside" in one_error_line([*show, "--beside"])
    split = write_split(tmp_path / "t.h5", lengths=(5,))
    skeleton = write_skeleton(tmp_path / "S001C001P001R001A001.skeleton", [[(1, np.ones((25, 3)))]] * 3)
    for args in ([str(split), "--index", "0"], [str(skeleton)]):
        line = one_error_line(["show", *args, "--segments", str(segs), "--out", out])
        assert "--segments is for annotation files (.pkl)" in line and f"agcn plot {segs}" in line
    assert not (tmp_path / "x.png").exists()
