"""Skeleton pictures for `agcn show`: a sample of a split file, or a raw NTU `.skeleton` file (with
`compare`: its bodies as parsed beside what each preprocessing recipe keeps).

A `Scene` is one panel's data; `render_scenes` draws scenes side by side as an animation (.gif, .mp4)
or, for a .png, as a strip of evenly spaced frames (one row per scene). Views are fixed:
- `z-up`: 3D data pre-normalised by agcn (the spine on +z, the shoulders on +x);
- `y-up`: 3D data as given, e.g. Kinect camera space (y up, z the depth from the camera);
- `image`: 2D data in image coordinates (y down).
A joint whose coordinates are all zero is absent (agcn's zero padding) and is not drawn, and
neither is a person absent in a frame. Frames are 0-based, as `--frames a:b` counts them.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..skeleton.layouts import Layout, get_layout
from ..skeleton.streams import STREAMS, compute_stream
from .figure import ANIMATION_SUFFIXES, IMAGE_SUFFIXES, PALETTE, check_suffix, new_figure, save_figure, write_animation

PANEL_PX = (480, 480)  # one panel of an animation, in pixels
STRIP_PX = (240, 240)  # one frame of a .png strip
STRIP_FRAMES = 8  # frames in a .png strip (fewer when the selection has fewer)
FPS = 30.0  # NTU RGB+D's Kinect rate; --every k plays at FPS / k, so the clip keeps its real speed
VIEWS = ("z-up", "y-up", "image")


@dataclass
class Scene:
    """One panel: persons' joints over time, drawn with the layout's bones."""

    title: str
    layout: Layout
    joints: np.ndarray  # (M, T, V, D) float64 coordinates (D = 2 or 3); NaN where absent
    view: str  # one of VIEWS
    labels: list[str]  # legend entry per person ("" for none)
    colours: list[str]  # per person
    vectors: np.ndarray | None = None  # (M, T, S, 2, D) a stream's segments (start, end); NaN = none
    note: str = ""  # appended to the title, e.g. "motion x10"
    name: str = ""  # the sample's name
    frame_labels: list[list[str | None]] | None = None  # [m][t]: text by person m's head in frame t (None: none)

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[1])


@dataclass
class Rendered:
    path: Path
    frames: list[int] = field(default_factory=list)  # the frame indices drawn


# ---- scenes ------------------------------------------------------------------------------------


def coordinates(sample: np.ndarray, layout: Layout) -> np.ndarray:
    """(C, T, V, M) -> (M, T, V, D) float64 coordinates without a score channel, NaN where absent:
    a person in a frame whose values are all zero (padding), a joint with a zero detection score.
    A single joint at zero is drawn: pre-normalisation puts the centre joint there."""
    values = np.asarray(sample, dtype=np.float64).transpose(3, 1, 2, 0)  # (M, T, V, C)
    score = layout.channels[-1] == "score"
    d = _coordinate_count(layout)
    xyz = values[..., :d].copy()
    xyz[(values == 0).all(axis=(2, 3))] = np.nan
    if score:
        xyz[values[..., -1] == 0] = np.nan
    return xyz


def _coordinate_count(layout: Layout) -> int:
    """2 or 3: the channels drawn as coordinates (a score channel and any past the third are not)."""
    d = min(3, len(layout.channels) - (layout.channels[-1] == "score"))
    if d < 2:
        raise AgcnError(f"layout {layout.name}: {d} coordinate channel(s); drawing needs 2 (x, y) or 3 (x, y, z)")
    return d


def view_of(layout: Layout, normalised: bool) -> str:
    if _coordinate_count(layout) == 2:
        return "image"
    return "z-up" if normalised and layout.normalize else "y-up"


def _person_labels(joints: np.ndarray) -> list[str]:
    return [f"person {m + 1}" if np.isfinite(joints[m]).any() else "" for m in range(len(joints))]


def stream_vectors(joints: np.ndarray, values: np.ndarray, stream: str, layout: Layout) -> tuple[np.ndarray, str]:
    """Segments that show a bone or motion stream on the skeleton `joints` (M, T, V, D):
    a bone from its parent joint (it ends on the child joint when the stream is right), a motion
    from its joint, scaled up to be seen (the scale is returned as a note)."""
    if stream == "bone":
        parents = layout.bone_parents()
        start, end = joints[:, :, parents], joints[:, :, parents] + values
        start[:, :, parents == np.arange(len(parents))] = np.nan  # the root's bone is zero by definition
        return np.stack([start, end], axis=3), ""
    flat = joints[np.isfinite(joints).all(axis=-1)]  # (present joints, D)
    extent = float((flat.max(axis=0) - flat.min(axis=0)).max()) if len(flat) else 1.0
    lengths = np.linalg.norm(np.nan_to_num(values), axis=-1)
    typical = float(np.percentile(lengths[lengths > 0], 95)) if (lengths > 0).any() else 0.0
    # the power of ten that makes a typical (95th percentile) motion about a tenth of the body
    scale = int(10 ** max(0, round(np.log10(0.1 * extent / typical)))) if typical and extent else 1
    return np.stack([joints, joints + scale * values], axis=3), (f"motion x{scale}" if scale > 1 else "")


def split_scene(path: Path, sample: str | int, stream: str = "joint") -> Scene:
    """One sample of a split file, named `sample` (a str) or the `sample`-th (an int, 0-based), as a
    scene of its `stream`."""
    from ..evaluation.metrics import class_names
    from ..io.splitfile import (
        check_split_file,
        read_meta,
        read_samples,
        split_label_names,
        split_layout,
        stored_streams,
    )

    if stream not in STREAMS:
        raise AgcnError(f"unknown stream {stream!r}; choose one of: {', '.join(STREAMS)}")
    attrs = check_split_file(path)
    layout = split_layout(attrs, path)
    names = read_meta(path, ("name",), check=False)["name"]
    if not len(names):
        raise AgcnError(f"{path}: the file holds no sample")
    some = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    if isinstance(sample, str):
        found = np.flatnonzero(names == sample)
        if not len(found):
            raise AgcnError(f"{path}: no sample named {sample!r} ({len(names)} samples: {some})")
        i = int(found[0])
    elif 0 <= sample < len(names):
        i, sample = int(sample), str(names[sample])
    else:
        raise AgcnError(f"{path}: no sample {sample}; the file has {len(names)} (0-{len(names) - 1}: {some})")
    ((joint, label, _),) = read_samples(path, [i])  # (C, T, V, M)
    if stream in stored_streams(path):
        ((values, _, _),) = read_samples(path, [i], stream)
    else:
        values = compute_stream(joint, stream, layout)
    names_by_label = class_names(int(attrs["num_classes"]), str(attrs.get("benchmark", "")),
                                 split_label_names(attrs, path))  # fmt: skip
    title = f"{sample}: {label_text(label, names_by_label)}"
    joints = coordinates(joint, layout)
    vectors, note = (None, "")
    if stream != "joint":
        d = joints.shape[-1]
        vectors, note = stream_vectors(joints, values.transpose(3, 1, 2, 0)[..., :d], stream, layout)
        note = ", ".join(s for s in (stream, note) if s)
    view = view_of(layout, bool(attrs.get("normalized", True)))
    return Scene(title, layout, joints, view, _person_labels(joints), list(PALETTE), vectors, note, sample)


def label_text(label: int, names: list[str]) -> str:
    """`label 12 (wear jacket)`, or `label 12` when the class has no name."""
    name = names[label] if 0 <= label < len(names) else f"class {label}"
    return f"label {label}" if name == f"class {label}" else f"label {label} ({name})"


def skeleton_scenes(path: Path, compare: bool = False) -> list[Scene]:
    """A raw NTU `.skeleton` file: every body as parsed (Kinect camera space), each by its body id
    and frame span; with `compare`, one more scene per recipe of what it keeps after body selection
    and pre-normalisation, its persons coloured as the body they came from."""
    from ..evaluation.metrics import ntu_class_names
    from ..sources.ntu import SkeletonError, parse_name, parse_skeleton
    from ..sources.recipes import RECIPES

    path = Path(path)
    sk = parse_skeleton(path)
    layout = get_layout("ntu25")
    ids = list(dict.fromkeys(sk.body_id.tolist()))  # in order of first appearance
    row = {b: i for i, b in enumerate(ids)}
    raw = np.full((len(ids), sk.num_frames, layout.num_joints, 3), np.nan)
    raw[[row[b] for b in sk.body_id.tolist()], sk.frame] = sk.xyz
    raw[(raw == 0).all(axis=-1)] = np.nan
    if not np.isfinite(raw).any():
        raise AgcnError(f"{path}: no body in any of its {sk.num_frames} frame(s); nothing to draw")
    spans = [np.flatnonzero(np.isfinite(raw[i]).any(axis=(1, 2))) for i in range(len(ids))]
    labels = [
        f"body {b} (frames {s[0]}-{s[-1]})" if len(s) else f"body {b} (no joints)"
        for b, s in zip(ids, spans, strict=True)
    ]
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(ids))]
    try:
        action = label_text(parse_name(path.name).label, list(ntu_class_names()))
    except SkeletonError:
        action = "no NTU name, no label"
    title = f"{path.stem}: {action}"
    if not compare:
        return [Scene(f"{title}; {len(ids)} bodies as parsed", layout, raw, "y-up", labels, colours)]
    scenes, verdicts = [], [[] for _ in ids]
    for recipe in RECIPES:
        scene, kept = _recipe_scene(sk, recipe, layout, raw, ids, colours)
        scenes.append(scene)
        for i, b in enumerate(ids):
            verdicts[i].append(f"{recipe} {'kept' if b in kept else 'dropped'}")
    labels = [f"{label}: {', '.join(v)}" for label, v in zip(labels, verdicts, strict=True)]
    return [Scene(f"{title}; raw, {len(ids)} bodies", layout, raw, "y-up", labels, colours), *scenes]


def _recipe_scene(sk, recipe: str, layout: Layout, raw: np.ndarray, ids: list[int], colours: list[str]):
    """The scene of what `recipe` keeps, and the body ids its persons came from."""
    from ..sources.recipes import make_sample, select_bodies_2sagcn, select_bodies_mmaction2

    try:
        sample, persons = make_sample(sk, recipe, layout.normalize)  # (M, T, V, C)
        selected = (select_bodies_mmaction2 if recipe == "mmaction2" else select_bodies_2sagcn)(sk)
    except AgcnError as e:
        empty = np.full((0, 1, layout.num_joints, 3), np.nan)
        return Scene(f"{recipe}: {e}", layout, empty, "z-up", [], []), set()
    joints = coordinates(sample.transpose(3, 1, 2, 0), layout)
    sources = [_matching_bodies(person, raw, ids) for person in selected[: len(joints)]]
    labels, person_colours = [], []
    for m in range(len(joints)):
        found = sources[m] if m < len(sources) else Counter()
        named = ", ".join(str(b) for b, _ in found.most_common())
        labels.append(f"person {m + 1} = body {named}" if found else ("" if not np.isfinite(joints[m]).any() else
                                                                     f"person {m + 1}"))  # fmt: skip
        person_colours.append(colours[ids.index(found.most_common(1)[0][0])] if found else "grey")
    kept = {b for found in sources for b in found}
    title = f"{recipe}: {persons} person{'s' if persons != 1 else ''} kept, {joints.shape[1]} frames, normalised"
    return Scene(title, layout, joints, "z-up", labels, person_colours), kept


def _matching_bodies(person: np.ndarray, raw: np.ndarray, ids: list[int]) -> Counter:
    """How many frames of `person` (T, V, 3), a recipe's selection before normalisation, are each
    raw body's (B, F, V, 3) joints, to within float16 rounding (the mmaction2 recipe stores float16)."""
    present = np.abs(person).sum(axis=(1, 2)) > 0
    q = person[present].reshape(int(present.sum()), -1).astype(np.float64)  # (T', 75)
    entries = np.isfinite(raw).all(axis=(2, 3))  # (B, F)
    b_idx, _ = np.nonzero(entries)
    r = raw[entries].reshape(len(b_idx), -1)  # (K, 75)
    if not len(q) or not len(r):
        return Counter()
    d2 = (q**2).sum(1)[:, None] + (r**2).sum(1)[None, :] - 2 * q @ r.T  # (T', K) squared distances
    best = d2.argmin(axis=1)
    close = d2[np.arange(len(q)), best] < 1e-2  # float16 at 4 m is ~2 mm per value; bodies are decimetres apart
    return Counter(ids[b] for b in b_idx[best[close]])


