"""`agcn plot SEGMENTS.json|.csv`: the timeline of agcn watch's segments files. The files read
back as written (JSON and CSV), each bar drawn where its frames are in its class's colour, the
legend the classes present, and every bad file or option one `error:` line."""

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from agcn_cli.cli import app
from tests.helpers import one_error_line

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402  (after the skip)

from agcn_cli.viz.timeline import class_colour, draw_timeline, read_segments, timeline_figure  # noqa: E402

CLASSES = ["wave", "kick", "sit down"]
SEGMENTS = [  # person 7: kick, a gap of no action, wave; person 3: a wave too narrow to be named
    {"person": 7, "start": 0, "end": 149, "class": 1, "name": "kick", "probability": 0.9},
    {"person": 7, "start": 150, "end": 179, "class": -1, "name": "no action", "probability": 0.2},
    {"person": 7, "start": 180, "end": 299, "class": 0, "name": "wave", "probability": 0.8},
    {"person": 3, "start": 40, "end": 42, "class": 0, "name": "wave", "probability": 0.6},
]
CSV = (
    "person,start,end,class,name,probability\n"
    "7,0,149,1,kick,0.9\n"
    "3,40,42,0,wave,0.6\n"
    "7,150,179,-1,no action,0.2\n"
    "\n"  # a blank line is skipped
    '7,180,299,4,"jump, twice",0.8\n'
)


def segments_doc(**changes) -> dict:
    doc = {"format": "agcn-segments", "version": 1, "input": "walk.mp4", "frames": 300, "window": 64, "stride": 16,
           "classes": list(CLASSES), "people": [7, 3], "segments": [dict(s) for s in SEGMENTS]}  # fmt: skip
    return {**doc, **changes}


def write_json(path, doc) -> object:
    path.write_text(json.dumps(doc))
    return path


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def pixel(image: np.ndarray, bar) -> np.ndarray:
    """The RGB (0-1) of `image` (H, W, 3+) inside the drawn patch `bar`: halfway along, a fifth of its
    height from its bottom edge (below the class name written on it)."""
    box = bar.get_window_extent()
    x, y = (box.x0 + box.x1) / 2, box.y0 + 0.2 * box.height
    return image[int(image.shape[0] - y), int(x), :3].astype(float)


# ---- reading -------------------------------------------------------------------------------------


def test_json_and_csv_read_back(tmp_path):
    s = read_segments(write_json(tmp_path / "s.json", segments_doc()))
    assert (s.input, s.frames, s.window, s.stride, s.classes, s.people) == ("walk.mp4", 300, 64, 16, CLASSES, [7, 3])
    assert [(g.person, g.start, g.end, g.cls, g.name, g.probability) for g in s.segments] == [
        tuple(d.values()) for d in SEGMENTS
    ]
    (tmp_path / "s.csv").write_text(CSV)
    c = read_segments(tmp_path / "s.csv")
    assert c.people == [7, 3] and c.frames == 300 and (c.input, c.window, c.stride) == (None, None, None)
    assert c.classes == ["wave", "kick", "class 2", "class 3", "jump, twice"]  # the names seen; the others unknown
    assert [(g.person, g.start, g.end, g.cls) for g in c.segments][-1] == (7, 180, 299, 4)
    (tmp_path / "ids.csv").write_text("person,start,end,class,name,probability\n007,0,9,0,wave,1\nb,0,9,0,wave,0\n")
    assert read_segments(tmp_path / "ids.csv").people == ["007", "b"]  # ids that are not all integers stay text


def test_a_pair_of_people_is_one_row(tmp_path):
    doc = segments_doc(people=[[7, 3], 5], segments=[
        {"person": [7, 3], "start": 0, "end": 9, "class": 2, "name": "sit down", "probability": 0.5},
        {"person": 5, "start": 5, "end": 9, "class": 0, "name": "wave", "probability": 0.5}])  # fmt: skip
    s = read_segments(write_json(tmp_path / "pairs.json", doc))
    assert s.people == [(7, 3), 5] and s.segments[0].person == (7, 3)
    ax = timeline_figure(s).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["7 & 3", "5"]


