"""`agcn show FILE.pkl`: a 2D annotation file's poses drawn on the frames of its video (a real-person
clip of `tests/videos`), the drawn pixels checked: bones in the person's colour where they are,
the video's own pixels elsewhere, joints under --min-score left out; --beside, the outputs read
back at their frame counts and sizes, and the wrong or missing video as one line."""

import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("cv2")
pytest.importorskip("matplotlib")

import cv2  # noqa: E402

from agcn_cli.cli import app  # noqa: E402
from agcn_cli.skeleton.layouts import get_layout  # noqa: E402
from agcn_cli.viz.overlay import draw_poses, person_rgb, pose_clip  # noqa: E402
from tests.helpers import one_error_line, run_ok  # noqa: E402
from tests.videos import clip  # noqa: E402

NAME = "clips/a"
FRAMES = 12
H, W = 480, 640
# COCO-17: left shoulder 5 - left elbow 7 (person 0), left hip 11 - left knee 13 (person 1), an edge each
BONE0 = ((5, (200, 100)), (7, (200, 300)))  # a vertical line at x = 200, y 100-300
BONE1 = ((11, (450, 150)), (13, (450, 350)))  # at x = 450; the knee scored 0.1
ON_BONE0, ON_BONE1, KNEE1, FAR = (200, 200), (250, 450), (350, 450), (400, 300)  # (y, x); FAR: on the photo
LOW = 0.1


