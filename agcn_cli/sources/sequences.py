"""Inputs as sequences of frames, for `agcn watch`: every input agcn reads, and a live stream of
JSON lines (data_specs/watch.md, "Input").

A `Frame` holds the people of one frame with their keypoints as the input has them before any
normalisation: pixels (2D, with scores) or metres (3D), and each person's id. `agcn watch` cuts
windows of a person's frames and converts each window as `agcn preprocess` converts a sample of the
same kind (`pkl.convert_annotation`: PreNormalize2D / PreNormalize3D), so a window equal to a whole
sample is that sample. Where an input holds samples already converted (a split `.h5` file, a
Kinetics-Skeleton video, converted at read as `agcn preprocess` does), `Sequence.stored` says so
and windows are cut from them as they are.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.splitfile import check_split_file, read_meta, read_samples, split_layout
from ..skeleton.layouts import Layout, get_layout
from ..skeleton.normalize import DEFAULT_IMG_SHAPE
from .extract import EXTRACT_LAYOUT, annotation, item_poses, list_items
from .kinetics import KINETICS_LAYOUT, read_video, video_sample
from .ntu import SkeletonError, parse_skeleton
from .ntu_convert import NTU_LAYOUT
from .pipeline import SampleError
from .pkl import annotation_name, choose_layout, load_annotation_file
from .recipes import select_bodies_mmaction2
from .samples import VIDEO_KIND, input_kind

STREAM_MAX_PEOPLE = 100  # people in one frame of a live stream
STREAM_MAX_LINE = 1 << 20  # bytes of one line


@dataclass
class Frame:
    t: int  # frame number
    keypoints: np.ndarray  # (P, V, C) float32: x, y (pixels) or x, y, z (metres); a split file's stored channels
    scores: np.ndarray | None  # (P, V) float32 for 2D keypoints, None for 3D and stored samples
    ids: list  # (P,) each person's id: int or str


@dataclass
class Sequence:
    """One input's sequence: its layout, how its windows are converted, its frames."""

    name: str
    source: str
    layout: Layout
    img_shape: tuple[int, int] | None  # (height, width) of 2D keypoints; None for 3D and stored
    stored: bool  # frames are samples as a split file stores them: windows are cut as they are
    frames: Iterable[Frame]
    total: int | None = None  # frames, when known before reading them


def _track_frames(keypoint: np.ndarray, score: np.ndarray | None) -> Iterator[Frame]:
    """Tracks (M, T, V, C) [+ scores (M, T, V)] -> frames with the persons present (any nonzero
    score, or joint), person m's id m."""
    present = (score > 0).any(-1) if score is not None else (keypoint != 0).any(axis=(-1, -2))  # (M, T)
    for t in range(keypoint.shape[1]):
        who = np.flatnonzero(present[:, t])
        yield Frame(t, keypoint[who, t], None if score is None else score[who, t], who.tolist())


def _from_annotation(ann: dict, source: str, layout: Layout) -> Sequence:
    kp = np.asarray(ann["keypoint"], np.float32)
    score = ann.get("keypoint_score")
    score = None if score is None else np.asarray(score, np.float32)
    if not np.isfinite(kp).all() or (score is not None and not np.isfinite(score).all()):
        raise AgcnError(f"{source}: keypoints or scores are NaN or infinite")
    shape = ann.get("img_shape")
    img_shape = (int(shape[0]), int(shape[1])) if shape is not None else None
    img_shape = img_shape or (DEFAULT_IMG_SHAPE if score is not None else None)
    name = str(annotation_name(ann))
    return Sequence(name, source, layout, img_shape, False, _track_frames(kp, score), kp.shape[1])


def _video_sequence(item) -> Sequence:
    """A video as BlazePose finds its person, frame by frame while it decodes (person id 0)."""
    from ..pose.poses import blazepose_frames
    from ..pose.video import Decoded, probe_video
    from .extract import pose_estimator

    layout = get_layout(EXTRACT_LAYOUT)
    info = probe_video(item.path)
    v = layout.num_joints

    def frames() -> Iterator[Frame]:
        for t, found in enumerate(blazepose_frames(info, pose_estimator(0), layout, Decoded())):
            if found is None:
                yield Frame(t, np.zeros((0, v, 2), np.float32), np.zeros((0, v), np.float32), [])
            else:
                yield Frame(t, found[0][None].astype(np.float32), found[1][None].astype(np.float32), [0])

    total = info.declared_frames or None
    return Sequence(item.name, str(item.path), layout, (info.height, info.width), False, frames(), total)


