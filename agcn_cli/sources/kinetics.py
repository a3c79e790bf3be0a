"""Kinetics-Skeleton (ST-GCN's OpenPose release, used by 2s-AGCN) -> split files.

The release holds one JSON file per video in `kinetics_train/` and `kinetics_val/`, and one
label file per folder, `kinetics_train_label.json` / `kinetics_val_label.json`, mapping a
video id to `{has_skeleton, label, label_index}`. A video file holds `data`, a list of frames
`{frame_index, skeleton: [{pose: [x0, y0, x1, y1, ...] (36 values), score: [18 values]}]}`
(coordinates divided by the frame size), and `label`, `label_index`.

Each video becomes a sample as 2s-AGCN's `data_gen/kinetics_gendata.py` makes it (the feeder
ST-GCN uses as well):
1. the first 5 bodies of each frame are read into slots 0-4 at their `frame_index`;
2. x and y are centred (`- 0.5`), y is negated (image y points down), and x, y are zeroed
   where the score is 0;
3. in *each frame* the slots are ordered by their summed score over the 18 joints, highest
   first (a stable sort: equal sums keep slot order), and the first 2 are kept.
The reference pads every sample to 300 frames; agcn stores frames 0 .. last `frame_index`,
which equal the reference's first frames (the rest of its window is zero). Videos whose label
entry says `has_skeleton: false` are left out as the reference does, and counted.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.splitwrite import SampleMeta
from ..skeleton.persons import fit_and_count
from .pipeline import (
    ConvertConfig,
    Converted,
    ConvertReport,
    Job,
    SampleError,
    Tick,
    check_label,
    class_count_hint,
    layout_attrs,
    list_files,
    read_label_map,
    refuse_other_layout,
    write_splits,
)

KINETICS_SOURCE = "kinetics-skeleton"
KINETICS_RECIPE = "2s-agcn"  # data_gen/kinetics_gendata.py
KINETICS_LAYOUT = "openpose18"
KINETICS_BENCHMARK = "kinetics-skeleton"
KINETICS_NUM_CLASSES = 400
KINETICS_JOINTS = 18
KINETICS_PERSONS_IN = 5  # bodies read per frame
KINETICS_MAX_FRAMES = 300  # the reference's window: frame_index must be below it
KINETICS_FOLDERS = {"train": "kinetics_train", "test": "kinetics_val"}  # agcn split -> release folder


def video_sample(video: dict) -> tuple[np.ndarray, int]:
    """One video's JSON -> (2, T, 18, 3) float32 (x, y, score) and the persons present (<= 2)."""
    frames = video.get("data")
    if not isinstance(frames, list):
        raise SampleError("no 'data' list of frames")
    try:
        indices = [int(f["frame_index"]) for f in frames]
    except (TypeError, KeyError, ValueError):
        raise SampleError("a frame without an integer frame_index") from None
    if not indices:
        raise SampleError("no frames")
    if min(indices) < 0 or max(indices) >= KINETICS_MAX_FRAMES:
        bad = min(indices) if min(indices) < 0 else max(indices)
        raise SampleError(f"frame_index {bad} is outside the reference's window 0..{KINETICS_MAX_FRAMES - 1}")
    t = max(indices) + 1
    data = np.zeros((KINETICS_PERSONS_IN, t, KINETICS_JOINTS, 3))  # (M_in, T, V, C) float64, as the reference
    for t_idx, frame in zip(indices, frames, strict=True):
        bodies = frame.get("skeleton", [])
        if not isinstance(bodies, list):
            raise SampleError(f"frame {t_idx}: 'skeleton' is not a list")
        for m, body in enumerate(bodies[:KINETICS_PERSONS_IN]):
            try:
                pose = np.asarray(body["pose"], dtype=np.float64)
                score = np.asarray(body["score"], dtype=np.float64)
            except (TypeError, KeyError, ValueError):
                raise SampleError(f"frame {t_idx}: a body without numeric 'pose' and 'score'") from None
            if pose.shape != (2 * KINETICS_JOINTS,) or score.shape != (KINETICS_JOINTS,):
                raise SampleError(
                    f"frame {t_idx}: pose has {pose.size} values and score {score.size}, expected "
                    f"{2 * KINETICS_JOINTS} and {KINETICS_JOINTS} (OpenPose 18 joints)"
                )
            data[m, t_idx, :, 0] = pose[0::2]
            data[m, t_idx, :, 1] = pose[1::2]
            data[m, t_idx, :, 2] = score
    if not np.isfinite(data).all():
        raise SampleError("NaN or infinite pose or score values")
    data[..., :2] -= 0.5
    data[..., 1] *= -1
    data[..., :2] = np.where(data[..., 2:] == 0, 0.0, data[..., :2])  # zero x, y where the score is 0
    # per frame, slots by summed score, highest first
    order = np.argsort(-data[..., 2].sum(axis=2), axis=0, kind="stable")  # (M_in, T)
    data = np.take_along_axis(data, order[:, :, None, None], axis=0)
    return fit_and_count(data.astype(np.float32))


