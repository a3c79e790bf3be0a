"""Timelines of `agcn watch`'s segments files for `agcn plot SEGMENTS`: what each person does
when, one row per person, one bar per segment coloured by its class.

A segments file is JSON (`{"format": "agcn-segments", "version": 1, ...}`) or CSV (header
`person,start,end,class,name,probability`); `data_specs/outputs.md` describes both. Every value
is checked where it is read (`read_segments`): a problem is one AgcnError line naming the file,
the segment (`segments[i]` of the JSON, `line N` of the CSV) and the value found.
"""

import colorsys
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AgcnError
from ..evaluation.segments import (
    NO_ACTION,
    NO_ACTION_NAME,
    SEGMENTS_CSV_HEADER,
    SEGMENTS_FORMAT,
    SEGMENTS_VERSION,
    Segment,
)
from .figure import IMAGE_SUFFIXES, PALETTE, check_suffix, new_figure, save_figure

_NO_ACTION_COLOUR = "lightgrey"
_ROW_PX = 34  # the height of one person's row
_LEGEND_ROWS = 30  # legend entries per column; more classes: more columns
_LABEL_PAD_PX = 6  # a class name is written on a bar at least this much wider than the name


# a person's id as agcn watch writes it: an int, a string, or a pair of them (`--pairs`, [a, b] in JSON)
PersonId = int | str | tuple[int | str, int | str]


@dataclass
class SegmentsFile:
    path: Path  # the file read
    input: str | None  # the recording agcn watch read ("-": stdin); None for a CSV
    frames: int  # frames seen (JSON: 0 when unknown; CSV: the last segment's end + 1); x spans at least this
    window: int | None  # frames per window (None for a CSV)
    stride: int | None  # frames between windows (None for a CSV)
    classes: list[str]  # class k is classes[k] (CSV: the names seen, `class k` for the others)
    people: list[PersonId]  # in the file's order; the ids all int or all str
    segments: list[Segment]  # each person's in time order, none overlapping; cls -1: no action


# ---- reading -------------------------------------------------------------------------------------


def read_segments(path: Path) -> SegmentsFile:
    """A segments file of `agcn watch`, `.json` or `.csv` (by suffix), every value checked."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise AgcnError(f"{path}: expected a segments file of agcn watch (.json or .csv)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AgcnError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise AgcnError(f"{path}: not UTF-8 text; expected a segments file of agcn watch") from None
    except OSError as e:
        raise AgcnError(f"{path}: cannot read ({e.strerror or e})") from None
    return _read_json(path, text) if suffix == ".json" else _read_csv(path, text)


def _shown(value: Any, limit: int = 40) -> str:
    """A value as the file has it, at most `limit` characters: `"3"`, `3.5`, `true`, `null`."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _integer(value: Any, where: str, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AgcnError(f"{where}: expected an integer, found {_shown(value)}")
    if low is not None and value < low:
        raise AgcnError(f"{where}: expected an integer >= {low}, found {value}")
    return value


