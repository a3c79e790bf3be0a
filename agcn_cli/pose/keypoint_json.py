"""OpenPose and MMPose per-frame keypoint files -> one `FramePeople` per frame (data_specs/pose.md).

- OpenPose `--write_json DIR`: one file per frame, `{video}_{frame:012d}_keypoints.json` (the frame
  number is the last run of digits of the name; any `*.json` named by a frame number is read too),
  each `{"people": [{"person_id": [-1], "pose_keypoints_2d": [x, y, c] * V}]}`, BODY_25 (75 numbers)
  or COCO-18 (54) told apart by length. A frame number absent from the run is an empty frame, counted
  in `missing_frames`.
- MMPose: `topdown_demo_with_mmdet.py --save-predictions` writes `{"meta_info", "instance_info":
  [{"frame_id", "instances"}]}` with frame_id counted from 1 (it counts a frame before reading it);
  the inferencer's `--pred-out-dir` writes `[{"frame_id", "instances"}]` from 0 for a video and
  `[instance, ...]` per image (a folder of those reads like OpenPose's); a plain list of frames, each
  a list of instances, is what users write from rtmlib. An instance is `{"keypoints": [[x, y]] * 17,
  "keypoint_scores": [...], "track_id" or "id"?}`, COCO-17 order.

Joints reach the target layout by name (`skeleton.adapters.source_index`). A joint not found keeps
its place with score 0 (OpenPose writes x = y = c = 0). OpenPose's confidences lie in [0, 1]; RTMPose's
scores are not probabilities and pass 1 (mmpose issues #2755, #3122), so MMPose scores above 1 are
clipped to 1. A score below 0 (beyond `SCORE_SLACK`) is an error in either.
"""

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AgcnError
from ..skeleton.adapters import source_index, source_joints
from ..skeleton.layouts import Layout, get_layout
from .people import FramePeople

KEYPOINT_MAX_FRAMES = 100_000  # ~55 minutes at 30 fps, as pose/video.MAX_VIDEO_FRAMES
KEYPOINT_MAX_PEOPLE = 1_000  # people in one frame
SCORE_SLACK = 1e-3  # rounding: a score this far outside [0, 1] is clipped, further is an error
OPENPOSE_MODELS = {75: "openpose-body25", 54: "openpose-coco18"}  # numbers per person -> joint order
MMPOSE_SOURCE = "coco17"
OTHER_JOINT_COUNTS = {26: "Halpe-26", 133: "COCO-WholeBody", 21: "a hand model", 68: "a face model", 16: "MPII"}
FRAME_FILE = re.compile(r"(\d+)(?:_keypoints)?\.json$")  # the frame number ends the name
HEAD_BYTES = 1 << 20  # what detection reads of a file: the topdown demo's meta_info precedes its frames

# what is left of a value cut off: a number, true, false, null, or a string without its closing quote
_PARTIAL = re.compile(r'-?[\d.eE+-]*|t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?|"(?:[^"\\]|\\.)*\\?', re.S)
Parsed = tuple[str, np.ndarray, np.ndarray | None]  # joint order ("" for nobody), (P, Vs, 3) x y score, ids


@dataclass
class KeypointSequence:
    """An estimator's people frame by frame: `frames[t]` is frame t (empty where nobody or no entry)."""

    frames: list[FramePeople]  # joints in the target layout's order
    source: str  # the estimator's joint order (keypoint_sources.json); "" when no frame has anyone
    missing_frames: int  # frame numbers below the last one with no file or entry
    fps: float | None = None  # neither OpenPose nor MMPose writes it