def read_labels(path: Path) -> dict[str, dict]:
    """The label file: `{video_id: {has_skeleton, label, label_index}}`."""
    try:
        labels = json.loads(Path(path).read_text())
    except OSError as e:
        raise AgcnError(f"{path}: cannot read label file ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AgcnError(f"{path}: not a JSON label file ({e})") from None
    except RecursionError:  # e.g. [[[[...]]]] thousands deep
        raise AgcnError(f"{path}: not a label file: its JSON nests too deep to read") from None
    if not isinstance(labels, dict) or not all(
        isinstance(v, dict) and "label_index" in v and "has_skeleton" in v for v in labels.values()
    ):
        raise AgcnError(f"{path}: expected {{video_id: {{has_skeleton, label, label_index}}}} (kinetics_*_label.json)")
    return labels


def find_splits(config: ConvertConfig) -> dict[str, tuple[Path, Path]]:
    """{split: (folder of video JSON files, label file)} for the release root or a single folder."""
    root = Path(config.source)
    if not root.is_dir():
        raise AgcnError(f"{root}: not a directory (expected a Kinetics-Skeleton folder)")
    found = {s: root / f for s, f in KINETICS_FOLDERS.items() if (root / f).is_dir()}
    if found:
        if config.labels or config.split:
            raise AgcnError(
                f"{root}: holds {', '.join(p.name for p in found.values())}, whose label files are found next to "
                "them; --labels and --split are for a single folder of video files"
            )
        splits = {s: (d, root / f"{d.name}_label.json") for s, d in found.items()}
    else:
        split = config.split or _split_from_name(root.name)
        if split is None:
            raise AgcnError(f"{root}: cannot tell the split from the folder name; pass --split train or --split test")
        if split not in KINETICS_FOLDERS:
            raise AgcnError(f"unknown split {split!r}; choose one of: {', '.join(KINETICS_FOLDERS)}")
        labels = config.labels or root.parent / f"{root.name}_label.json"
        splits = {split: (root, Path(labels))}
    for folder, labels in splits.values():
        if not labels.is_file():
            hint = "pass --labels LABEL_JSON" if folder == root else f"it belongs next to {folder.name}/"
            raise AgcnError(f"{labels}: no such label file; {hint}")
    return splits


def _split_from_name(name: str) -> str | None:
    if name.endswith("_train") or name == "train":
        return "train"
    if name.endswith(("_val", "_test")) or name in ("val", "test"):
        return "test"
    return None


@dataclass
class VideoJob(Job):
    """One video file; `item` is its file name."""

    path: Path
    name: str  # the video id
    label: int


def read_video(path: Path) -> dict:
    """One video file's JSON object (SampleError when unreadable)."""
    try:
        video = json.loads(Path(path).read_text())
    except OSError as e:
        raise SampleError(f"cannot read ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SampleError(f"not JSON ({e})") from None
    except RecursionError:  # e.g. [[[[...]]]] thousands deep
        raise SampleError("not a Kinetics-Skeleton video file: its JSON nests too deep to read") from None
    if not isinstance(video, dict):
        raise SampleError("not a Kinetics-Skeleton video file (a JSON object with 'data')")
    return video


def convert_video(job: VideoJob) -> Converted:
    video = read_video(job.path)
    if "label_index" in video and video["label_index"] != job.label:
        raise SampleError(f"label_index {video['label_index']} differs from the label file's {job.label}")
    sample, persons = video_sample(video)
    return Converted(sample, SampleMeta(job.name, job.label), persons)


def import_kinetics(config: ConvertConfig, tick: Tick | None = None) -> ConvertReport:
    """Write OUT_DIR/train.h5 and/or test.h5 from Kinetics-Skeleton JSON files."""
    t0 = time.perf_counter()
    if config.recipe not in (None, KINETICS_RECIPE):
        raise AgcnError(
            f"--recipe {config.recipe}: Kinetics-Skeleton follows 2s-AGCN's kinetics_gendata ({KINETICS_RECIPE})"
        )
    if config.benchmark or config.split_names:
        raise AgcnError("--benchmark and --split-names are for NTU data; Kinetics-Skeleton has its own train/val")
    refuse_other_layout(
        config.layout, KINETICS_LAYOUT, f"Kinetics-Skeleton holds OpenPose-18 poses (layout {KINETICS_LAYOUT})"
    )
    mapped = len(read_label_map(config.label_map)) if config.label_map else None
    num_classes = config.num_classes or mapped or KINETICS_NUM_CLASSES
    if num_classes < 1:
        raise AgcnError(f"--num-classes must be at least 1, got {num_classes}")
    splits = find_splits(config)
    jobs: list[VideoJob] = []  # split by split
    skipped: list[tuple[str, str]] = []
    excluded = 0
    for split, (folder, label_path) in splits.items():
        labels = read_labels(label_path)
        seen: dict[str, Path] = {}  # video id -> the file that gave it first
        for path in list_files(folder, ".json", " (Kinetics-Skeleton video files)"):
            name = path.name.split(".")[0]  # the video id, as the reference takes it
            entry = labels.get(name)
            if name in seen:  # e.g. abc.json and abc.v2.json: two samples under one name
                skipped.append((path.name, f"{path}: video id {name} repeats {seen[name].name}; keep one of the two"))
                continue
            seen[name] = path
            if entry is None:
                skipped.append((path.name, f"{path}: video {name} is not in {label_path.name}"))
            elif not entry["has_skeleton"]:
                excluded += 1
            else:
                try:
                    label = check_label(
                        entry["label_index"],
                        num_classes,
                        f"{label_path}: {name}",
                        class_count_hint(config, num_classes),
                    )
                except SampleError as e:
                    skipped.append((path.name, f"{label_path}: {name}: {e}"))
                    continue
                jobs.append(VideoJob(path.name, str(path), split, path, name, label))
    attrs = {
        **layout_attrs(KINETICS_LAYOUT),
        "recipe": KINETICS_RECIPE,
        "normalized": True,  # the reference's centring is applied here (see data_specs/recipes.md)
        "benchmark": KINETICS_BENCHMARK,
        "num_classes": num_classes,
        "source": KINETICS_SOURCE,
    }
    return write_splits(
        config, splits, attrs, jobs, convert_video,
        started=t0, skipped=skipped, excluded=excluded, progress=tick,
    )  # fmt: skip
