"""`agcn extract`: videos (or pose estimators' per-frame files) to an MMAction2/pyskl 2D annotation file.

Inputs: video files; folders of videos; folders with one subfolder per class (the class is the
subfolder's name, classes numbered in name order); OpenPose `--write_json` folders and MMPose JSON
predictions (several people, tracked: `pose/track.py`). Each input becomes one annotation:
`frame_dir`, `total_frames`, `img_shape`, `original_shape`, `keypoint` (M, T, 17, 2) in pixels,
`keypoint_score` (M, T, 17), `label` where a class folder says, and `filename` (the input file).

Each input's result is cached under a key made of its content (SHA-256 of its bytes) and of the
estimator (the model files' digests, `EXTRACTOR_VERSION`, the layout), in `CACHE/KEY.npz`; a
re-run takes finished inputs from there, so adding videos extracts only the new ones and an
interrupted extraction resumes at the input it was on. Inputs run in forked worker processes (one
an input at a time), the output file is written whole at the end, or not at all.
"""

import hashlib
import json
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.atomic import atomic_output, locked
from ..pose.keypoint_json import is_keypoint_input, read_keypoints
from ..pose.models import POSE_MODEL_FILES
from ..pose.poses import VideoPoses
from ..pose.track import track_people
from ..pose.video import VIDEO_SUFFIXES
from ..skeleton.layouts import get_layout
from .pkl import LABEL_NAMES_KEY, write_annotation_file

EXTRACTOR_VERSION = "blazepose-litert-1"  # bump when the pose code changes what it outputs: the cache key holds it
EXTRACT_LAYOUT = "coco17"
UNLABELLED_SPLIT = "unlabelled"


@dataclass
class ExtractConfig:
    """What `agcn extract` reads and writes."""

    inputs: list[Path]  # videos, folders of videos or of class folders, OpenPose folders, MMPose .json files
    out: Path  # the annotation .pkl
    val_fraction: float = 0.0  # share of each class's videos in split 'val' (by name: adding videos moves none)
    max_people: int = 2  # keypoint inputs: tracks kept (MMAction2's order); BlazePose finds one person
    cache: Path | None = None  # default: OUT's name + '.cache' beside it
    workers: int = 0  # processes, one input each at a time; 0: one per core
    overwrite: bool = False


@dataclass
class Item:
    path: Path
    kind: str  # video | keypoints
    name: str  # frame_dir: the path below the input folder, without suffix
    label: int | None


@dataclass
class Outcome:
    item: Item
    poses: VideoPoses | None = None
    error: str | None = None
    cached: bool = False


@dataclass
class ExtractReport:
    out: Path
    label_map: Path | None
    label_names: tuple[str, ...]
    splits: dict[str, int]
    done: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # files in the inputs that are no video
    seconds: float = 0.0


class ExtractProgress:
    """What `extract` reports as it goes; the command line draws it. Calls come from one thread."""

    def listed(self, count: int) -> None: ...
    def started(self, item: Item, frames: int) -> None: ...
    def advanced(self, item: Item, frames: int) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...


# ---- what the inputs hold ---------------------------------------------------------------------


def _kind(path: Path) -> str | None:
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    if is_keypoint_input(path):
        return "keypoints"
    return None


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as e:
        raise AgcnError(f"{folder}: cannot list it ({e.strerror or e})") from None


