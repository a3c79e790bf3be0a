"""2D poses of an annotation file drawn on their video, with OpenCV: `agcn show FILE.pkl`.

`pose_clip` reads one annotation of an MMAction2/pyskl 2D annotation file (what `agcn extract`
writes): keypoints in pixels of the original frame, their scores, the video they came from
(`filename`). `draw_poses` draws one frame's persons on an RGB frame, one colour a person; a joint
whose score is under the threshold (or 0, not found) is left out, and so is every bone touching it.
`render_overlay` decodes the video and writes an .mp4 (OpenCV's mp4v), a .gif (Pillow) or a .png
strip of evenly spaced frames, atomically; with `beside`, each frame has the skeleton on a plain
panel of the same size to its right. Frame t of the annotation is the t-th decoded frame of the
video, as `agcn extract` numbers them.
"""

import os
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
from .render import FPS, Rendered, label_text, select_frames, strip_frames

OVERLAY_SUFFIXES = (".mp4", ".gif", ".png")
OVERLAY_MIN_SCORE = 0.3  # joints scored lower are not drawn (`--min-score`)
FRAME_SLACK = 0.1  # video and annotation may differ by this share of the annotation's frames; more: wrong video
STRIP_MAX_HEIGHT = 480  # a .png strip's frames are scaled down to this height, when taller
BESIDE_BACKGROUND = (255, 255, 255)  # the skeleton's panel with `beside`
# the 2D layouts an annotation file holds: keypoint (M, T, V, 2) with keypoint_score, by V
_LAYOUTS_2D = {sig[2]: name for sig, name in PKL_LAYOUTS.items() if sig[:2] == (2, True)}


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


def pose_clip(path: Path, sample: str | int | None = None) -> PoseClip:
    """The annotation of `path` named `sample` (a str), or the `sample`-th (an int, 0-based); None:
    the file's only one. One AgcnError line for a sample that is missing or not 2D poses."""
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
    where = f"{path}: {name}"
    kp, score = ann.get("keypoint"), ann.get("keypoint_score")
    layout = _layout_of(kp, score, where)
    kp, score = _numbers(kp, "keypoint", where), _numbers(score, "keypoint_score", where)
    m, t, v, _ = kp.shape
    if m == 0 or t == 0:
        raise AgcnError(f"{where}: keypoint (M, T, V, C) = {kp.shape} holds no {'person' if m == 0 else 'frame'}")
    if m > PKL_MAX_PERSONS or t > PKL_MAX_FRAMES:
        raise AgcnError(f"{where}: keypoint (M, T, V, C) = {kp.shape}: more than {PKL_MAX_PERSONS} persons or "
                        f"{PKL_MAX_FRAMES} frames")  # fmt: skip
    if score.shape != (m, t, v):
        raise AgcnError(f"{where}: keypoint_score has shape {score.shape}, expected (M, T, V) = {(m, t, v)}")
    total = ann.get("total_frames", t)
    if not isinstance(total, int | np.integer) or total != t:
        raise AgcnError(f"{where}: total_frames {total!r} but keypoint holds {t} frames")
    img_shape = ann.get("img_shape")
    if img_shape is not None:
        try:
            h, w = (int(s) for s in img_shape)
        except (TypeError, ValueError):
            raise AgcnError(f"{where}: img_shape {img_shape!r} is not (height, width)") from None
        if h <= 0 or w <= 0:
            raise AgcnError(f"{where}: img_shape {img_shape!r} is not a positive (height, width)")
        img_shape = (h, w)
    label = ann.get("label")
    if isinstance(label, int | np.integer) and not isinstance(label, bool) and label >= 0:
        caption = label_text(int(label), list(file_label_names(path, data) or ()))
    else:
        caption = "no label"
    video = ann.get("filename")
    video = str(video) if isinstance(video, str) and video.strip() else None
    return PoseClip(path, name, layout, kp, score, img_shape, caption, video)


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
    """`text` in white on a black box in the top-left corner of `image`, in place (ASCII only: OpenCV's
    Hershey fonts have no other characters)."""
    cv2 = opencv()
    h = image.shape[0]
    scale = max(0.4, 0.6 * h / 480)
    thick = max(1, round(scale * 1.5))
    text = text.encode("ascii", "replace").decode()
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(3, th // 3)
    cv2.rectangle(image, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(image, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def overlay_frame(
    clip: PoseClip,
    t: int,
    frame: np.ndarray,
    min_score: float = OVERLAY_MIN_SCORE,
    beside: bool = False,
    keypoints: np.ndarray | None = None,
) -> np.ndarray:
    """Frame `t` of `clip` as `agcn show` draws it: (H, W, 3) uint8 RGB, its poses on `frame` (with
    `beside`: (H, 2W, 3), the frame on the left, its poses on a plain panel on the right), the
    sample, the frame number and the label in the top-left corner. `keypoints`: the clip's
    (M, T, V, 2), scaled to the frame (default: as stored)."""
    kp = clip.keypoints if keypoints is None else keypoints
    # the graph's edges, not the bone tree: COCO-17's graph joins hips to shoulders, as pose viewers
    # draw a body, where its bone tree hangs the hips on the nose
    edges = clip.layout.edges()
    if beside:
        panel = np.empty_like(frame)
        panel[:] = BESIDE_BACKGROUND
        picture = np.concatenate([frame, draw_poses(panel, kp[:, t], clip.scores[:, t], edges, min_score)], axis=1)
    else:
        picture = draw_poses(frame, kp[:, t], clip.scores[:, t], edges, min_score)
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
) -> Rendered:
    """Draw `clip` on the frames of `video` into `out`: an .mp4 (mp4v, the video's frame rate, or 30
    fps, over `every`), a .gif, or a .png strip of evenly spaced frames; `frames` ("A:B") and
    `every` pick the frames as for `render_scenes`. Written atomically. The video must have the
    clip's frames, to within FRAME_SLACK (then the frames both have are drawn, and `note` says so).
    `progress(1)` after each frame drawn."""
    out = Path(out)
    suffix = check_suffix(out, OVERLAY_SUFFIXES)
    if not 0 <= min_score <= 1:
        raise AgcnError(f"--min-score {min_score}: expected a score in [0, 1]")
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
                    sink.add(overlay_frame(clip, t, frame, min_score, beside, keypoints))
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


class _Sink:
    """Where drawn frames go: `add` each (H, W', 3) RGB frame, then `close` writes the file;
    `release` frees what is held, whatever happened."""

    def add(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def release(self) -> None:
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
