"""Annotation files for `agcn show FILE.pkl`: 2D poses drawn on their video with OpenCV, or a sample
without a video drawn with matplotlib as `render` draws split-file samples; either with each
person's current action from a segments file of `agcn watch` written by them.

`read_annotation` picks one annotation of an MMAction2/pyskl annotation file. `annotation_clip`
checks it as 2D poses on a video (what `agcn extract` writes): keypoints in pixels of the original
frame, their scores, the video they came from (`filename`). `draw_poses` draws one frame's persons
on an RGB frame, one colour a person; a joint whose score is under the threshold (or 0, not found)
is left out, and so is every bone touching it. `render_overlay` decodes the video and writes an .mp4
(OpenCV's mp4v), a .gif (Pillow) or a .png strip of evenly spaced frames, atomically; with
`beside`, each frame has the skeleton on a plain panel of the same size to its right. Frame t of
the annotation is the t-th decoded frame of the video, as `agcn extract` numbers them.
`annotation_scene` makes a sample that names no video (3D keypoints, or 2D ones without
`filename`) a `render.Scene`, its coordinates as stored.

`segment_labels` reads a segments file for one sample: `agcn watch` numbers the people of an
annotation file by track, person m being keypoint row m (a pair `[a, b]` with `--pairs`; `NAME:m`
when it read several samples), so person m's label in frame t is "frames a-b name (p)" of their
segment holding t, drawn above their topmost joint in their colour.
"""

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.atomic import atomic_output
from ..pose.models import opencv
from ..pose.video import Decoded, VideoInfo, probe_video, video_frames
from ..skeleton.layouts import Layout, get_layout
from ..sources.pkl import (
    PKL_LAYOUTS,
    PKL_MAX_FRAMES,
    PKL_MAX_PERSONS,
    annotation_name,
    file_label_names,
    load_annotation_file,
)
from .figure import PALETTE, check_suffix
from .render import FPS, Rendered, Scene, label_text, select_frames, strip_frames, view_of
from .timeline import SegmentsFile

OVERLAY_SUFFIXES = (".mp4", ".gif", ".png")
OVERLAY_MIN_SCORE = 0.3  # joints scored lower are not drawn (`--min-score`)
FRAME_SLACK = 0.1  # video and annotation may differ by this share of the annotation's frames; more: wrong video
STRIP_MAX_HEIGHT = 480  # a .png strip's frames are scaled down to this height, when taller
BESIDE_BACKGROUND = (255, 255, 255)  # the skeleton's panel with `beside`
# the 2D layouts an annotation file holds: keypoint (M, T, V, 2) with keypoint_score, by V
_LAYOUTS_2D = {sig[2]: name for sig, name in PKL_LAYOUTS.items() if sig[:2] == (2, True)}
# each person's label in each frame, labels[m][t] (None: none), from a segments file of agcn watch
Labels = list[list[str | None]]


@dataclass
class Annotation:
    """One annotation of an annotation file, picked by `read_annotation`; its arrays not yet checked."""

    source: Path  # the annotation file
    name: str  # frame_dir
    fields: dict  # the annotation dict as the file holds it
    caption: str  # the label in words: "label 3 (wave)", or "no label"
    video: str | None  # `filename`: the path of its video, if it names one


@dataclass
class PoseClip:
    """One annotation of a 2D annotation file, checked."""

    source: Path  # the annotation file
    name: str  # frame_dir
    layout: Layout
    keypoints: np.ndarray  # (M, T, V, 2) float32 pixel x, y in the original frame
    scores: np.ndarray  # (M, T, V) float32 in [0, 1]; 0 = not found
    img_shape: tuple[int, int] | None  # (H, W) of the frames the keypoints are in, if the file says
    caption: str  # the label in words: "label 3 (wave)", or "no label"
    video: str | None  # the annotation's `filename`: the path of its video, if it names one

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[1])


# ---- the annotation ----------------------------------------------------------------------------