def list_items(inputs: list[Path]) -> tuple[list[Item], tuple[str, ...], list[tuple[Path, str]]]:
    """(items, class names, skipped files) of the inputs. A folder holding subfolders of videos is
    a folder of classes; one holding videos is a folder of unlabelled videos."""
    found: list[tuple[Path, str, str, str | None]] = []  # path, kind, name, class
    skipped: list[tuple[Path, str]] = []
    classes: set[str] = set()
    for root in inputs:
        if not root.exists():
            raise AgcnError(f"{root}: no such file or folder")
        kind = _kind(root)
        if kind is not None:
            found.append((root, kind, root.stem if kind == "video" else root.name.removesuffix(".json"), None))
            continue
        if not root.is_dir():
            raise AgcnError(f"{root}: not a video ({', '.join(VIDEO_SUFFIXES)}), OpenPose folder or MMPose .json")
        for entry in _entries(root):
            kind = _kind(entry)
            if kind is not None:
                found.append((entry, kind, entry.stem if kind == "video" else entry.name, None))
            elif entry.is_dir():
                try:
                    members = _entries(entry)
                except AgcnError as e:
                    skipped.append((entry, str(e).split(": ", 1)[-1]))
                    continue
                for member in members:
                    kind = _kind(member)
                    if kind is None:
                        skipped.append((member, "not a video, OpenPose folder or MMPose .json"))
                        continue
                    stem = member.stem if kind == "video" else member.name.removesuffix(".json")
                    found.append((member, kind, f"{entry.name}/{stem}", entry.name))
                    classes.add(entry.name)
            else:
                skipped.append((entry, "not a video, OpenPose folder or MMPose .json"))
    labelled = [f for f in found if f[3] is not None]
    if labelled and len(labelled) != len(found):
        loose = next(f[0] for f in found if f[3] is None)
        raise AgcnError(f"{loose}: an input without a class beside class folders; move it into a class folder")
    names = tuple(sorted(classes))
    items = [Item(p, k, n, names.index(c) if c is not None else None) for p, k, n, c in found]
    seen: dict[str, Path] = {}
    for item in items:
        if item.name in seen:
            raise AgcnError(f"{item.path}: same sample name {item.name!r} as {seen[item.name]}; rename one")
        seen[item.name] = item.path
    if not items:
        raise AgcnError(f"{', '.join(map(str, inputs))}: no video, OpenPose folder or MMPose .json found")
    return items, names, skipped