def open_sequences(path: Path, *, layout: Layout | None = None, names: list[str] | None = None,
                   max_people: int = 2) -> Iterator[Sequence]:  # fmt: skip
    """The sequences of an input file or folder (AgcnError naming it when it cannot be read)."""
    kind = input_kind(path)
    if kind == VIDEO_KIND:
        items, _, _ = list_items([path])
        for item in items:
            if item.kind == "video":  # watched as it decodes, frame by frame
                yield _video_sequence(item)
                continue
            poses = item_poses(item, max_people, 0, lambda event: None)
            yield _from_annotation(annotation(item, poses), str(item.path), get_layout(EXTRACT_LAYOUT))
    elif kind == "pkl":
        annotations = load_annotation_file(path)["annotations"]
        chosen, _ = choose_layout(path, annotations)
        for ann in annotations:
            if names and annotation_name(ann) not in names:
                continue
            yield _from_annotation(ann, f"{path}: {annotation_name(ann)}", layout or chosen)
    elif kind == "skeleton":
        files = sorted(path.glob("*.skeleton")) if path.is_dir() else [path]
        for f in files:
            try:
                kp = select_bodies_mmaction2(parse_skeleton(f))
            except SkeletonError as e:
                raise AgcnError(str(e) if str(e).startswith(str(f)) else f"{f}: {e}") from None
            name = f.name.removesuffix(".skeleton")
            yield Sequence(name, str(f), get_layout(NTU_LAYOUT), None, False, _track_frames(kp, None), kp.shape[1])
    elif kind == "kinetics":
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for f in files:
            try:
                data, _ = video_sample(read_video(f))  # (2, T, 18, 3) as agcn preprocess stores it
            except SampleError as e:
                raise AgcnError(f"{f}: {e}") from None
            seq = Sequence(f.stem, str(f), get_layout(KINETICS_LAYOUT), None, True, _track_frames(data, None))
            seq.total = data.shape[1]
            yield seq
    else:  # a split file
        attrs = check_split_file(path)
        all_names = [str(n) for n in read_meta(path, ("name",), check=False)["name"]]
        if not names:
            raise AgcnError(f"{path}: which sample? Pass --sample NAME (a split file holds {len(all_names)})")
        missing = [n for n in names if n not in all_names]
        if missing:
            raise AgcnError(f"{path}: no sample named {missing[0]!r}")
        indices = [all_names.index(n) for n in names]
        stored_layout = split_layout(attrs, path)
        for i, (data, _, _) in zip(indices, read_samples(path, indices), strict=True):
            frames = _track_frames(data.transpose(3, 1, 2, 0), None)  # (C, T, V, M) -> (M, T, V, C)
            yield Sequence(all_names[i], f"{path}: {all_names[i]}", stored_layout, None, True, frames, data.shape[1])


# ---- the live stream ----------------------------------------------------------------------------


@dataclass
class LineError:
    line: int
    message: str


def stream_frames(lines: Iterable[str], joints: int, channels: int) -> Iterator[Frame | LineError]:
    """Frames of a stream of JSON lines, `{"frame": k, "people": [{"id": optional, "keypoints":
    [[x, y(, z)], ...], "scores": [...]}]}`, each checked; a bad line is a `LineError` in its place,
    and the stream goes on. `joints` and `channels` (2 or 3): what every person must have."""
    last: int | None = None
    id_type: type | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            frame = _parse_line(line, joints, channels)
        except AgcnError as e:
            yield LineError(number, str(e) if line.endswith("\n") else f"{e} (the input ends mid-line)")
            continue
        if last is not None and frame.t <= last:
            yield LineError(number, f"frame {frame.t} after frame {last}: frames must come in order")
            continue
        types = {type(i) for i in frame.ids if i is not None}
        if len(types) > 1 or (id_type is not None and types and types != {id_type}):
            yield LineError(number, f"frame {frame.t}: person ids change type (ints and strings); use one")
            continue
        id_type = id_type or (types.pop() if types else None)
        last = frame.t
        yield frame


def _parse_line(line: str, joints: int, channels: int) -> Frame:
    if len(line) > STREAM_MAX_LINE:
        raise AgcnError(f"longer than {STREAM_MAX_LINE:,} bytes")
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as e:
        raise AgcnError(f"not JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:  # [[[[...]]]] thousands deep
        raise AgcnError("not a frame: its JSON nests too deep to read") from None
    if not isinstance(doc, dict) or "frame" not in doc or "people" not in doc:
        raise AgcnError('expected {"frame": k, "people": [...]}')
    t = doc["frame"]
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise AgcnError(f"'frame' must be an integer >= 0, got {t!r}")
    people = doc["people"]
    if not isinstance(people, list) or len(people) > STREAM_MAX_PEOPLE:
        raise AgcnError(f"frame {t}: 'people' must be a list of at most {STREAM_MAX_PEOPLE}")
    kps, scores, ids = [], [], []
    for p, person in enumerate(people):
        where = f"frame {t}: person {p}"
        if not isinstance(person, dict) or "keypoints" not in person:
            raise AgcnError(f"{where}: expected an object with 'keypoints'")
        try:
            kp = np.asarray(person["keypoints"], dtype=np.float64)
        except (TypeError, ValueError):
            raise AgcnError(f"{where}: 'keypoints' must be a list of [x, y(, z)] numbers") from None
        if kp.shape != (joints, channels):
            raise AgcnError(f"{where}: keypoints of shape {list(kp.shape)}, expected [{joints}, {channels}]")
        kp = kp.astype(np.float32)  # as they are kept: 1e300 is finite in float64, not in float32
        if not np.isfinite(kp).all():
            raise AgcnError(f"{where}: keypoints hold NaN or infinite values (or beyond float32)")
        score = person.get("scores", [1.0] * joints)
        try:
            score = np.asarray(score, dtype=np.float64)
        except (TypeError, ValueError):
            raise AgcnError(f"{where}: 'scores' must be a list of numbers") from None
        if score.shape != (joints,) or not np.isfinite(score).all() or (score < 0).any() or (score > 1 + 1e-3).any():
            raise AgcnError(f"{where}: 'scores' must be {joints} numbers in [0, 1]")
        pid = person.get("id")
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int | str)):
            raise AgcnError(f"{where}: 'id' must be an integer or a string")
        kps.append(kp)
        scores.append(np.minimum(score, 1.0))
        ids.append(pid)
    if any(i is None for i in ids) and any(i is not None for i in ids):
        raise AgcnError(f"frame {t}: ids given to some people and not others")
    if len({i for i in ids if i is not None}) < sum(i is not None for i in ids):
        raise AgcnError(f"frame {t}: one id given to two people")
    keypoints = np.asarray(kps, np.float32).reshape(len(kps), joints, channels)
    return Frame(t, keypoints, np.asarray(scores, np.float32).reshape(len(kps), joints) if channels == 2 else None, ids)