def read_annotation(path: Path, sample: str | int | None = None) -> Annotation:
    """The annotation of `path` named `sample` (a str), or the `sample`-th (an int, 0-based); None:
    the file's only one. One AgcnError line for a sample that is missing."""
    path = Path(path)
    data = load_annotation_file(path)
    annotations = data["annotations"]
    names = [annotation_name(a) for a in annotations]
    if not annotations:
        raise AgcnError(f"{path}: the file holds no annotation")
    some = ", ".join(str(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
    if sample is None:
        if len(annotations) > 1:
            raise AgcnError(f"{path}: which sample? Pass --sample NAME or --index N ({len(names)} samples: {some})")
        i = 0
    elif isinstance(sample, str):
        if sample not in names:
            raise AgcnError(f"{path}: no sample named {sample!r} ({len(names)} samples: {some})")
        i = names.index(sample)
    elif 0 <= sample < len(annotations):
        i = int(sample)
    else:
        raise AgcnError(f"{path}: no sample {sample}; the file has {len(names)} (0-{len(names) - 1}: {some})")
    ann = annotations[i]
    if not isinstance(ann, dict):
        raise AgcnError(f"{path}: annotation {i} is a {type(ann).__name__}, not an annotation dict")
    name = names[i] if names[i] is not None else f"annotation {i}"
    label = ann.get("label")
    if isinstance(label, int | np.integer) and not isinstance(label, bool) and label >= 0:
        caption = label_text(int(label), list(file_label_names(path, data) or ()))
    else:
        caption = "no label"
    video = ann.get("filename")
    video = str(video) if isinstance(video, str) and video.strip() else None
    return Annotation(path, name, ann, caption, video)


def pose_clip(path: Path, sample: str | int | None = None) -> PoseClip:
    """`annotation_clip` of `read_annotation(path, sample)`."""
    return annotation_clip(read_annotation(path, sample))


def annotation_clip(a: Annotation) -> PoseClip:
    """`a` as 2D poses on a video, checked; one AgcnError line for a sample that is not 2D poses."""
    where = f"{a.source}: {a.name}"
    kp, score = a.fields.get("keypoint"), a.fields.get("keypoint_score")
    layout = _layout_of(kp, score, where)
    kp, score = _checked(a, kp, score)
    img_shape = a.fields.get("img_shape")
    if img_shape is not None:
        try:
            h, w = (int(s) for s in img_shape)
        except (TypeError, ValueError):
            raise AgcnError(f"{where}: img_shape {img_shape!r} is not (height, width)") from None
        if h <= 0 or w <= 0:
            raise AgcnError(f"{where}: img_shape {img_shape!r} is not a positive (height, width)")
        img_shape = (h, w)
    return PoseClip(a.source, a.name, layout, kp, score, img_shape, a.caption, a.video)


def _checked(a: Annotation, kp: object, score: object) -> tuple[np.ndarray, np.ndarray | None]:
    """keypoint (M, T, V, C) and keypoint_score (M, T, V) or None as float32, their sizes checked
    against each other, the limits and `total_frames`."""
    where = f"{a.source}: {a.name}"
    kp = _numbers(kp, "keypoint", where)
    score = None if score is None else _numbers(score, "keypoint_score", where)
    m, t, v, _ = kp.shape
    if m == 0 or t == 0:
        raise AgcnError(f"{where}: keypoint (M, T, V, C) = {kp.shape} holds no {'person' if m == 0 else 'frame'}")
    if m > PKL_MAX_PERSONS or t > PKL_MAX_FRAMES:
        raise AgcnError(f"{where}: keypoint (M, T, V, C) = {kp.shape}: more than {PKL_MAX_PERSONS} persons or "
                        f"{PKL_MAX_FRAMES} frames")  # fmt: skip
    if score is not None and score.shape != (m, t, v):
        raise AgcnError(f"{where}: keypoint_score has shape {score.shape}, expected (M, T, V) = {(m, t, v)}")
    total = a.fields.get("total_frames", t)
    if not isinstance(total, int | np.integer) or total != t:
        raise AgcnError(f"{where}: total_frames {total!r} but keypoint holds {t} frames")
    return kp, score


def _layout_of(kp: object, score: object, where: str) -> Layout:
    shape = kp.shape if isinstance(kp, np.ndarray) else None
    if shape is not None and len(shape) == 4 and shape[3] == 2 and shape[2] in _LAYOUTS_2D and score is not None:
        return get_layout(_LAYOUTS_2D[shape[2]])
    found = f"keypoint of shape {shape}" if shape is not None else f"keypoint {type(kp).__name__}"
    found += " with keypoint_score" if score is not None else " without keypoint_score"
    raise AgcnError(
        f"{where}: {found}; agcn show draws 2D poses on their video: keypoint (M, T, 17, 2) (COCO-17) or "
        "(M, T, 18, 2) (OpenPose-18) in pixels, with keypoint_score (M, T, V)"
    )


def _numbers(value: object, what: str, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or not (
        np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
    ):
        raise AgcnError(f"{where}: {what} is not a numeric array")
    value = value.astype(np.float32, copy=False)
    if not np.isfinite(value).all():
        raise AgcnError(f"{where}: {what} has NaN or infinite values (a joint not found has score 0)")
    return value


def clip_video(clip: PoseClip, given: Path | None = None) -> Path:
    """The video of `clip`: `given`, else the annotation's `filename` as it is or beside the
    annotation file; one AgcnError line when neither is there."""
    if given is not None:
        return Path(given)
    where = f"{clip.source}: {clip.name}"
    if clip.video is None:
        raise AgcnError(f"{where}: the annotation names no video (no 'filename'); pass --video PATH")
    video = Path(clip.video)
    for candidate in (video,) if video.is_absolute() else (video, clip.source.parent / video):
        if candidate.is_file():
            return candidate
    raise AgcnError(f"{where}: its video {clip.video} is not there; pass --video PATH")


# ---- without a video ---------------------------------------------------------------------------


def annotation_scene(a: Annotation, min_score: float | None = None, segments: SegmentsFile | None = None) -> Scene:
    """`a`, a sample that names no video, as a scene of `render`: its keypoints as stored (3D: as
    given, y up; 2D: pixels, y down), person m as `person m` (the id agcn watch gives it), a person
    whose keypoints in a frame are all zero absent there; 2D joints scored under `min_score`
    (default OVERLAY_MIN_SCORE) or 0 left out. With `segments`: each person's current label
    (`segment_labels`) drawn by them."""
    where = f"{a.source}: {a.name}"
    kp, score = a.fields.get("keypoint"), a.fields.get("keypoint_score")
    shape = kp.shape if isinstance(kp, np.ndarray) else None
    signature = (shape[3], score is not None, shape[2]) if shape is not None and len(shape) == 4 else None
    if signature not in PKL_LAYOUTS:
        found = f"keypoint of shape {shape}" if shape is not None else f"keypoint {type(kp).__name__}"
        found += " with keypoint_score" if score is not None else " without keypoint_score"
        raise AgcnError(
            f"{where}: {found}; agcn show draws keypoint (M, T, 25, 3) (NTU-25 3D), (M, T, 17, 3) (COCO-17 3D), "
            "or (M, T, 17, 2) / (M, T, 18, 2) in pixels with keypoint_score (COCO-17, OpenPose-18)"
        )
    layout = get_layout(PKL_LAYOUTS[signature])
    kp, score = _checked(a, kp, score)
    if score is None and min_score is not None:
        raise AgcnError(f"{where}: --min-score is for 2D keypoints with scores; this sample's keypoints are 3D")
    joints = kp.astype(np.float64)  # (M, T, V, D)
    joints[(kp == 0).all(axis=(2, 3))] = np.nan  # a person absent in a frame: all zeros (padding)
    if score is not None:
        floor = OVERLAY_MIN_SCORE if min_score is None else min_score
        joints[(score < floor) | (score <= 0)] = np.nan
    m, t = kp.shape[:2]
    people = [f"person {i}" if np.isfinite(joints[i]).any() else "" for i in range(m)]
    colours = [PALETTE[i % len(PALETTE)] for i in range(m)]
    labels = None if segments is None else segment_labels(segments, a.name, m, t)
    title = f"{a.name}: {a.caption}"
    return Scene(title, layout, joints, view_of(layout, False), people, colours, name=a.name, frame_labels=labels)


# ---- segments ----------------------------------------------------------------------------------


def segment_labels(segments: SegmentsFile, sample: str, persons: int, frames: int) -> Labels:
    """Each person's label in each frame of `sample` (`persons` keypoint rows, `frames` frames) from
    a segments file of agcn watch, labels[m][t]: "frames a-b name (p)" of person m's segment holding
    frame t (a pair's segment is both persons'), None outside their segments. Person ids: the row m
    (a CSV's "m"), a pair (a, b) ("a+b"), or "NAME:m" / "NAME:a+b" where agcn watch read several
    samples (those of other samples are left out). One AgcnError line, naming the file and the id,
    for a person the sample does not have, or a segment past its frames."""
    path = segments.path
    labels: Labels = [[None] * frames for _ in range(persons)]
    others = []  # ids of other samples
    for s in segments.segments:
        rows = _rows_of(s.person, sample, persons, path)
        if rows is None:
            others.append(s.person)
            continue
        if s.start >= frames:
            raise AgcnError(
                f"{path}: person {_id_text(s.person)}'s segment at frames {s.start}-{s.end} starts past the last frame "
                f"of {sample} ({frames} frames, 0-{frames - 1}); is it the segments file of this sample?"
            )
        text = f"frames {s.start}-{s.end} {s.name} ({s.probability:.2f})"
        for m in rows:
            for t in range(s.start, min(s.end, frames - 1) + 1):
                labels[m][t] = text if labels[m][t] is None else f"{labels[m][t]}; {text}"
    if others and len(others) == len(segments.segments):
        some = ", ".join(_id_text(p) for p in dict.fromkeys(others[:20]))
        raise AgcnError(f"{path}: no segment of sample {sample}; the file's people are of other samples ({some})")
    return labels


def _rows_of(person: object, sample: str, persons: int, path: Path) -> tuple[int, ...] | None:
    """The keypoint rows of a person id of agcn watch (one, or two for a pair); None: another sample's."""
    parts: tuple = person if isinstance(person, tuple) else (person,)
    if isinstance(person, str):
        text = person
        if ":" in text:  # agcn watch of several samples: "NAME:id"
            name, text = text.rsplit(":", 1)
            if name != sample:
                return None
        parts = tuple(text.split("+"))  # a pair in a CSV: "a+b"
    rows = []
    for p in parts:
        row = int(p) if isinstance(p, str) and p.isascii() and p.isdigit() else p
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < persons:
            raise AgcnError(
                f"{path}: person {_id_text(person)} is not one of sample {sample}'s people: agcn watch numbers the "
                f"people of an annotation file by their keypoint row, 0-{persons - 1} here"
            )
        rows.append(row)
    return tuple(rows)


def _id_text(person: object) -> str:
    return f"[{person[0]!r}, {person[1]!r}]" if isinstance(person, tuple) else repr(person)


# ---- drawing -----------------------------------------------------------------------------------


@cache
def person_rgb(m: int) -> tuple[int, int, int]:
    """Person `m`'s colour, 0-255 RGB: `agcn show`'s palette, as its matplotlib drawings use it."""
    from matplotlib.colors import to_rgb

    return tuple(int(round(255 * c)) for c in to_rgb(PALETTE[m % len(PALETTE)]))


def draw_poses(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    edges: Sequence[tuple[int, int]],
    min_score: float = OVERLAY_MIN_SCORE,
    colours: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """A copy of `image` (H, W, 3) uint8 RGB with the persons of one frame drawn on it: `keypoints`
    (M, V, 2) pixel x, y, `scores` (M, V). Each of the `edges` (joint pairs) is a line, each joint a
    dot, in person m's colour (`colours[m]`, default `person_rgb(m)`); a joint scored below
    `min_score`, or 0 (not found), is not drawn, nor is any edge touching it. Lines and dots grow
    with the frame: 3 px lines on a 480-line frame."""
    cv2 = opencv()
    out = np.array(image, dtype=np.uint8, order="C", copy=True)
    h, w = out.shape[:2]
    thick = max(2, round(min(h, w) / 160))
    radius = thick + 2
    shown = (np.asarray(scores) >= min_score) & (np.asarray(scores) > 0)  # (M, V)
    pairs = np.asarray(edges, dtype=np.int64).reshape(-1, 2)  # (E, 2)
    drawn = shown[:, pairs[:, 0]] & shown[:, pairs[:, 1]]  # (M, E)
    limit = 8 * max(h, w)  # far-off points clipped: OpenCV takes 32-bit coordinates
    points = np.clip(np.rint(keypoints), -limit, limit).astype(np.int64)  # (M, V, 2)
    for m in range(len(points)):
        colour = tuple(int(c) for c in (colours[m] if colours is not None else person_rgb(m)))
        for a, b in pairs[drawn[m]]:
            cv2.line(out, tuple(points[m, a].tolist()), tuple(points[m, b].tolist()), colour, thick, cv2.LINE_AA)
        for v in np.flatnonzero(shown[m]):
            cv2.circle(out, tuple(points[m, v].tolist()), radius, colour, -1, cv2.LINE_AA)
    return out


def _caption(image: np.ndarray, text: str) -> None:
    """`text` in white on a black box in the top-left corner of `image`, in place."""
    _boxed_text(image, text, max(0.4, 0.6 * image.shape[0] / 480), (255, 255, 255))


def _boxed_text(
    image: np.ndarray, text: str, scale: float, colour: tuple[int, int, int], above: tuple[int, int] | None = None
) -> None:
    """`text` in `colour` on a black box, in place: in the top-left corner of `image`, or centred just
    above the point `above` (x, y), kept inside the image (ASCII only: OpenCV's Hershey fonts have no
    other characters)."""
    cv2 = opencv()
    thick = max(1, round(scale * 1.5))
    text = text.encode("ascii", "replace").decode()
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(3, th // 3)
    bw, bh = tw + 2 * pad, th + base + 2 * pad
    x0 = y0 = 0
    if above is not None:
        h, w = image.shape[:2]
        x0 = min(max(above[0] - bw // 2, 0), max(w - bw, 0))
        y0 = min(max(above[1] - bh, 0), max(h - bh, 0))
    cv2.rectangle(image, (x0, y0), (x0 + bw, y0 + bh), (0, 0, 0), -1)
    cv2.putText(image, text, (x0 + pad, y0 + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def draw_labels(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    texts: Sequence[str | None],
    min_score: float = OVERLAY_MIN_SCORE,
) -> None:
    """Each person's `texts[m]` (None: nothing) in their colour on a black box above their head,
    the topmost joint `draw_poses` draws of `keypoints` (M, V, 2) with `scores` (M, V), in place; a
    person with no joint drawn gets no text."""
    h, w = image.shape[:2]
    scale = max(0.35, 0.5 * min(h, w) / 480)
    gap = max(2, round(min(h, w) / 160)) + 4  # clear of the head's dot
    shown = (np.asarray(scores) >= min_score) & (np.asarray(scores) > 0)  # (M, V)
    limit = 8 * max(h, w)
    for m, text in enumerate(texts):
        if not text or not shown[m].any():
            continue
        joints = np.flatnonzero(shown[m])
        x, y = np.clip(np.rint(keypoints[m, joints[np.argmin(keypoints[m, joints, 1])]]), -limit, limit)
        _boxed_text(image, text, scale, person_rgb(m), (int(x), int(y) - gap))


def overlay_frame(
    clip: PoseClip,
    t: int,
    frame: np.ndarray,
    min_score: float = OVERLAY_MIN_SCORE,
    beside: bool = False,
    keypoints: np.ndarray | None = None,
    labels: Labels | None = None,
) -> np.ndarray:
    """Frame `t` of `clip` as `agcn show` draws it: (H, W, 3) uint8 RGB, its poses on `frame` (with
    `beside`: (H, 2W, 3), the frame on the left, its poses on a plain panel on the right), the
    sample, the frame number and the label in the top-left corner. `keypoints`: the clip's
    (M, T, V, 2), scaled to the frame (default: as stored). `labels` (`segment_labels`): each
    person's label in frame t above their head, where their poses are drawn."""
    kp = clip.keypoints if keypoints is None else keypoints
    # the graph's edges, not the bone tree: COCO-17's graph joins hips to shoulders, as pose viewers
    # draw a body, where its bone tree hangs the hips on the nose
    edges = clip.layout.edges()
    if beside:
        panel = np.empty_like(frame)
        panel[:] = BESIDE_BACKGROUND
    poses = draw_poses(panel if beside else frame, kp[:, t], clip.scores[:, t], edges, min_score)
    if labels is not None:
        draw_labels(poses, kp[:, t], clip.scores[:, t], [row[t] for row in labels], min_score)
    picture = np.concatenate([frame, poses], axis=1) if beside else poses
    _caption(picture, f"{clip.name}  frame {t}/{clip.num_frames - 1}  {clip.caption}")
    return picture


# ---- the video ---------------------------------------------------------------------------------


def _keypoints_for(clip: PoseClip, info: VideoInfo, note: Callable[[str], None]) -> np.ndarray:
    """The clip's keypoints in pixels of the video's frames: scaled when `img_shape` says the
    annotation was made on a resized copy (same aspect), refused when the shapes do not fit."""
    if clip.img_shape is None or clip.img_shape == (info.height, info.width):
        return clip.keypoints
    h, w = clip.img_shape
    if abs(w / h - info.width / info.height) > 0.02 * info.width / info.height:
        raise AgcnError(
            f"{clip.source}: {clip.name}: img_shape (H, W) = {clip.img_shape} but {info.path} has "
            f"{info.width}x{info.height} frames, another aspect; is it the sample's video? Pass --video PATH"
        )
    note(f"{info.path}: {info.width}x{info.height} frames, the annotation's img_shape is {w}x{h}; keypoints scaled")
    return clip.keypoints * np.array([info.width / w, info.height / h], dtype=np.float32)


def render_overlay(
    clip: PoseClip,
    video: Path,
    out: Path,
    frames: str | None = None,
    every: int = 1,
    min_score: float = OVERLAY_MIN_SCORE,
    beside: bool = False,
    progress: Callable[[int], None] = lambda _: None,
    note: Callable[[str], None] = lambda _: None,
    segments: SegmentsFile | None = None,
) -> Rendered:
    """Draw `clip` on the frames of `video` into `out`: an .mp4 (mp4v, the video's frame rate, or 30
    fps, over `every`), a .gif, or a .png strip of evenly spaced frames; `frames` ("A:B") and
    `every` pick the frames as for `render_scenes`. Written atomically. The video must have the
    clip's frames, to within FRAME_SLACK (then the frames both have are drawn, and `note` says so).
    `progress(1)` after each frame drawn. With `segments`: each person's current label by them
    (`segment_labels`)."""
    out = Path(out)
    suffix = check_suffix(out, OVERLAY_SUFFIXES)
    if not 0 <= min_score <= 1:
        raise AgcnError(f"--min-score {min_score}: expected a score in [0, 1]")
    labels = None if segments is None else segment_labels(segments, clip.name, *clip.keypoints.shape[:2])
    info = probe_video(Path(video))
    keypoints = _keypoints_for(clip, info, note)
    total = clip.num_frames
    picked = select_frames(total, frames, every)
    wanted = strip_frames(picked) if suffix == ".png" else picked
    fps = (info.fps or FPS) / every  # 30 fps when the container says none; --every k plays at the video's speed
    limit = total + int(FRAME_SLACK * total)  # decoding stops past this many frames: not the sample's video
    drawn: list[int] = []
    decoded, count, wanted_set = Decoded(), 0, set(wanted)
    with atomic_output(out) as tmp:
        # OpenCV's writer chooses the container by the name's suffix: write `tmp` + suffix, then rename it to `tmp`
        scratch = tmp.with_name(tmp.name + suffix)
        sink = None
        try:
            sink = _sink(suffix, out, scratch if suffix == ".mp4" else tmp, fps, info, beside)
            for t, frame in enumerate(video_frames(info, decoded)):
                count = t + 1
                if count > limit:
                    break
                if t in wanted_set:
                    sink.add(overlay_frame(clip, t, frame, min_score, beside, keypoints, labels))
                    drawn.append(t)
                    progress(1)
            _check_count(clip, info, count, limit)
            if not drawn:
                raise AgcnError(f"{info.path}: {count} frames; none of the frames asked ({wanted[0]}-{wanted[-1]})")
            sink.close()
            if suffix == ".mp4":
                os.replace(scratch, tmp)
        finally:
            if sink is not None:
                sink.release()
            scratch.unlink(missing_ok=True)
    for problem in decoded.problems(info):
        note(f"{info.path}: {problem}")
    if count != total:
        common = min(count, total)
        note(f"{info.path} has {count} frames, {clip.source}: {clip.name} {total}; only the first {common} are drawn")
    return Rendered(out, drawn)


def _check_count(clip: PoseClip, info: VideoInfo, count: int, limit: int) -> None:
    total = clip.num_frames
    if abs(count - total) <= FRAME_SLACK * total:
        return
    found = f"{count}" if count <= limit else (f"{info.declared_frames}" if info.declared_frames > limit
                                               else f"more than {limit}")  # fmt: skip
    raise AgcnError(
        f"{clip.source}: {clip.name}: holds {total} frames but the video {info.path} has {found}; probably not "
        "the sample's video (pass --video PATH)"
    )


class _Sink(ABC):
    """Where drawn frames go: `add` each (H, W', 3) RGB frame, then `close` writes the file;
    `release` frees what is held, whatever happened."""

    @abstractmethod
    def add(self, frame: np.ndarray) -> None: ...

    def close(self) -> None:  # noqa: B027  (optional: a sink that writes as it goes has nothing left to write)
        pass

    def release(self) -> None:  # noqa: B027  (optional: a sink that holds nothing has nothing to free)
        pass


class _Mp4(_Sink):
    def __init__(self, out: Path, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.cv2 = opencv()
        self.writer = self.cv2.VideoWriter(str(path), self.cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise AgcnError(f"{out}: this OpenCV cannot write MP4 (mp4v); write a .gif or a .png strip instead")

    def add(self, frame: np.ndarray) -> None:
        self.writer.write(self.cv2.cvtColor(frame, self.cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self.release()

    def release(self) -> None:
        self.writer.release()


class _Gif(_Sink):
    def __init__(self, path: Path, fps: float) -> None:
        from PIL import Image

        self.image, self.path, self.fps, self.frames = Image, path, fps, []

    def add(self, frame: np.ndarray) -> None:
        # a palette of its own per frame, 1 byte a pixel held; the octree is ~40x faster than the median cut
        self.frames.append(self.image.fromarray(frame).quantize(method=self.image.Quantize.FASTOCTREE))

    def close(self) -> None:
        first, *rest = self.frames
        duration = max(20, round(1000 / self.fps))  # GIF counts in 10 ms; browsers slow anything faster than 20
        first.save(self.path, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0)


class _Strip(_Sink):
    def __init__(self, path: Path) -> None:
        self.cv2 = opencv()
        self.path, self.frames = path, []

    def add(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if h > STRIP_MAX_HEIGHT:
            size = (round(w * STRIP_MAX_HEIGHT / h), STRIP_MAX_HEIGHT)
            frame = self.cv2.resize(frame, size, interpolation=self.cv2.INTER_AREA)
        self.frames.append(frame)

    def close(self) -> None:
        ok, data = self.cv2.imencode(
            ".png", self.cv2.cvtColor(np.concatenate(self.frames, axis=1), self.cv2.COLOR_RGB2BGR)
        )
        if not ok:
            raise AgcnError(f"{self.path}: OpenCV could not encode the strip as PNG")
        self.path.write_bytes(data.tobytes())


def _sink(suffix: str, out: Path, path: Path, fps: float, info: VideoInfo, beside: bool) -> _Sink:
    """The writer of `out`'s kind, writing `path`."""
    if suffix == ".mp4":
        return _Mp4(out, path, fps, (info.width * (2 if beside else 1), info.height))
    if suffix == ".gif":
        return _Gif(path, fps)
    return _Strip(path)