# ---- one input, cached ------------------------------------------------------------------------


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if f != path else b"")
        with open(f, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def cache_key(item: Item, config: ExtractConfig) -> str:
    estimator = f"{EXTRACTOR_VERSION}|{EXTRACT_LAYOUT}|" + "|".join(f.sha256 for f in POSE_MODEL_FILES.values())
    if item.kind == "keypoints":
        estimator = f"tracks-{config.max_people}|{EXTRACT_LAYOUT}|{EXTRACTOR_VERSION}"
    return hashlib.sha256(f"{_digest(item.path)}|{estimator}".encode()).hexdigest()[:32]


def _save(path: Path, poses: VideoPoses) -> None:
    with atomic_output(path, sweep=False) as tmp, open(tmp, "wb") as f:
        np.savez(f, keypoint=poses.keypoint, keypoint_score=poses.keypoint_score,
                 img_shape=np.array(poses.img_shape, np.int64), fps=np.float64(poses.fps),
                 notes=np.array(json.dumps(poses.notes)), seconds=np.array(json.dumps(poses.seconds)))  # fmt: skip


def _load(path: Path) -> VideoPoses | None:
    """A cached result, or None where there is none or it does not read back whole."""
    try:
        with np.load(path, allow_pickle=False) as z:
            kp, score = z["keypoint"].astype(np.float32), z["keypoint_score"].astype(np.float32)
            h, w = (int(v) for v in z["img_shape"])
            poses = VideoPoses(kp, score, (h, w), float(z["fps"]), json.loads(str(z["notes"])),
                               json.loads(str(z["seconds"])))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    ok = kp.ndim == 4 and kp.shape[-1] == 2 and score.shape == kp.shape[:3] and np.isfinite(kp).all()
    return poses if ok else None


_ESTIMATOR = None  # one BlazePose per process, made on its first video


def pose_estimator(threads: int):
    """This process's BlazePose (LiteRT on `threads` threads, 0: all cores), made once."""
    global _ESTIMATOR
    if _ESTIMATOR is None:
        from ..pose.blazepose import BlazePose

        _ESTIMATOR = BlazePose(threads or os.cpu_count() or 1)
    return _ESTIMATOR


def item_poses(item: Item, max_people: int, threads: int, report: Callable[[tuple], None]) -> VideoPoses:
    """One input's poses, extracted (AgcnError naming the file when it cannot be)."""
    if item.kind == "video":
        from ..pose.poses import blazepose_video
        from ..pose.video import probe_video

        info = probe_video(item.path)
        report(("started", item, info.declared_frames))
        poses = blazepose_video(info, pose_estimator(threads), get_layout(EXTRACT_LAYOUT),
                                lambda n: report(("advanced", item, n)))  # fmt: skip
        if poses.frames == 0:
            raise AgcnError(f"{item.path}: no frame could be decoded")
        return poses
    seq = read_keypoints(item.path, get_layout(EXTRACT_LAYOUT))
    report(("started", item, len(seq.frames)))
    tracks = track_people(seq.frames, max_people=max_people)
    notes = [f"{seq.missing_frames} frames missing from the numbering: kept empty"] if seq.missing_frames else []
    poses = VideoPoses(tracks.keypoint, tracks.keypoint_score, _frame_shape(tracks.keypoint), seq.fps or 0.0, notes)
    report(("advanced", item, poses.frames))
    return poses


def extract_item(item: Item, config: ExtractConfig, threads: int, report: Callable[[tuple], None]) -> Outcome:
    """One input's poses: from the cache, else extracted and cached. Errors become the outcome."""
    try:
        key = cache_key(item, config)
        poses = _load(cache_dir(config) / f"{key}.npz")
        cached = poses is not None
        if cached:
            report(("started", item, poses.frames))
            report(("advanced", item, poses.frames))
        else:
            poses = item_poses(item, config.max_people, threads, report)
            _save(cache_dir(config) / f"{key}.npz", poses)
        if poses.frames_with_people == 0:  # no sample: said, and left out (cached all the same)
            return Outcome(item, error=f"{item.path}: nobody found in any of its {poses.frames} frames")
        return Outcome(item, poses, cached=cached)
    except AgcnError as e:
        text = str(e)
        return Outcome(item, error=text if text.startswith(str(item.path)) else f"{item.path}: {text}")
    except OSError as e:
        return Outcome(item, error=f"{item.path}: {e.strerror or e}")


def _frame_shape(keypoint: np.ndarray) -> tuple[int, int]:
    """(height, width) for keypoints without a known frame: the smallest frame holding them all."""
    found = keypoint[np.isfinite(keypoint).all(-1) & (keypoint != 0).any(-1)]
    if not len(found):
        return 1, 1
    return int(np.ceil(found[:, 1].max())) + 1, int(np.ceil(found[:, 0].max())) + 1


def cache_dir(config: ExtractConfig) -> Path:
    return config.cache or config.out.with_name(config.out.name + ".cache")


# ---- all inputs --------------------------------------------------------------------------------

_TASK: tuple | None = None  # (items, config, threads, queue): inherited by forked workers


def _work(index: int) -> tuple[int, Outcome]:
    items, config, threads, q = _TASK
    return index, extract_item(items[index], config, threads, q.put)


def _run(items: list[Item], config: ExtractConfig, progress: ExtractProgress) -> list[Outcome]:
    global _TASK
    cores = os.cpu_count() or 1
    workers = max(1, min(config.workers or cores, len(items)))
    threads = max(1, cores // workers)
    dispatch = {"started": progress.started, "advanced": progress.advanced}
    if workers == 1 or not hasattr(os, "fork"):
        outcomes = []
        for item in items:
            outcome = extract_item(item, config, threads, lambda event: dispatch[event[0]](*event[1:]))
            progress.finished(outcome)
            outcomes.append(outcome)
        return outcomes
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    _TASK = (items, config, threads, q)
    done = threading.Event()

    def drain() -> None:
        while not (done.is_set() and q.empty()):
            try:
                event = q.get(timeout=0.05)
            except Exception:  # queue.Empty
                continue
            dispatch[event[0]](*event[1:])

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    outcomes: list[Outcome | None] = [None] * len(items)
    try:
        with ctx.Pool(workers) as pool:
            for index, outcome in pool.imap_unordered(_work, range(len(items)), chunksize=1):
                outcomes[index] = outcome
                progress.finished(outcome)
    finally:
        done.set()
        reader.join()
        _TASK = None
    return outcomes


def _split_of(name: str, val_fraction: float) -> str:
    """'val' for about `val_fraction` of names, fixed by the name alone (adding videos moves none)."""
    draw = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64
    return "val" if draw < val_fraction else "train"


def annotation(item: Item, poses: VideoPoses) -> dict:
    """The MMAction2/pyskl annotation of one input."""
    ann = {
        "frame_dir": item.name,
        "total_frames": poses.frames,
        "img_shape": poses.img_shape,
        "original_shape": poses.img_shape,
        "keypoint": poses.keypoint,
        "keypoint_score": poses.keypoint_score,
        "filename": str(item.path),
    }
    if item.label is not None:
        ann["label"] = item.label
    return ann


def extract(config: ExtractConfig, progress: ExtractProgress | None = None) -> ExtractReport:
    """Extract every input into `config.out` (and, for class folders, its label map beside it)."""
    t0 = time.perf_counter()
    progress = progress or ExtractProgress()
    if not 0 <= config.val_fraction < 1:
        raise AgcnError(f"--val-fraction must be in [0, 1), got {config.val_fraction}")
    if not 1 <= config.max_people <= 1000:
        raise AgcnError(f"--max-people must be in 1..1000, got {config.max_people}")
    if config.out.suffix != ".pkl":
        raise AgcnError(f"{config.out}: the output is an annotation file; name it NAME.pkl")
    items, names, skipped = list_items(config.inputs)
    label_map = config.out.with_name(config.out.stem + "_label_map.txt") if names else None
    for path in (config.out, label_map):
        if path is not None and path.exists() and not config.overwrite:
            raise AgcnError(f"{path}: exists; pass --overwrite to replace it")
    if any(i.kind == "video" for i in items):
        from ..pose.models import pose_model_bytes, video_modules

        video_modules()  # one line saying what to install, before any work
        pose_model_bytes()
    try:
        config.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AgcnError(f"{config.out}: cannot create its folder ({e.strerror or e})") from None
    with locked(config.out, wait=False, holder="agcn extract", hint="wait for it to end"):
        cache_dir(config).mkdir(parents=True, exist_ok=True)
        progress.listed(len(items))
        outcomes = _run(items, config, progress)
        done = [o for o in outcomes if o.poses is not None]
        failed = [o for o in outcomes if o.poses is None]
        if not done:
            raise AgcnError(f"{config.out}: not written, none of the {len(items)} inputs could be extracted")
        if names:
            split: dict[str, list[str]] = {"train": [], "val": []}
            for o in done:
                split[_split_of(o.item.name, config.val_fraction)].append(o.item.name)
            split = {k: v for k, v in split.items() if v or k == "train"}
        else:
            split = {UNLABELLED_SPLIT: [o.item.name for o in done]}
        data = {"split": split, "annotations": [annotation(o.item, o.poses) for o in done]}
        if names:
            data[LABEL_NAMES_KEY] = list(names)  # agcn preprocess reads the class names from here
        if label_map is not None:
            with atomic_output(label_map) as tmp:
                tmp.write_text("".join(f"{n}\n" for n in names))
        write_annotation_file(config.out, data)
    return ExtractReport(config.out, label_map, names, {k: len(v) for k, v in split.items()}, done, failed,
                         skipped, time.perf_counter() - t0)  # fmt: skip