def _probability(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AgcnError(f"{where}: expected a number in [0, 1], found {_shown(value)}")
    if not 0 <= value <= 1:
        raise AgcnError(f"{where}: expected a number in [0, 1], found {value}")
    return float(value)


def _person_id(value: Any, where: str) -> PersonId:
    """An id, or a pair of two ids (a JSON list) for agcn watch --pairs."""
    ids = value if isinstance(value, list) and len(value) == 2 and value[0] != value[1] else [value]
    for v in ids:
        if isinstance(v, bool) or not isinstance(v, int | str) or v == "":
            raise AgcnError(f"{where}: expected a person id (an integer or a non-empty string, or a pair of them), "
                            f"found {_shown(value)}")  # fmt: skip
    return tuple(ids) if len(ids) == 2 else ids[0]


def _read_json(path: Path, text: str) -> SegmentsFile:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise AgcnError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except RecursionError:
        raise AgcnError(f"{path}: not a segments file: its JSON nests too deep to read") from None
    if not isinstance(doc, dict):
        raise AgcnError(f"{path}: expected a JSON object (a segments file of agcn watch), found {type(doc).__name__}")
    if doc.get("format") != SEGMENTS_FORMAT:
        found = f"format {_shown(doc['format'])}" if "format" in doc else "no 'format' key"
        raise AgcnError(f"{path}: not a segments file of agcn watch ({found}; expected format {SEGMENTS_FORMAT!r})")

    version = _integer(_key(doc, "version", str(path)), f"{path}: version")
    if version != SEGMENTS_VERSION:
        newer = "; a newer agcn wrote it: upgrade agcn" if version > SEGMENTS_VERSION else ""
        raise AgcnError(f"{path}: segments file version {version}; this agcn reads version {SEGMENTS_VERSION}{newer}")
    source = _key(doc, "input", str(path))
    if not isinstance(source, str):
        raise AgcnError(f"{path}: input: expected a path (a string), found {_shown(source)}")
    frames = _integer(_key(doc, "frames", str(path)), f"{path}: frames", 0)
    window = _integer(_key(doc, "window", str(path)), f"{path}: window", 1)
    stride = _integer(_key(doc, "stride", str(path)), f"{path}: stride", 1)
    classes = _key(doc, "classes", str(path))
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise AgcnError(f"{path}: classes: expected a list of class names (strings), found {_shown(classes)}")
    people = _key(doc, "people", str(path))
    if not isinstance(people, list):
        raise AgcnError(f"{path}: people: expected a list of person ids, found {_shown(people)}")
    people = [_person_id(p, f"{path}: people[{i}]") for i, p in enumerate(people)]
    _check_people(people, f"{path}: people")
    rows = _key(doc, "segments", str(path))
    if not isinstance(rows, list):
        raise AgcnError(f"{path}: segments: expected a list of segments, found {_shown(rows)}")
    known, segments, places = set(people), [], []
    for i, row in enumerate(rows):
        where = f"{path}: segments[{i}]"
        places.append(f"segments[{i}]")
        if not isinstance(row, dict):
            raise AgcnError(f"{where}: expected an object with {', '.join(SEGMENTS_CSV_HEADER)}, found {_shown(row)}")
        person = _person_id(_key(row, "person", where), f"{where}: person")
        if person not in known:
            raise AgcnError(f"{where}: person {_shown(person)} is not in the file's people")
        label = _integer(_key(row, "class", where), f"{where}: class", NO_ACTION)
        if label >= len(classes):
            raise AgcnError(f"{where}: class {label} is past the file's {len(classes)} classes")
        name = _key(row, "name", where)
        expected = NO_ACTION_NAME if label == NO_ACTION else classes[label]
        if name != expected:
            raise AgcnError(f"{where}: name {_shown(name)} is not class {label}'s name {expected!r}")
        # no check against `frames`: it counts the frames seen, and agcn watch numbers them as its
        # input does (from the input's first frame number, with gaps where frames were skipped)
        segments.append(_segment(row, person, label, name, where))
    _check_order(path, segments, places)
    return SegmentsFile(path, source, frames, window, stride, list(classes), people, segments)


def _key(obj: dict, key: str, where: str) -> Any:
    if key not in obj:
        raise AgcnError(f"{where}: no {key!r} key")
    return obj[key]


def _segment(row: dict, person: PersonId, label: int, name: str, where: str) -> Segment:
    """A segment of `person`, its frames and probability checked (`row` holds their raw values)."""
    start = _integer(_key(row, "start", where), f"{where}: start", 0)
    end = _integer(_key(row, "end", where), f"{where}: end", 0)
    if end < start:
        raise AgcnError(f"{where}: end {end} is before start {start}")
    probability = _probability(_key(row, "probability", where), f"{where}: probability")
    return Segment(person, start, end, label, name, probability)


def _check_people(people: Sequence[PersonId], where: str) -> None:
    """All ids of one type (an int 7 and a string "7" would be two rows both labelled 7), each once."""
    if len({type(i) for p in people for i in (p if isinstance(p, tuple) else (p,))}) > 1:
        raise AgcnError(f"{where}: the ids mix integers and strings; expected one or the other")
    seen = set()
    for p in people:
        if p in seen:
            raise AgcnError(f"{where}: person {_shown(p)} is listed twice")
        seen.add(p)


def _check_order(path: Path, segments: Sequence[Segment], places: Sequence[str]) -> None:
    """Each person's segments in time order and not overlapping (`places[i]` names segment i)."""
    last: dict[PersonId, int] = {}  # person -> their latest segment so far
    for i, s in enumerate(segments):
        j = last.get(s.person)
        if j is not None and s.start <= segments[j].end:
            before = segments[j]
            problem = "overlap" if s.start >= before.start else "come before"
            raise AgcnError(
                f"{path}: {places[i]}: person {_shown(s.person)}'s frames {s.start}-{s.end} {problem} those of "
                f"{places[j]} ({before.start}-{before.end}); expected each person's segments in time order, "
                "none overlapping"
            )
        last[s.person] = i


def _read_csv(path: Path, text: str) -> SegmentsFile:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        rows = [(reader.line_num, row) for row in reader if row and "".join(row).strip()]
    except csv.Error as e:
        raise AgcnError(f"{path}: line {reader.line_num}: not CSV ({e})") from None
    wanted = f"the header {','.join(SEGMENTS_CSV_HEADER)} (a segments file of agcn watch)"
    if header is None:
        raise AgcnError(f"{path}: empty; expected {wanted}")
    if tuple(h.strip() for h in header) != SEGMENTS_CSV_HEADER:
        raise AgcnError(f"{path}: expected {wanted}, found {_shown(','.join(header), 100)}")
    cells, lines = [], []
    for line, row in rows:
        if len(row) != len(SEGMENTS_CSV_HEADER):
            raise AgcnError(f"{path}: line {line}: expected {len(SEGMENTS_CSV_HEADER)} fields, found {len(row)}")
        cells.append(dict(zip(SEGMENTS_CSV_HEADER, (c.strip() for c in row), strict=True)))
        lines.append(f"line {line}")
    # ids are integers when every one is written as one (`007` stays a string); else strings
    as_int = all(_is_int(c["person"]) and str(int(c["person"])) == c["person"] for c in cells)
    names: dict[int, tuple[str, str]] = {}  # class -> (name, where first seen)
    people: list[PersonId] = []
    segments = []
    for row, line in zip(cells, lines, strict=True):
        where = f"{path}: {line}"
        person = _person_id(int(row["person"]) if as_int else row["person"], f"{where}: person")
        if person not in people:
            people.append(person)
        number = {k: _csv_number(row[k]) for k in ("start", "end", "class")}
        label = _integer(number["class"], f"{where}: class", NO_ACTION)
        name = row["name"]
        if label == NO_ACTION and name != NO_ACTION_NAME:
            raise AgcnError(f"{where}: name {_shown(name)} is not class -1's name {NO_ACTION_NAME!r}")
        if label != NO_ACTION and not name:
            raise AgcnError(f"{where}: class {label} has no name")
        first = names.setdefault(label, (name, line))
        if first[0] != name:
            raise AgcnError(f"{where}: class {label} is named {name!r} here, {first[0]!r} on {first[1]}")
        try:
            probability = float(row["probability"])
        except ValueError:
            probability = row["probability"]  # _segment says what was found
        segments.append(_segment({**number, "probability": probability}, person, label, name, where))
    _check_order(path, segments, lines)
    top = max((k for k in names if k != NO_ACTION), default=-1)
    classes = [names[k][0] if k in names else f"class {k}" for k in range(top + 1)]
    frames = max((s.end for s in segments), default=-1) + 1
    return SegmentsFile(path, None, frames, None, None, classes, people, segments)


def _is_int(text: str) -> bool:
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()


def _csv_number(text: str) -> int | str:
    """A CSV cell's integer, or the text itself for `_integer` to refuse."""
    return int(text) if _is_int(text) else text


# ---- drawing -------------------------------------------------------------------------------------


def class_colour(label: int) -> tuple[float, float, float]:
    """The RGB colour of class `label` in every timeline: light grey for no action (-1), the
    figures' palette for the first classes, then hues a golden angle apart at three shades (as
    many classes as a model has, each its own colour whatever the file)."""
    from matplotlib.colors import to_rgb

    if label == NO_ACTION:
        return to_rgb(_NO_ACTION_COLOUR)
    if label < len(PALETTE):
        return to_rgb(PALETTE[label])
    saturation, value = ((0.75, 0.8), (0.5, 0.95), (0.9, 0.55))[label % 3]
    return colorsys.hsv_to_rgb((label * 0.618034) % 1.0, saturation, value)


def timeline_figure(segments: SegmentsFile, title: str | None = None, fps: float | None = None) -> Any:
    """One row per person (top to bottom in the file's order), frames along x (seconds on top
    with `fps`), a bar per segment coloured by class (`class_colour`) and named on the bar where
    the name fits; a legend of the classes that occur. Each bar's gid is `s<i>`, i its index in
    `segments.segments`, for reading the drawing back."""
    from matplotlib.patches import Patch

    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise AgcnError(f"--fps {fps}: expected the recording's frames per second, a number > 0")
    people, bars = segments.people, segments.segments
    if not people:
        raise AgcnError(f"{segments.path}: no people in the file; nothing to draw")
    row = {p: r for r, p in enumerate(people)}
    present = sorted({s.cls for s in bars}, key=lambda k: (k == NO_ACTION, k))  # no action last
    columns = max(1, math.ceil(len(present) / _LEGEND_ROWS))
    height = max(len(people) * _ROW_PX, min(len(present), _LEGEND_ROWS) * 18) + 110 + (30 if fps else 0)
    fig = new_figure(1200 + 180 * (columns - 1), max(240, height))
    ax = fig.add_subplot(1, 1, 1)

    drawn = ax.barh([row[s.person] for s in bars], [s.end + 1 - s.start for s in bars],
                    left=[s.start for s in bars], height=0.7, color=[class_colour(s.cls) for s in bars],
                    linewidth=0)  # fmt: skip
    for i, bar in enumerate(drawn):
        bar.set_gid(f"s{i}")
    last = max([segments.frames] + [s.end + 1 for s in bars])
    ax.set_xlim(0, max(last, 1))
    ax.set_ylim(len(people) - 0.5, -0.5)  # the first person on top
    ax.set_yticks(range(len(people)), [_person_label(p) for p in people], fontsize=8 if len(people) <= 12 else 7)
    ax.set_ylabel("person")
    ax.set_xlabel("frame")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if fps:
        top = ax.secondary_xaxis("top", functions=(lambda f: f / fps, lambda t: t * fps))
        top.set_xlabel(f"seconds ({fps:g} frames per second)")
    if title is None:
        source = "stdin" if segments.input == "-" else segments.input
        facts = [f for f in (source, segments.window and f"window {segments.window}",
                             segments.stride and f"stride {segments.stride}") if f]  # fmt: skip
        title = segments.path.name + (f" ({', '.join(facts)})" if facts else "")
    ax.set_title(title, fontsize=10)
    names = {k: (NO_ACTION_NAME if k == NO_ACTION else segments.classes[k]) for k in present}
    handles = [Patch(facecolor=class_colour(k), label=names[k]) for k in present]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, ncols=columns,
                  frameon=False, title="class", title_fontsize=8)  # fmt: skip
    fig.tight_layout()
    _name_bars(fig, ax, bars, row)
    return fig