# ---- frames ------------------------------------------------------------------------------------


def select_frames(total: int, frames: str | None = None, every: int = 1) -> list[int]:
    """The frame indices of `--frames a:b` (0-based, b excluded, either side may be left out) and
    `--every k` within `total` frames."""
    if every < 1:
        raise AgcnError(f"--every {every}: expected a positive step")
    start, stop = 0, total
    if frames:
        parts = frames.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            start = int(parts[0]) if parts[0].strip() else 0
            stop = int(parts[1]) if parts[1].strip() else total
        except ValueError:
            raise AgcnError(f"--frames {frames!r}: expected A:B (0-based, B excluded), e.g. 0:60") from None
        if not 0 <= start < stop:
            raise AgcnError(f"--frames {frames}: expected 0 <= A < B")
        if start >= total:
            raise AgcnError(f"--frames {frames}: the sample has {total} frames (0-{total - 1})")
    picked = list(range(start, min(stop, total), every))
    if not picked:
        raise AgcnError("no frame to draw: the sample has no frames")
    return picked


def strip_frames(picked: list[int], count: int = STRIP_FRAMES) -> list[int]:
    """`count` evenly spaced frames of `picked` (all of them when there are fewer)."""
    if len(picked) <= count:
        return list(picked)
    return [picked[int(round(i))] for i in np.linspace(0, len(picked) - 1, count)]