def read_keypoints(path: Path, layout: Layout | None = None) -> KeypointSequence:
    """A folder of per-frame files (OpenPose, or MMPose per image) or an MMPose predictions `.json`."""
    path, layout = Path(path), layout or get_layout(MMPOSE_SOURCE)
    if path.is_dir():
        files = _frame_files(path)
        parsed = ((t, f"{p}: frame {t}", _file_people(p, t)) for t, p in sorted(files.items()))
        return _sequence(parsed, len(files), max(files), layout)
    if path.is_file() and path.suffix.lower() == ".json":
        entries = _mmpose_entries(_load(path), path)
        indices = [t for t, _, _ in entries]
        if len(set(indices)) < len(indices):
            twice = next(t for k, t in enumerate(indices) if t in indices[:k])
            raise AgcnError(f"{path}: frame {twice} appears twice (frame index from 0)")
        last = max(indices)
        if last >= KEYPOINT_MAX_FRAMES:
            raise AgcnError(f"{path}: frame {last} is beyond {KEYPOINT_MAX_FRAMES} frames")
        parsed = ((t, where, _mmpose_people(people, where)) for t, where, people in entries)
        return _sequence(parsed, len(entries), last, layout)
    if not path.exists():
        raise AgcnError(f"{path}: no such file or folder")
    raise AgcnError(f"{path}: expected a folder of per-frame keypoint .json files or an MMPose predictions .json")


def is_keypoint_input(path: Path) -> bool:
    """Whether `read_keypoints` reads `path`: by names, and the first bytes of at most one file."""
    path = Path(path)
    try:
        if path.is_dir():
            with os.scandir(path) as it:
                for entry in it:  # the first file named by a frame number decides
                    if entry.name.startswith(".") or not FRAME_FILE.search(entry.name):
                        continue
                    if entry.name.endswith("_keypoints.json"):
                        return True
                    head = _head(Path(entry.path))  # a Kinetics video `{"data": ...}` may end in a digit
                    return bool(re.match(r'\{.*?"people"\s*:', head, re.S)) or head.startswith("[")
            return False
        if path.suffix.lower() == ".json" and path.is_file():
            head = _head(path)
            if head.startswith("{"):  # Kinetics-Skeleton: {"data": [...], "label": ...}
                return bool(re.search(r'"instance_info"\s*:', head))
            inner = head[1:].lstrip()[:1]  # a list of frames, or of one image's instances
            listed = inner == "[" or (inner == "{" and bool(re.search(r'"(keypoints|frame_id)"\s*:', head)))
            return head.startswith("[") and listed
    except OSError:
        return False
    return False


def _head(path: Path) -> str:
    with open(path, "rb") as f:
        return f.read(HEAD_BYTES).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")