def poses(frames: int = FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """keypoint (2, T, 17, 2), keypoint_score (2, T, 17): the two bones above, every other joint not found."""
    kp = np.zeros((2, frames, 17, 2), np.float32)
    score = np.zeros((2, frames, 17), np.float32)
    for m, bone in enumerate((BONE0, BONE1)):
        for v, xy in bone:
            kp[m, :, v] = xy
            score[m, :, v] = 0.9
    score[1, :, 13] = LOW
    return kp, score


def write_pkl(path, video, frames: int = FRAMES, **changes):
    kp, score = poses(frames)
    ann = {"frame_dir": NAME, "total_frames": frames, "img_shape": (H, W), "keypoint": kp, "keypoint_score": score,
           "label": 1, "filename": str(video), **changes}  # fmt: skip
    data = {"split": {"test": [NAME]}, "annotations": [ann], "label_names": ["sit down", "wave"]}
    path.write_bytes(pickle.dumps(data))
    return path


def read_video(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def cli(*args):
    return run_ok("show", *args)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("show")
    video = clip(d / "a.mp4", FRAMES, (H, W))
    return d, video, write_pkl(d / "mine.pkl", video), read_video(video)


def test_draw_poses_draws_bones_in_the_persons_colour_and_leaves_low_scores_out():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    kp, score = poses(1)
    edges = get_layout("coco17").edges()
    drawn = draw_poses(frame, kp[:, 0], score[:, 0], edges, min_score=0.3)
    assert drawn.shape == frame.shape and drawn.dtype == np.uint8
    assert tuple(drawn[ON_BONE0]) == person_rgb(0)
    assert tuple(drawn[150, 450]) == person_rgb(1)  # the hip, scored 0.9: a dot
    for yx in (ON_BONE1, KNEE1, FAR):  # the knee (0.1) and its bone are not drawn
        assert (drawn[yx] == frame[yx]).all()
    changed = (drawn != frame).any(axis=-1)
    ys, xs = np.nonzero(changed)  # only near the bone of person 0 and the hip of person 1
    assert ((np.abs(xs - 200) <= 6) & (ys >= 94) & (ys <= 306) | (np.hypot(xs - 450, ys - 150) <= 7)).all()
    lower = draw_poses(frame, kp[:, 0], score[:, 0], edges, min_score=0.05)
    assert tuple(lower[ON_BONE1]) == person_rgb(1) and tuple(lower[KNEE1]) == person_rgb(1)
    assert person_rgb(0) != person_rgb(1)


def test_pose_clip_reads_the_sample_and_its_label(files):
    _, video, pkl, _ = files
    c = pose_clip(pkl, NAME)
    assert (c.name, c.num_frames, c.caption, c.video, c.layout.name) == (NAME, FRAMES, "label 1 (wave)", str(video),
                                                                          "coco17")  # fmt: skip
    assert pose_clip(pkl, 0).name == pose_clip(pkl).name == NAME  # by position; the only sample


def test_mp4_has_every_frame_with_the_poses_over_the_video(files):
    d, _, pkl, source = files
    r = cli(pkl, "--sample", NAME, "--out", d / "o.mp4")
    assert "12 frames" in r.output
    got = read_video(d / "o.mp4")
    assert len(got) == FRAMES and got[0].shape == (H, W, 3)
    for frame, original in zip(got, source, strict=True):  # mp4v twice: near, not equal
        assert np.abs(frame[ON_BONE0].astype(int) - person_rgb(0)).max() < 60
        patch = (slice(FAR[0] - 5, FAR[0] + 5), slice(FAR[1] - 5, FAR[1] + 5))
        assert np.abs(frame[patch].astype(int) - original[patch]).mean() < 6
        assert np.abs(frame[KNEE1].astype(int) - original[KNEE1]).max() < 30  # not drawn (score 0.1)


def test_png_strip_is_exact_and_min_score_draws_more(files):
    d, _, pkl, source = files
    cli(pkl, "--index", "0", "--out", d / "s.png", "--frames", "0:9", "--every", "3")  # frames 0, 3, 6
    strip = cv2.cvtColor(cv2.imread(str(d / "s.png")), cv2.COLOR_BGR2RGB)
    assert strip.shape == (H, 3 * W, 3)
    for k, t in enumerate((0, 3, 6)):
        frame = strip[:, k * W : (k + 1) * W]
        assert tuple(frame[ON_BONE0]) == person_rgb(0)
        assert (frame[FAR] == source[t][FAR]).all() and (frame[ON_BONE1] == source[t][ON_BONE1]).all()
    cli(pkl, "--sample", NAME, "--out", d / "low.png", "--frames", "0:1", "--min-score", "0.05")
    low = cv2.cvtColor(cv2.imread(str(d / "low.png")), cv2.COLOR_BGR2RGB)
    assert tuple(low[ON_BONE1]) == person_rgb(1) and tuple(low[KNEE1]) == person_rgb(1)


def test_beside_doubles_the_width_with_the_skeleton_on_a_plain_panel(files):
    d, _, pkl, source = files
    cli(pkl, "--sample", NAME, "--beside", "--out", d / "b.mp4", "--every", "2")
    got = read_video(d / "b.mp4")
    assert len(got) == FRAMES // 2 and got[0].shape == (H, 2 * W, 3)
    cli(pkl, "--sample", NAME, "--beside", "--out", d / "b.png", "--frames", "5:6")
    panel = cv2.cvtColor(cv2.imread(str(d / "b.png")), cv2.COLOR_BGR2RGB)
    assert panel.shape == (H, 2 * W, 3)
    left, right = panel[:, :W], panel[:, W:]
    assert (left[60:] == source[5][60:]).all()  # the frame as decoded, below the caption
    assert tuple(right[ON_BONE0]) == person_rgb(0) and (right[FAR] == 255).all() and (right[KNEE1] == 255).all()


def test_gif_and_the_default_name(files, tmp_path, monkeypatch):
    from PIL import Image

    d, _, pkl, _ = files
    cli(pkl, "--sample", NAME, "--out", d / "g.gif", "--every", "4")
    with Image.open(d / "g.gif") as gif:
        assert (gif.n_frames, gif.size) == (3, (W, H))
    monkeypatch.chdir(tmp_path)
    cli(pkl, "--sample", NAME, "--frames", "0:2")
    assert len(read_video(tmp_path / "clips_a.mp4")) == 2  # the name's / replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips_a.mp4"]  # no temporary file left
    one_error_line(["show", str(pkl), "--sample", NAME, "--frames", "0:2"])  # exists: --overwrite


def test_a_few_frames_short_is_a_note(files):
    d, _, pkl, _ = files
    short = clip(d / "short.mp4", FRAMES - 1, (H, W))
    r = CliRunner().invoke(app, ["show", str(pkl), "--video", str(short), "--out", str(d / "short-out.mp4")])
    assert r.exit_code == 0 and "11 frames" in r.output and "only the first 11" in r.output, r.output
    assert len(read_video(d / "short-out.mp4")) == FRAMES - 1


def test_wrong_and_missing_videos_are_one_line(files, tmp_path):
    d, video, pkl, _ = files
    long = clip(tmp_path / "long.mp4", 20, (H, W))
    out = tmp_path / "x.mp4"
    line = one_error_line(["show", str(pkl), "--sample", NAME, "--video", str(long), "--out", str(out)])
    assert "holds 12 frames" in line and "has 20" in line and "--video PATH" in line
    gone = write_pkl(tmp_path / "gone.pkl", tmp_path / "moved.mp4")
    line = one_error_line(["show", str(gone), "--sample", NAME, "--out", str(out)])
    assert f"{NAME}: its video {tmp_path / 'moved.mp4'} is not there; pass --video PATH" in line
    assert "no such file" in one_error_line(["show", str(gone), "--video", str(tmp_path / "no.mp4"), "--out", str(out)])
    assert "not a video" in one_error_line(["show", str(gone), "--video", str(pkl), "--out", str(out)])
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["gone.pkl", "long.mp4"]


def test_bad_samples_and_options_are_one_line(files, tmp_path):
    d, video, pkl, _ = files
    kp, _ = poses()
    nan = kp.copy()
    nan[0, 3, 5] = np.nan
    out = str(tmp_path / "x.mp4")
    for changes, expected in (
        ({"keypoint": nan}, "keypoint has NaN"),
        ({"keypoint": np.zeros((1, FRAMES, 17, 3), np.float32)}, "draws 2D poses"),
        ({"keypoint_score": np.ones((2, FRAMES, 16), np.float32)}, "keypoint_score has shape"),
        ({"total_frames": 30}, "total_frames 30"),
        ({"img_shape": (480, 480)}, "another aspect"),
    ):
        bad = write_pkl(tmp_path / "bad.pkl", video, **changes)
        assert expected in one_error_line(["show", str(bad), "--out", out])
    for args, expected in (
        (["--sample", "nope"], "no sample named 'nope'"),
        (["--index", "1"], "no sample 1"),
        (["--sample", NAME, "--index", "0"], "which sample?"),
        (["--sample", NAME, "--modality", "bone"], "--modality is for split files"),
        (["--sample", NAME, "--compare"], "--compare is for raw .skeleton files"),
        (["--sample", NAME, "--out", str(tmp_path / "x.svg")], "unsupported output type '.svg'"),
    ):
        assert expected in one_error_line(["show", str(pkl), *args])
    h5 = str(tmp_path / "t.h5")
    assert "--video, --beside and --min-score are for annotation files" in one_error_line(
        ["show", h5, "--sample", "s", "--video", str(video)]
    )
    assert "--beside" in one_error_line(["show", h5, "--sample", "s", "--beside"])
    assert not (tmp_path / "x.mp4").exists()