# ---- drawing -----------------------------------------------------------------------------------


def _to_plot(xyz: np.ndarray, view: str) -> np.ndarray:
    """Data coordinates (..., D) to the plot's axes: camera space's y (up) goes on the vertical axis."""
    return xyz[..., [0, 2, 1]] if view == "y-up" else xyz


class _Panel:
    """One scene on one axes: per person a bone line, a joint-marker line and a stream line, each
    one Line with NaN breaks between segments, updated frame by frame."""

    def __init__(self, fig, position: tuple[int, int, int], scene: Scene, legend: bool = True) -> None:
        self.scene = scene
        layout = scene.layout
        pairs = [(c, p) for c, p in layout.bones if c != p]
        v = layout.num_joints  # the NaN row appended to each frame's joints
        self.bone_index = np.array([[p, c, v] for c, p in pairs], dtype=np.int64).reshape(-1)
        self.joints = _to_plot(scene.joints, scene.view)
        self.vectors = None if scene.vectors is None else _to_plot(scene.vectors, scene.view)
        self.is3d = self.joints.shape[-1] == 3
        self.ax = fig.add_subplot(*position, **({"projection": "3d"} if self.is3d else {}))
        self._limits()
        faint = scene.vectors is not None  # a stream is drawn on a grey skeleton
        self.lines = []
        for m in range(len(self.joints)):
            colour = scene.colours[m] if m < len(scene.colours) else PALETTE[m % len(PALETTE)]
            label = scene.labels[m] if m < len(scene.labels) else ""
            bones = self._line(
                color="0.7" if faint else colour, lw=1.0 if faint else 2.0, label=None if faint else label
            )
            marks = self._line(color=colour, ls="", marker="o", ms=2.5)
            stream = self._line(color=colour, lw=1.8, label=label) if faint else None
            self.lines.append((bones, marks, stream))
        if legend and any(scene.labels):
            self.ax.legend(loc="upper left", fontsize=6, frameon=False)
        self.tags = []  # per person, the text of `scene.frame_labels` above their topmost joint
        for m in range(len(self.joints) if scene.frame_labels is not None else 0):
            colour = scene.colours[m] if m < len(scene.colours) else PALETTE[m % len(PALETTE)]
            box = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": colour, "alpha": 0.85}
            style = {"fontsize": 7, "color": colour, "ha": "center", "va": "bottom", "bbox": box, "visible": False}
            self.tags.append(self.ax.text(0, 0, 0, "", **style) if self.is3d else self.ax.text(0, 0, "", **style))

    def _line(self, **style):
        empty = [np.nan]
        if self.is3d:
            return self.ax.plot(empty, empty, empty, **style)[0]
        return self.ax.plot(empty, empty, **style)[0]

    def _limits(self) -> None:
        values = [self.joints] + ([] if self.vectors is None else [self.vectors])
        flat = np.concatenate([x.reshape(-1, x.shape[-1]) for x in values])
        flat = flat[np.isfinite(flat).all(axis=1)]
        lo, hi = (flat.min(axis=0), flat.max(axis=0)) if len(flat) else (np.full(3, -1.0), np.full(3, 1.0))
        d = self.joints.shape[-1]
        lo, hi = lo[:d], hi[:d]
        centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.05, 1e-3)
        self.half = half
        ax = self.ax
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_xticks([]), ax.set_yticks([])  # tick labels would be most of the drawing time, and say little
        if self.is3d:
            ax.set_zticks([])
            ax.set_zlim(centre[2] - half, centre[2] + half)
            ax.set_box_aspect((1, 1, 1))
            ax.view_init(elev=15, azim=-60 if self.scene.view == "z-up" else -75)
            names = ("x", "z (depth)", "y") if self.scene.view == "y-up" else ("x", "y", "z")
            (
                ax.set_xlabel(names[0], fontsize=7),
                ax.set_ylabel(names[1], fontsize=7),
                ax.set_zlabel(names[2], fontsize=7),
            )
        else:
            ax.set_aspect("equal")
            ax.invert_yaxis()  # image coordinates: y grows downwards

    def show(self, t: int, titled: bool = True) -> None:
        """Draw frame `t`; `titled`: the scene's title above the frame number (a strip titles its first column)."""
        scene = self.scene
        inside = t < scene.num_frames
        for m, (bones, marks, stream) in enumerate(self.lines):
            frame = self.joints[m, t] if inside else np.full(self.joints.shape[2:], np.nan)
            padded = np.concatenate([frame, np.full((1, frame.shape[-1]), np.nan)])
            self._set(bones, padded[self.bone_index])
            self._set(marks, frame)
            if stream is not None:
                segs = self.vectors[m, t] if inside else np.full(self.vectors.shape[2:], np.nan)  # (S, 2, D)
                gap = np.full((len(segs), 1, segs.shape[-1]), np.nan)
                self._set(stream, np.concatenate([segs, gap], axis=1).reshape(-1, segs.shape[-1]))
        for m, tag in enumerate(self.tags):
            text = scene.frame_labels[m][t] if inside and m < len(scene.frame_labels) else None
            head = self._head(self.joints[m, t], m % 2) if text else None
            tag.set_visible(head is not None)
            if head is not None:
                tag.set_text(text)
                if self.is3d:
                    tag.set_position_3d(head)
                else:
                    tag.set_position(head)
        where = f"frame {t}/{scene.num_frames - 1}" if inside else f"ended (frames 0-{scene.num_frames - 1})"
        note = f", {scene.note}" if scene.note else ""
        self.ax.set_title(f"{scene.title}\n{where}{note}" if titled else f"\n{where}", fontsize=7, loc="left")

    def _head(self, frame: np.ndarray, row: int = 0) -> tuple[float, ...] | None:
        """Above the topmost joint of `frame` (V, D) in plot coordinates (3D: z up; 2D: y down), higher
        by a line for `row` 1 (every other person's, so that two people side by side do not hide each
        other's), or None when no joint is there."""
        present = np.isfinite(frame).all(axis=-1)
        if not present.any():
            return None
        up = 2 if self.is3d else 1
        joints = frame[present]
        top = joints[np.argmax(joints[:, up]) if self.is3d else np.argmin(joints[:, up])].copy()
        top[up] += (1 if self.is3d else -1) * (0.08 + 0.12 * row) * self.half
        return tuple(float(v) for v in top)

    def _set(self, line, points: np.ndarray) -> None:
        if self.is3d:
            line.set_data_3d(points[:, 0], points[:, 1], points[:, 2])
        else:
            line.set_data(points[:, 0], points[:, 1])