# ---- drawing -------------------------------------------------------------------------------------


def test_bars_are_where_their_frames_are_in_their_class_colour(tmp_path, monkeypatch):
    path = write_json(tmp_path / "walk-segments.json", segments_doc())
    monkeypatch.chdir(tmp_path)  # no --out: STEM-timeline.png here, as agcn plot writes curves.png
    r = cli("plot", path)
    assert r.exit_code == 0 and "timeline of 2 people, 4 segments" in r.output, r.output
    image = imread(tmp_path / "walk-segments-timeline.png")
    assert image.shape[1] == 1200 and 240 <= image.shape[0] <= 600
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically

    fig = timeline_figure(read_segments(path))  # the same drawing, its patches where the PNG has them
    ax = fig.axes[0]
    bars = {p.get_gid(): p for p in ax.patches}
    assert sorted(bars) == ["s0", "s1", "s2", "s3"]
    for i, seg in enumerate(SEGMENTS):
        box = bars[f"s{i}"]
        assert (box.get_x(), box.get_width()) == (seg["start"], seg["end"] + 1 - seg["start"])
        assert box.get_y() + box.get_height() / 2 == pytest.approx([7, 3].index(seg["person"]))  # row of the person
        np.testing.assert_allclose(pixel(image, box), class_colour(seg["class"]), atol=2 / 255)
    np.testing.assert_allclose(class_colour(-1), [211 / 255] * 3)  # no action: light grey
    assert class_colour(0) != class_colour(1)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["wave", "kick", "no action"]  # the classes present, no action last; not "sit down"
    named = sorted(t.get_text() for t in ax.texts)
    assert named == ["kick", "no action", "wave"]  # person 3's three-frame wave is too narrow for its name
    assert [t.get_text() for t in ax.get_yticklabels()] == ["7", "3"]  # the file's order, top down


def test_csv_drawn_with_seconds_and_a_title(tmp_path):
    (tmp_path / "s.csv").write_text(CSV)
    out = tmp_path / "t.svg"
    r = cli("plot", tmp_path / "s.csv", "--out", out, "--fps", "30", "--title", "Walk")
    assert r.exit_code == 0 and out.read_text().lstrip().startswith("<?xml"), r.output
    fig = timeline_figure(read_segments(tmp_path / "s.csv"), "Walk", fps=30)
    labels = [ax.get_xlabel() for ax in fig.axes[0].child_axes]
    assert labels == ["seconds (30 frames per second)"] and fig.axes[0].get_title() == "Walk"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["wave", "kick", "jump, twice", "no action"]


def test_class_colours_are_stable_and_distinct():
    colours = [class_colour(k) for k in range(120)]
    assert len(set(colours)) == 120 and colours == [class_colour(k) for k in range(120)]
    assert class_colour(-1) not in colours


def test_twenty_people_and_many_segments_stay_quick(tmp_path):
    people = list(range(20))
    segs = [{"person": p, "start": 30 * k, "end": 30 * k + 24, "class": (p + k) % 3, "name": CLASSES[(p + k) % 3],
             "probability": 0.5} for p in people for k in range(100)]  # fmt: skip
    path = write_json(tmp_path / "m.json", segments_doc(people=people, segments=segs, frames=0))
    image = imread(draw_timeline(read_segments(path), tmp_path / "m.png"))
    assert image.shape[1] == 1200 and 20 * 30 < image.shape[0] < 1000


# ---- bad files and options: one line ---------------------------------------------------------------


def _set(index: int, **values):
    def edit(doc):
        doc["segments"][index].update(values)

    return edit


def _drop(index: int, key: str):
    def edit(doc):
        del doc["segments"][index][key]

    return edit