def _person_label(person: PersonId) -> str:
    return " & ".join(map(str, person)) if isinstance(person, tuple) else str(person)


def _name_bars(fig: Any, ax: Any, bars: Sequence[Segment], row: dict) -> None:
    """Write each class name on its bar where the bar (as laid out) is wide enough for it."""
    from matplotlib.font_manager import FontProperties

    renderer = fig.canvas.get_renderer()
    font = FontProperties(size=7)
    widths: dict[str, float] = {}
    x0, x1 = ax.get_xlim()
    px_per_frame = ax.get_window_extent(renderer).width / (x1 - x0)
    for s in bars:
        if s.name not in widths:
            widths[s.name] = renderer.get_text_width_height_descent(s.name, font, ismath=False)[0]
        if widths[s.name] + _LABEL_PAD_PX > (s.end + 1 - s.start) * px_per_frame:
            continue
        r, g, b = class_colour(s.cls)
        ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
        ax.text((s.start + s.end + 1) / 2, row[s.person], s.name, ha="center", va="center", fontproperties=font,
                color=ink, clip_on=True, in_layout=False)  # fmt: skip


def draw_timeline(segments: SegmentsFile, out: Path, title: str | None = None, fps: float | None = None) -> Path:
    """`timeline_figure` written to `out` (.png, .pdf or .svg, by suffix), atomically."""
    check_suffix(Path(out), IMAGE_SUFFIXES)
    save_figure(timeline_figure(segments, title, fps), Path(out))
    return Path(out)