def frame_figure(scenes: list[Scene], t: int, size: tuple[int, int] = PANEL_PX):
    """The figure of frame `t`: the scenes side by side (for tests and notebooks)."""
    fig = new_figure(size[0] * len(scenes), size[1])
    for k, scene in enumerate(scenes):
        _Panel(fig, (1, len(scenes), k + 1), scene).show(t)
    return fig


def render_scenes(
    scenes: list[Scene],
    out: Path,
    frames: str | None = None,
    every: int = 1,
    progress: Callable[[int], None] = lambda _: None,
) -> Rendered:
    """Draw `scenes` into `out`: a .gif/.mp4 animation (scenes side by side) or a .png/.pdf/.svg
    strip of evenly spaced frames (a row per scene). Written atomically. `progress(1)` after
    each frame of an animation."""
    out = Path(out)
    suffix = check_suffix(out, ANIMATION_SUFFIXES + IMAGE_SUFFIXES)
    picked = select_frames(max(s.num_frames for s in scenes), frames, every)
    if suffix in IMAGE_SUFFIXES:
        shown = strip_frames(picked)
        fig = new_figure(STRIP_PX[0] * len(shown), STRIP_PX[1] * len(scenes))
        for r, scene in enumerate(scenes):
            for k, t in enumerate(shown):
                _Panel(fig, (len(scenes), len(shown), r * len(shown) + k + 1), scene, legend=k == 0).show(
                    t, titled=k == 0
                )
        save_figure(fig, out)
        return Rendered(out, shown)
    fig = new_figure(PANEL_PX[0] * len(scenes), PANEL_PX[1])
    panels = [_Panel(fig, (1, len(scenes), k + 1), scene) for k, scene in enumerate(scenes)]

    def update(t: int) -> None:
        for panel in panels:
            panel.show(t)
        progress(1)

    write_animation(fig, picked, update, out, FPS / every)
    return Rendered(out, picked)