BAD_JSON = [
    (lambda d: d.pop("format"), "not a segments file of agcn watch (no 'format' key"),
    (lambda d: d.update(format="agcn-scores"), 'format "agcn-scores"; expected format'),
    (lambda d: d.update(version=2), "version 2; this agcn reads version 1; a newer agcn wrote it"),
    (lambda d: d.update(version="1"), 'version: expected an integer, found "1"'),
    (lambda d: d.pop("frames"), "no 'frames' key"),
    (lambda d: d.update(frames=-1), "frames: expected an integer >= 0, found -1"),
    (lambda d: d.update(window=0), "window: expected an integer >= 1, found 0"),
    (lambda d: d.update(stride=16.0), "stride: expected an integer, found 16.0"),
    (lambda d: d.update(input=None), "input: expected a path"),
    (lambda d: d.update(classes="wave"), "classes: expected a list of class names"),
    (lambda d: d.update(people={}), "people: expected a list"),
    (lambda d: d.update(people=[7, 7]), "people: person 7 is listed twice"),
    (lambda d: d.update(people=[7, "3"]), "people: the ids mix integers and strings"),
    (lambda d: d.update(people=[7, True]), "people[1]: expected a person id"),
    (lambda d: d["segments"].__setitem__(1, [7, 150]), "segments[1]: expected an object"),
    (_drop(0, "end"), "segments[0]: no 'end' key"),
    (_set(0, start=-5), "segments[0]: start: expected an integer >= 0, found -5"),
    (_set(0, start=149, end=10), "segments[0]: end 10 is before start 149"),
    (_set(1, start=140), "segments[1]: person 7's frames 140-179 overlap those of segments[0] (0-149)"),
    (_set(2, start=0, end=5), "segments[2]: person 7's frames 0-5 come before those of segments[1] (150-179)"),
    (_set(3, person=9), "segments[3]: person 9 is not in the file's people"),
    (_set(3, person="3"), 'segments[3]: person "3" is not in the file\'s people'),
    (_set(0, **{"class": 3}), "segments[0]: class 3 is past the file's 3 classes"),
    (_set(0, **{"class": -2}), "segments[0]: class: expected an integer >= -1, found -2"),
    (_set(0, **{"class": True}), "segments[0]: class: expected an integer, found true"),
    (_set(0, name="wave"), "segments[0]: name \"wave\" is not class 1's name 'kick'"),
    (_set(1, name="idle"), "segments[1]: name \"idle\" is not class -1's name 'no action'"),
    (_set(0, probability=1.5), "segments[0]: probability: expected a number in [0, 1], found 1.5"),
    (_set(0, probability="0.9"), 'segments[0]: probability: expected a number in [0, 1], found "0.9"'),
    (_set(0, probability=float("nan")), "found NaN"),
]


@pytest.mark.parametrize(("edit", "expected"), BAD_JSON, ids=[e for _, e in BAD_JSON])
def test_bad_json_is_one_line(tmp_path, edit, expected):
    doc = segments_doc()
    edit(doc)
    out = tmp_path / "t.png"
    line = one_error_line(["plot", str(write_json(tmp_path / "bad.json", doc)), "--out", str(out)])
    assert line.startswith(f"error: {tmp_path / 'bad.json'}: ") and expected in line, line
    assert not out.exists()