def _load(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AgcnError(f"{path}: cannot read ({e.strerror})") from None
    if not data.strip():
        raise AgcnError(f"{path}: empty file, not JSON")
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise AgcnError(f"{path}: not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        text = e.doc.strip()  # an unclosed object or list, stopped in or after its last value, was cut short
        if text[:1] in ("{", "[") and text[-1:] not in ("}", "]") and _PARTIAL.fullmatch(e.doc[e.pos :].strip()):
            raise AgcnError(f"{path}: truncated JSON (it stops at line {e.lineno}, mid-value)") from None
        raise AgcnError(f"{path}: not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise AgcnError(f"{path}: JSON nested too deeply") from None


def _frame_files(folder: Path) -> dict[int, Path]:
    """Frame number -> file of a folder of per-frame files."""
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))
    except OSError as e:
        raise AgcnError(f"{folder}: cannot list folder ({e.strerror})") from None
    files: dict[int, Path] = {}
    for name in names:
        if (m := FRAME_FILE.search(name)) is None:
            continue
        t = int(m.group(1))
        if t in files:
            raise AgcnError(f"{folder}: frame {t} twice ({files[t].name}, {name}); one folder holds one video's files")
        files[t] = folder / name
    if not files:
        raise AgcnError(f"{folder}: no keypoint files (OpenPose's *_keypoints.json, or *.json named by frame number)")
    if max(files) >= KEYPOINT_MAX_FRAMES:
        raise AgcnError(f"{files[max(files)]}: frame {max(files)} is beyond {KEYPOINT_MAX_FRAMES} frames")
    return files


def _file_people(path: Path, t: int) -> Parsed:
    doc, where = _load(path), f"{path}: frame {t}"
    if isinstance(doc, list):  # the MMPose inferencer's file of one image
        return _mmpose_people(doc, where)
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
        raise AgcnError(f"{where}: no 'people' list; expected OpenPose --write_json output")
    people = doc["people"]
    _check_count(len(people), where)
    rows, ids = [], []
    for p, person in enumerate(people):
        if not isinstance(person, dict) or not isinstance(person.get("pose_keypoints_2d"), list):
            raise AgcnError(f"{where}: person {p} has no 'pose_keypoints_2d' list")
        rows.append(person["pose_keypoints_2d"])
        ids.append(_person_id(person.get("person_id", -1), f"{where}: person {p}: person_id"))
    if not rows:
        return "", np.zeros((0, 0, 3)), None
    for p, row in enumerate(rows):
        if len(row) not in OPENPOSE_MODELS:
            raise AgcnError(
                f"{where}: person {p}: pose_keypoints_2d has {len(row)} numbers, expected 75 (BODY_25) or 54 "
                "(COCO-18): x, y, confidence per joint"
            )
    if len({len(r) for r in rows}) > 1:
        raise AgcnError(f"{where}: mixed OpenPose models in one frame (BODY_25 and COCO-18 people)")
    source = OPENPOSE_MODELS[len(rows[0])]
    points = _numbers(rows, where, "pose_keypoints_2d").reshape(len(rows), -1, 3)
    return source, _checked(points, where, source, clip_high=False), _ids(ids, where)


def _mmpose_entries(doc: Any, path: Path) -> list[tuple[int, str, Any]]:
    """(frame index, where, instances) of each frame of an MMPose predictions file."""
    if isinstance(doc, dict):
        if "instance_info" not in doc:
            hint = " (a Kinetics-Skeleton video file?)" if "data" in doc else ""
            raise AgcnError(f"{path}: a JSON object without 'instance_info'{hint}; expected MMPose predictions")
        entries, base = doc["instance_info"], 1  # topdown_demo_with_mmdet.py counts frames from 1
    elif isinstance(doc, list):
        entries, base = doc, 0  # the inferencer's video file counts from 0
    else:
        raise AgcnError(f"{path}: top level is {_kind(doc)}; expected MMPose predictions")
    if not isinstance(entries, list) or not entries:
        raise AgcnError(f"{path}: no frames (expected a non-empty list of frames)")
    first = entries[0]
    if isinstance(first, list):  # a plain list of frames
        return [(t, f"{path}: frame {t}", people) for t, people in enumerate(entries)]
    if not isinstance(first, dict):
        raise AgcnError(f"{path}: frame 0 is {_kind(first)}; expected a frame or an instance")
    if "frame_id" not in first:  # the instances of one image
        return [(0, f"{path}: frame 0", entries)]
    out = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or "instances" not in entry or "frame_id" not in entry:
            raise AgcnError(f"{path}: entry {k} has no 'frame_id' and 'instances'")
        fid = entry["frame_id"]
        if isinstance(fid, bool) or not isinstance(fid, int) or fid < base:
            raise AgcnError(f"{path}: entry {k}: frame_id {fid!r} is not an integer from {base}, as this file counts")
        out.append((fid - base, f"{path}: frame_id {fid}", entry["instances"]))
    return out


def _mmpose_people(instances: Any, where: str) -> Parsed:
    if not isinstance(instances, list):
        raise AgcnError(f"{where}: instances are {_kind(instances)}, expected a list")
    _check_count(len(instances), where)
    if not instances:
        return "", np.zeros((0, 0, 3)), None
    xy, scores, ids = [], [], []
    for j, inst in enumerate(instances):
        if not isinstance(inst, dict) or not isinstance(inst.get("keypoints"), list):
            raise AgcnError(f"{where}: instance {j} has no 'keypoints' list")
        if not isinstance(inst.get("keypoint_scores"), list):
            raise AgcnError(f"{where}: instance {j} has no 'keypoint_scores' list")
        xy.append(inst["keypoints"])
        scores.append(inst["keypoint_scores"])
        ids.append(_person_id(inst.get("track_id", inst.get("id", -1)), f"{where}: instance {j}: track_id"))
    counts = sorted({len(k) for k in xy})
    if counts != [17]:
        found = ", ".join(f"{n}{f' ({OTHER_JOINT_COUNTS[n]})' if n in OTHER_JOINT_COUNTS else ''}" for n in counts)
        raise AgcnError(f"{where}: instances have {found} keypoints; expected 17, COCO-17 order")
    if (j := next((j for j, s in enumerate(scores) if len(s) != 17), None)) is not None:
        raise AgcnError(f"{where}: instance {j}: {len(scores[j])} keypoint_scores for 17 keypoints")
    points = _numbers(xy, where, "keypoints")
    if points.shape[2:] != (2,):
        raise AgcnError(f"{where}: keypoints are not [x, y] pairs (found {points.shape[2:]} per joint)")
    points = np.concatenate([points, _numbers(scores, where, "keypoint_scores")[..., None]], axis=2)
    return MMPOSE_SOURCE, _checked(points, where, MMPOSE_SOURCE, clip_high=True), _ids(ids, where)


def _kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _check_count(count: int, where: str) -> None:
    if count > KEYPOINT_MAX_PEOPLE:
        raise AgcnError(f"{where}: {count} people, more than {KEYPOINT_MAX_PEOPLE} in one frame")


def _numbers(rows: list, where: str, what: str) -> np.ndarray:
    try:
        array = np.asarray(rows)
    except ValueError:
        array = None  # nested lists of different lengths
    if array is None or array.dtype.kind not in "fiu":
        raise AgcnError(f"{where}: {what} holds something other than numbers of one shape")
    return array.astype(np.float64)


def _checked(points: np.ndarray, where: str, source: str, clip_high: bool) -> np.ndarray:
    """(P, V, 3) x, y, score, refused when not finite or a score is out of range; scores clipped to [0, 1]."""
    scores = points[..., 2]
    bad = ~np.isfinite(points) | (np.arange(3) == 2) & (scores < -SCORE_SLACK)[..., None]
    if not clip_high:
        bad |= (np.arange(3) == 2) & (scores > 1 + SCORE_SLACK)[..., None]
    if bad.any():
        p, v, c = np.argwhere(bad)[0]
        value, name = points[p, v, c], ("x", "y", "score")[c]
        problem = "not a finite number" if not np.isfinite(value) else "outside [0, 1]"
        raise AgcnError(f"{where}: person {p}, joint {v} ({source_joints(source)[v]}): {name} {value:g} is {problem}")
    points[..., 2] = np.clip(scores, 0.0, 1.0)
    return points


def _person_id(value: Any, where: str) -> int:
    if isinstance(value, list) and len(value) == 1:  # OpenPose writes [-1]
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise AgcnError(f"{where} {value!r} is not an integer id (or -1 for none)")
    return value


def _ids(ids: list[int], where: str) -> np.ndarray | None:
    if all(i == -1 for i in ids):
        return None
    if -1 in ids:
        raise AgcnError(f"{where}: some people have an id and others none (-1)")
    if len(set(ids)) < len(ids):
        raise AgcnError(f"{where}: id {next(i for k, i in enumerate(ids) if i in ids[:k])} given to two people")
    return np.array(ids, dtype=np.int64)


def _sequence(parsed: Iterable[tuple[int, str, Parsed]], count: int, last: int, layout: Layout) -> KeypointSequence:
    """Each frame's people in `layout`'s joints; frames without an entry empty."""
    frames: list[FramePeople | None] = [None] * (last + 1)
    source, first_where, index = "", "", np.zeros(0, np.int64)
    for t, where, (src, points, ids) in parsed:
        if src and not source:
            try:
                index = source_index(src, layout)
            except AgcnError as e:
                raise AgcnError(f"{where}: {e}") from None
            source, first_where = src, where
        elif src and src != source:
            raise AgcnError(f"{where}: {src} joints, but {first_where} has {source}; mixed pose models in one input")
        if src:
            joints = points[:, index].astype(np.float32)  # (P, V, 3) in the layout's order
            frames[t] = FramePeople(np.ascontiguousarray(joints[..., :2]), joints[..., 2].copy(), ids)
    v = layout.num_joints
    return KeypointSequence([f if f is not None else FramePeople.empty(v) for f in frames], source, last + 1 - count)
