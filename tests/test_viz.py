"""`agcn show` and `agcn plot`: files written with the asked frames and sizes, the plotted values
equal to the files', every layout drawn, the recipes compared, and bad input as one line."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from agcn_cli.cli import app
from agcn_cli.io.scores import Scores, write_scores
from agcn_cli.io.splitwrite import SampleMeta, SplitWriter
from agcn_cli.skeleton.layouts import parse_layout
from tests.helpers import random_body, write_skeleton, write_split

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

from agcn_cli.viz import curves, render  # noqa: E402  (after the skip: both need matplotlib)

SAMPLE = "S001C001P001R001A002"  # write_split's second sample, 12 frames
ACTOR, GHOST = 72057594037931101, 72057594037931555


def xs(line) -> np.ndarray:
    """The x data of a 2D or 3D line."""
    data = line.get_data_3d() if hasattr(line, "get_data_3d") else line.get_data()
    return np.asarray(data[0], dtype=float)


def cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(r, expected: str) -> str:
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.output
    return lines[0]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "test.h5")


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory):
    """An actor over 30 frames and a ghost body in frames 10-14 (too short for the mmaction2 recipe)."""
    rng = np.random.default_rng(0)
    actor, ghost = random_body(rng, 30), random_body(rng, 5, offset=(1.5, 0.0, 4.0))
    frames = [[(ACTOR, actor[t])] + ([(GHOST, ghost[t - 10])] if 10 <= t < 15 else []) for t in range(30)]
    return write_skeleton(tmp_path_factory.mktemp("raw") / "S001C001P001R001A013.skeleton", frames)


# ---- agcn show ---------------------------------------------------------------------------------


def test_gif_has_the_frames_asked_and_the_panel_size(split, tmp_path, monkeypatch):
    out = tmp_path / "a.gif"
    r = cli("show", split, "--sample", SAMPLE, "--out", out, "--frames", "2:11", "--every", "3")
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "3 frames" in r.output
    with Image.open(out) as im:
        assert im.n_frames == 3  # frames 2, 5, 8
        assert im.size == render.PANEL_PX
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed
    monkeypatch.chdir(tmp_path)  # no --out: NAME.gif here, the sample found by position
    r = cli("show", split, "--index", "1", "--frames", "0:2")
    assert r.exit_code == 0 and (tmp_path / f"{SAMPLE}.gif").is_file(), r.output


def test_png_strip_has_evenly_spaced_frames(split, tmp_path):
    out = tmp_path / "strip.png"
    assert render.strip_frames(list(range(30))) == [0, 4, 8, 12, 17, 21, 25, 29]
    rendered = render.render_scenes([render.split_scene(split, "S001C001P001R001A004")], out)  # 30 frames
    assert rendered.frames == [0, 4, 8, 12, 17, 21, 25, 29]
    with Image.open(out) as im:
        assert im.size == (render.STRIP_PX[0] * render.STRIP_FRAMES, render.STRIP_PX[1])
    r = cli("show", split, "--sample", SAMPLE, "--out", tmp_path / "short.png", "--frames", ":3")  # fewer frames
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "short.png") as im:
        assert im.size == (render.STRIP_PX[0] * 3, render.STRIP_PX[1])


def test_show_modality_and_its_old_name(split, skeleton, tmp_path):
    """`agcn show --modality` draws a stream; `--stream`, its old name, still does, with a note."""
    r = cli("show", split, "--sample", SAMPLE, "--modality", "bone", "--out", tmp_path / "new.png")
    assert r.exit_code == 0 and "note:" not in r.output, r.output
    r = cli("show", split, "--sample", SAMPLE, "--stream", "bone", "--out", tmp_path / "old.png")
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == ["note: --stream is deprecated: pass --modality bone, as agcn train, eval and "
                                     "predict take it"]  # fmt: skip
    assert (tmp_path / "new.png").read_bytes() == (tmp_path / "old.png").read_bytes()
    assert "--stream" not in cli("show", "--help").output  # hidden: --modality is the flag
    one_error_line(cli("show", skeleton, "--modality", "bone"), "--sample, --index and --modality are for split files")


CUSTOM = {
    "name": "stick5",
    "channels": ["x", "y", "z"],
    "joint_names": ["head", "neck", "hip", "left_foot", "right_foot"],
    "center": 1,
    "graphs": {"stick": [[0, 1], [2, 1], [3, 2], [4, 2]]},
    "bones": [[0, 1], [1, 1], [2, 1], [3, 2], [4, 2]],
    "normalize": None,
}


def custom_split(path):
    layout = parse_layout(json.dumps(CUSTOM), "stick5.json")
    attrs = {"layout": "stick5", "layout_spec": layout.spec(), "recipe": "mmaction2", "normalized": True,
             "num_classes": 2, "split": "test", "label_names": json.dumps(["wave", "kick"])}  # fmt: skip
    x = np.random.default_rng(1).normal(size=(2, 6, 5, 3)).astype(np.float32)
    x[1] = 0  # one person only: the other is zero padding
    with SplitWriter(path, attrs, num_persons=2, num_joints=5, num_channels=3) as w:
        w.append(x, SampleMeta("clip-1", 1), 1)
    return path


@pytest.mark.parametrize("layout", ["ntu25", "coco17", "openpose18", "custom"])
def test_every_layout_renders(layout, tmp_path):
    if layout == "custom":
        path, name = custom_split(tmp_path / "custom.h5"), "clip-1"
    else:
        path, name = write_split(tmp_path / f"{layout}.h5", lengths=(4, 6), layout=layout), SAMPLE
    scene = render.split_scene(path, name)
    fig = render.frame_figure([scene], 1)
    (ax,) = fig.axes
    lines = [ln for ln in ax.get_lines() if np.isfinite(xs(ln)).any()]
    title = ax.get_title(loc="left")
    bones = len([b for b in scene.layout.bones if b[0] != b[1]])
    if layout == "custom":  # one person drawn (bones and joints), the zero person not
        assert len(lines) == 2 and "label 1 (kick)" in title and "frame 1/5" in title
        assert scene.labels == ["person 1", ""]
    else:
        assert len(lines) == 4  # two persons, bones and joints each
    bone_line = lines[0]
    assert np.isfinite(xs(bone_line)).sum() == 2 * bones
    assert scene.view == ("image" if layout in ("coco17", "openpose18") else "y-up" if layout == "custom" else "z-up")
    if scene.view == "image":
        assert ax.yaxis_inverted()  # image coordinates: y down
    out = tmp_path / f"{layout}.gif"
    render.render_scenes([scene], out)
    with Image.open(out) as im:
        assert im.n_frames == scene.num_frames


def test_bone_stream_segments_end_on_the_child_joints(split):
    scene = render.split_scene(split, SAMPLE, "bone")
    parents = scene.layout.bone_parents()
    children = np.flatnonzero(parents != np.arange(len(parents)))
    ends = scene.vectors[:, :, children, 1]  # (M, T, S, D)
    np.testing.assert_allclose(ends, scene.joints[:, :, children], atol=1e-5)
    motion = render.split_scene(split, SAMPLE, "joint-motion")
    assert np.isnan(motion.vectors[:, -1, :, 1] - motion.vectors[:, -1, :, 0]).sum() == 0
    np.testing.assert_array_equal(motion.vectors[:, -1, :, 1], motion.vectors[:, -1, :, 0])  # last motion is zero


def test_compare_shows_raw_bodies_beside_each_recipe(skeleton, tmp_path):
    scenes = render.skeleton_scenes(skeleton, compare=True)
    assert [s.title.split(":")[0] for s in scenes[1:]] == ["mmaction2", "2s-agcn"]
    raw = scenes[0]
    ghost_label = next(label for label in raw.labels if str(GHOST) in label)
    assert "frames 10-14" in ghost_label and "mmaction2 dropped" in ghost_label
    assert "mmaction2 kept" in next(label for label in raw.labels if str(ACTOR) in label)
    assert scenes[1].labels[0] == f"person 1 = body {ACTOR}"
    fig = render.frame_figure(scenes, 12)
    assert len(fig.axes) == 3  # raw + one per recipe
    ghost = [ln for ln in fig.axes[0].get_lines() if str(GHOST) in ln.get_label()]
    assert ghost and np.isfinite(xs(ghost[0])).any()  # drawn at frame 12
    assert "label 12 (tear up paper)" in raw.title
    r = cli("show", skeleton, "--compare", "--out", tmp_path / "c.gif", "--frames", "9:13")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "c.gif") as im:
        assert im.n_frames == 4 and im.size == (3 * render.PANEL_PX[0], render.PANEL_PX[1])


# ---- agcn plot ---------------------------------------------------------------------------------


def write_run(folder, modality: str, rows: list[dict], torn: str = ""):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"modality": modality}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + torn)
    return folder


def rows(n: int, seed: int, percent: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    scale = 100 if percent else 1
    out = []
    for e in range(1, n + 1):
        row = {"epoch": e, "train_loss": float(rng.uniform(1, 3)), "train_acc": scale * float(rng.uniform()),
               "lr": 0.1 / e, "samples_per_s": 10.0}  # fmt: skip
        if e % 2 == 0:
            row.update(val_top1=scale * float(rng.uniform()), val_top5=scale * float(rng.uniform()), val_loss=1.0)
        out.append(row)
    return out


def test_plotted_values_are_the_metrics(tmp_path):
    a = write_run(tmp_path / "joint", "joint", rows(5, 0))
    b = write_run(tmp_path / "run-b", "bone", rows(4, 1, percent=True))  # a run from before accuracies were fractions
    fig = curves.plot_runs([a, b])
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines()}
    for r, (folder, scale) in enumerate([(a, 100), (b, 1)]):
        stored = [json.loads(s) for s in (folder / "metrics.jsonl").read_text().splitlines()]
        for key in ("train_loss", "train_acc", "val_top1", "val_top5", "lr"):
            have = [row for row in stored if key in row]
            x, y = lines[f"{r}:{key}"].get_data()
            assert list(x) == [row["epoch"] for row in have]
            factor = scale if key in ("train_acc", "val_top1", "val_top5") else 1
            np.testing.assert_allclose(y, [row[key] * factor for row in have])
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["joint", "run-b (bone)"]  # folder and modality
    out = tmp_path / "curves.png"
    r = cli("plot", a, b, "--out", out)
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.size == curves.CURVES_PX


def test_torn_last_line_is_skipped_with_a_note(tmp_path):
    run = write_run(tmp_path / "killed", "joint", rows(3, 0), torn='{"epoch": 4, "train_lo')
    notes = []
    assert [r["epoch"] for r in curves.read_metrics(run, notes.append)] == [1, 2, 3]
    assert len(notes) == 1 and "line 4" in notes[0]
    r = cli("plot", run, "--out", tmp_path / "c.png")
    assert r.exit_code == 0 and "cut short" in r.output, r.output
    bad = write_run(tmp_path / "bad", "joint", [], torn='{"epoch": 1, "tr\n{"epoch": 2}\n')
    one_error_line(cli("plot", bad, "--out", tmp_path / "d.png"), "line 1 is not a metrics row")


def test_class_accuracy_bars(tmp_path):
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    prob = np.eye(3, dtype=np.float32)[[0, 1, 1, 1, 0, 2, 2, 0, 0]]
    attrs = {"modality": "joint", "label_names": ["wave", "kick", "sit"]}
    path = tmp_path / "s.h5"
    write_scores(path, Scores([f"s{i}" for i in range(9)], labels, prob, prob, attrs))
    fig = curves.plot_class_accuracy([path])
    ax = fig.axes[0]
    np.testing.assert_allclose([p.get_width() for p in ax.patches], [50, 200 / 3, 50])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0 wave", "1 kick", "2 sit"]
    r = cli("plot", path, "--out", tmp_path / "bars.png")
    assert r.exit_code == 0 and (tmp_path / "bars.png").is_file(), r.output


# ---- bad input -----------------------------------------------------------------------------------


def test_bad_inputs_give_one_line(split, skeleton, tmp_path):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    existing = tmp_path / "there.gif"
    existing.write_bytes(b"old")
    with h5py.File(write_split(tmp_path / "odd.h5", lengths=(3,)), "a") as f:
        f.attrs["layout"], f.attrs["layout_spec"] = "ntu26", ""
    line = one_error_line(cli("show", split, "--sample", "nope", "--out", tmp_path / "x.gif"), "no sample named 'nope'")
    assert "S001C001P001R001A001, S001C001P001R001A002" in line  # names that exist
    one_error_line(cli("show", split, "--sample", SAMPLE, "--modality", "speed", "--out", tmp_path / "x.gif"),
                   "--modality 'speed': choose one of: joint, bone, joint-motion, bone-motion")  # fmt: skip
    one_error_line(cli("show", split, "--sample", SAMPLE, "--stream", "speed", "--out", tmp_path / "x.gif"),
                   "--stream 'speed': choose one of: joint, bone")  # fmt: skip
    one_error_line(cli("show", tmp_path / "odd.h5", "--sample", "S001C001P001R001A001", "--out", tmp_path / "x.gif"),
                   "unknown layout 'ntu26'")  # fmt: skip
    one_error_line(
        cli("show", split, "--sample", SAMPLE, "--out", tmp_path / "x.jpg"), "unsupported output type '.jpg'"
    )
    one_error_line(cli("show", split, "--sample", SAMPLE, "--out", existing), "already exists; pass --overwrite")
    assert existing.read_bytes() == b"old"
    one_error_line(cli("show", split, "--sample", SAMPLE, "--frames", "5", "--out", tmp_path / "x.gif"), "expected A:B")
    one_error_line(cli("show", skeleton, "--stream", "bone"), "--sample, --index and --stream are for split files")
    one_error_line(cli("show", split, "--index", "8"), "no sample 8; the file has 8 (0-7: S001C001P001R001A001,")
    one_error_line(cli("show", split), "which sample? Pass --sample NAME or --index N")
    one_error_line(cli("show", split, "--compare", "--sample", SAMPLE), "--compare is for raw .skeleton files")
    one_error_line(cli("plot", empty), "empty-run: no metrics.jsonl")
    one_error_line(cli("plot", tmp_path / "missing-run"), "no such run folder or score file")
    one_error_line(cli("plot", empty, split), "not both")
    one_error_line(cli("plot", empty, "--out", tmp_path / "c.gif"), "unsupported output type '.gif'")
    assert not (tmp_path / "x.gif").exists()


def test_without_matplotlib_one_line_names_the_extra(split, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    one_error_line(cli("show", split, "--sample", SAMPLE, "--out", tmp_path / "x.gif"), "pip install 'agcn[viz]'")
    one_error_line(cli("plot", tmp_path), "pip install 'agcn[viz]'")


def test_mp4_needs_ffmpeg(split, tmp_path, monkeypatch):
    from matplotlib import animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    one_error_line(cli("show", split, "--sample", SAMPLE, "--out", tmp_path / "x.mp4"), "MP4 needs ffmpeg")
    assert not list(tmp_path.iterdir())


def test_help_is_instant_and_drawing_needs_no_torch(split, tmp_path):
    """`agcn --help` imports no matplotlib; `agcn show` and `agcn plot` import no torch."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from agcn_cli.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "print(r.output, 'MPL' if 'matplotlib' in sys.modules else 'NO-MPL')\n"
        f"r = CliRunner().invoke(app, ['show', {str(split)!r}, '--index', '0', '--out', {str(tmp_path / 'a.png')!r}])\n"
        "print(r.output, 'TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "show " in done.stdout and "plot " in done.stdout and "NO-MPL" in done.stdout
    assert "wrote" in done.stdout and "NO-TORCH" in done.stdout, done.stdout