BAD_CSV = [
    ("", "empty; expected the header person,start,end,class,name,probability (a segments file of agcn watch)"),
    ("person,begin,end,class,name,probability\n", 'found "person,begin,end,class,name,probability"'),
    ("7,0,9,1,kick\n", "line 2: expected 6 fields, found 5"),
    ("7,x,9,1,kick,0.5\n", 'line 2: start: expected an integer, found "x"'),
    ("7,-3,9,1,kick,0.5\n", "line 2: start: expected an integer >= 0, found -3"),
    ("7,5,1,1,kick,0.5\n", "line 2: end 1 is before start 5"),
    ("7,0,9,1.0,kick,0.5\n", 'line 2: class: expected an integer, found "1.0"'),
    ("7,0,9,1,kick,high\n", 'line 2: probability: expected a number in [0, 1], found "high"'),
    ("7,0,9,1,kick,nan\n", "line 2: probability: expected a number in [0, 1], found NaN"),
    ("7,0,9,1,kick,0.5\n7,10,19,1,push,0.5\n", "line 3: class 1 is named 'push' here, 'kick' on line 2"),
    ("7,0,9,-1,idle,0.5\n", "line 2: name \"idle\" is not class -1's name 'no action'"),
    ("7,0,9,1,,0.5\n", "line 2: class 1 has no name"),
    (
        "7,0,9,1,kick,0.5\n3,0,9,1,kick,0.5\n7,9,19,0,wave,0.5\n",
        "line 4: person 7's frames 9-19 overlap those of line 2",
    ),
]


@pytest.mark.parametrize(("rows", "expected"), BAD_CSV, ids=[e for _, e in BAD_CSV])
def test_bad_csv_is_one_line(tmp_path, rows, expected):
    path = tmp_path / "bad.csv"
    path.write_text(rows if "person" in rows or not rows else "person,start,end,class,name,probability\n" + rows)
    line = one_error_line(["plot", str(path), "--out", str(tmp_path / "t.png")])
    assert line.startswith(f"error: {path}: ") and expected in line, line


def test_unreadable_files_and_refused_options_are_one_line(tmp_path):
    good = write_json(tmp_path / "good.json", segments_doc())
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "bad.json").write_text('{"format": ')
    (tmp_path / "latin.csv").write_bytes(b"person,start,end,class,name,probability\n7,0,9,1,k\xe9,1\n")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "there.png").write_bytes(b"old")
    out = str(tmp_path / "t.png")
    cases = [
        (["plot", tmp_path / "bad.json", "--out", out], "bad.json: not valid JSON (line 1:"),
        (["plot", tmp_path / "latin.csv", "--out", out], "latin.csv: not UTF-8 text"),
        (["plot", tmp_path / "list.json", "--out", out], "list.json: expected a JSON object"),
        (["plot", tmp_path / "missing.json", "--out", out], "missing.json: no such file"),
        (["plot", good, "--out", tmp_path / "there.png"], "there.png: already exists; pass --overwrite"),
        (["plot", good, "--out", tmp_path / "t.gif"], "unsupported output type '.gif'"),
        (["plot", good, "--out", out, "--fps", "0"], "--fps 0.0: expected the recording's frames per second"),
        (["plot", good, "--out", out, "--fps", "nan"], "--fps nan: expected"),
        (["plot", good, run], "give either a segments file (a timeline) or run folders / score files, not both"),
        (["plot", good, good], "good.json: one segments file at a time"),
        (["plot", run, "--fps", "30"], "--fps and --title are for a segments file of agcn watch"),
        (["plot", run, "--title", "x"], "--fps and --title are for a segments file of agcn watch"),
        (["plot", write_json(tmp_path / "nobody.json", segments_doc(people=[], segments=[])), "--out", out],
         "nobody.json: no people in the file; nothing to draw"),
    ]  # fmt: skip
    for args, expected in cases:
        line = one_error_line([str(a) for a in args])
        assert expected in line, line
    assert (tmp_path / "there.png").read_bytes() == b"old" and not (tmp_path / "t.png").exists()


def test_without_matplotlib_a_bad_file_is_still_told_then_the_extra_named(tmp_path, monkeypatch):
    good = write_json(tmp_path / "good.json", segments_doc())
    bad = write_json(tmp_path / "bad.json", segments_doc(version=3))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert "version 3" in one_error_line(["plot", str(bad), "--out", str(tmp_path / "a.png")])
    assert "pip install 'agcn[viz]'" in one_error_line(["plot", str(good), "--out", str(tmp_path / "a.png")])
