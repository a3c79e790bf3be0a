"""MMAction2 / pyskl skeleton annotation files (`ntu60_3d.pkl`, `ntu60_2d.pkl`, ...) -> split files.

The file is a pickled dict: `split` maps a split name (`xsub_train`, `xsub_val`, `xview_*`,
`xset_*`) to a list of sample names, and `annotations` is a list of dicts, one per sample:
`frame_dir` (the name; `filename` in some files), `label` (0-based), `total_frames`, `keypoint`
(M, T, V, C) and, for 2D poses, `keypoint_score` (M, T, V) plus `img_shape` (height, width).
MMAction2's `PoseDataset` keeps the annotations whose name is listed under the split.
Two more layouts hold one split, named by `--split train|test`: a single annotation dict (one
sample: PaddleVideo's example file, pyskl's per-video outputs) and a bare list of them (MMAction2
0.x). A split file holds labelled samples only: a sample without a label (no `label`, None or
negative, as pyskl writes for unlabelled videos) stops the run, pointing at `agcn predict`.

Pickles can run arbitrary code when loaded: the file is read with `safe_pickle.load_pickle`,
which rebuilds plain numeric numpy arrays and Python containers and refuses anything else.

The layout is detected from the arrays (`PKL_LAYOUTS`), or given (`--layout`, a built-in name or a
`.json` layout file): keypoints (M, T, V, C) without `keypoint_score` fit a layout of V joints and C
channels with no score channel; (M, T, V, 2) with `keypoint_score` fit one of V joints and channels
x, y, score.

Each sample goes through what MMAction2's pipeline does before sampling frames, once here:
- 3D (NTU-25, x, y, z): `PreNormalize3D` (`skeleton.normalize.pre_normalize_3d`), in the stored dtype
  (float16 in pyskl's files) for the centring, as there; a layout without a `normalize` entry
  (COCO-17 3D, `coco17-3d`; a custom layout) keeps the coordinates as stored, in float32;
- 2D (COCO-17, or OpenPose-18; x, y, score): `PreNormalize2D`, x and y mapped from pixels to
  [-1, 1] by the sample's `img_shape` (default 1080 x 1920), in the stored dtype as there (it
  rescales pyskl's float16 arrays in place), every joint alike, unscored ones included; then the
  score appended as the third channel, as `GenSkeFeat` / `FormatGCNInput` concatenate it;
then persons are cut or zero-padded to 2 (`FormatGCNInput(num_person=2)`).
"""

import json
import pickle
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.atomic import atomic_output
from ..io.splitwrite import SampleMeta
from ..skeleton.layouts import Layout, get_layout, load_layout
from ..skeleton.normalize import DEFAULT_IMG_SHAPE, pre_normalize_2d, pre_normalize_3d
from ..skeleton.persons import fit_and_count
from .choices import SPLITS
from .ntu import DEFAULT_BENCHMARK, Benchmark, SkeletonError, get_benchmark, parse_name
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
    read_label_map,
    write_splits,
)
from .safe_pickle import load_pickle

PKL_SOURCE = "mmaction2-pkl"
PKL_RECIPE = "mmaction2"
# Limits on one annotation, checked before any copy: a sample this long or crowded is no action clip
PKL_MAX_FRAMES = 100_000  # ~55 minutes at 30 fps
PKL_MAX_PERSONS = 1_000  # pyskl's 2D Kinetics annotations list every detected person
# (channels in the file, has keypoint_score, joints) -> layout
PKL_LAYOUTS = {
    (3, False, 25): "ntu25",
    (3, False, 17): "coco17-3d",
    (2, True, 17): "coco17",
    (2, True, 18): "openpose18",
}


def write_annotation_file(path: Path, data: dict) -> None:
    """An annotation file, written whole (a temporary name, then renamed): pickle protocol 4, which
    MMAction2's and pyskl's readers load."""
    with atomic_output(Path(path)) as tmp, open(tmp, "wb") as f:
        pickle.dump(data, f, protocol=4)


def load_annotation_file(path: Path) -> dict:
    """The pickled `{split, annotations}` dict of `path`, structure checked; arrays unchecked.

    A file of one split's annotations, a single annotation dict (named after the file when it has
    no `frame_dir`) or a bare list of them, comes back as `{"split": None, "annotations": [...],
    "holds": what the file holds, in words}`.
    """
    data = load_pickle(path)
    if isinstance(data, dict) and "annotations" not in data and "keypoint" in data:
        if annotation_name(data) is None and "frame_dir" not in data and "filename" not in data:
            data = {**data, "frame_dir": Path(path).stem}  # one sample needs no name inside: the file's
        return {"split": None, "annotations": [data], "holds": "one annotation dict (a single sample)"}
    if isinstance(data, list | tuple) and any(isinstance(a, dict) for a in data):
        return {"split": None, "annotations": list(data), "holds": f"list of {len(data)} annotation dicts"}
    if isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(v, list) for v in data):
        raise AgcnError(
            f"{path}: a (sample names, labels) pair, the label file of ST-GCN/2s-AGCN .npy arrays; "
            f"import the folder holding them: agcn preprocess {Path(path).parent} OUT_DIR"
        )
    if not isinstance(data, dict) or not {"split", "annotations"} <= data.keys():
        found = f"a dict with keys {', '.join(map(str, data))}" if isinstance(data, dict) else type(data).__name__
        raise AgcnError(
            f"{path}: expected an MMAction2/pyskl annotation file, a dict with 'split' and 'annotations'; found {found}"
        )
    split, annotations = data["split"], data["annotations"]
    if not isinstance(split, dict) or not all(isinstance(v, list | tuple) for v in split.values()):
        raise AgcnError(f"{path}: 'split' must map split names to lists of sample names")
    if not isinstance(annotations, list | tuple):
        raise AgcnError(f"{path}: 'annotations' must be a list of dicts, found {type(annotations).__name__}")
    return data


# ---- choosing splits and layout ---------------------------------------------------------------


LABEL_NAMES_KEY = "label_names"  # agcn's own top-level key (agcn extract): class names, class 0 first
OWN_SPLITS = ("train", "val", "test")  # the split names of a file agcn extract wrote (no benchmark's)


def file_label_names(path: Path, data: dict) -> tuple[str, ...] | None:
    """The class names a file carries under `label_names` (MMAction2's readers ignore the key)."""
    names = data.get(LABEL_NAMES_KEY)
    if names is None:
        return None
    if not isinstance(names, list | tuple) or not names or not all(isinstance(n, str) for n in names):
        raise AgcnError(f"{path}: '{LABEL_NAMES_KEY}' must be a non-empty list of class names")
    bad = next((n for n in names if not n.strip() or not n.isprintable()), None)
    if bad is not None:
        raise AgcnError(f"{path}: '{LABEL_NAMES_KEY}' holds class name {bad!r} (empty or with control characters)")
    if len(set(names)) != len(names):
        raise AgcnError(f"{path}: '{LABEL_NAMES_KEY}' repeats a class name")
    return tuple(names)


def split_keys(config: ConvertConfig, available: dict, file_names: tuple[str, ...] | None = None
               ) -> tuple[dict[str, str], str, int]:  # fmt: skip
    """({train/test: split key}, benchmark attribute, num_classes) from the options; a file of
    agcn's own splits (train[, val or test], no benchmark asked for) needs none."""
    path = config.source
    if config.split:
        raise AgcnError(
            f"{path}: holds splits {', '.join(map(str, available))}; pick them with --split-names TRAIN[,TEST] "
            "(--split names the split of a file holding one: a single annotation or a bare list)"
        )
    if config.split_names:
        names = [n.strip() for n in config.split_names if n.strip()]
        if not 1 <= len(names) <= 2:
            raise AgcnError(f"--split-names: give 1 or 2 split names (train[,test]), got {config.split_names}")
        keys = dict(zip(("train", "test"), names, strict=False))
        bench = get_benchmark(config.benchmark) if config.benchmark else None
    elif config.benchmark is None and "train" in available and set(available) <= set(OWN_SPLITS):
        keys = dict(zip(("train", "test"), [k for k in OWN_SPLITS if k in available], strict=False))
        bench = None
    else:
        bench = get_benchmark(config.benchmark or DEFAULT_BENCHMARK)
        protocol = bench.name.split("-")[1]
        keys = {"train": f"{protocol}_train", "test": f"{protocol}_val"}
    missing = [k for k in keys.values() if k not in available]
    if missing:
        have = ", ".join(map(str, available)) or "none"
        raise AgcnError(f"{path}: no split {missing[0]!r}; the file has: {have}. Pass --split-names TRAIN,TEST")
    return keys, (bench.name if bench else "custom"), _num_classes(config, bench, "--split-names", file_names)


def one_split(config: ConvertConfig, holds: str) -> tuple[dict[str, None], str, int]:
    """({split: None}, benchmark attribute, num_classes) for a file of one split's annotations
    (`holds` says what it holds); the split is `--split`."""
    path = config.source
    if config.split is None:
        raise AgcnError(
            f"{path}: expected an MMAction2/pyskl annotation file (a dict with 'split' and 'annotations'), found "
            f"{holds}; pass --split train or --split test to import it as that split"
        )
    if config.split not in SPLITS:
        raise AgcnError(f"--split {config.split!r}: choose one of: {', '.join(SPLITS)}")
    if config.split_names:
        raise AgcnError(f"{path}: holds {holds}, no 'split' keys for --split-names; name its split with --split")
    bench = get_benchmark(config.benchmark) if config.benchmark else None
    return {config.split: None}, (bench.name if bench else "custom"), _num_classes(config, bench, "--split")


def _num_classes(config: ConvertConfig, bench: Benchmark | None, how: str, file_names: tuple | None = None) -> int:
    """--num-classes, else the number of --label-map names, else of the file's own names, else the benchmark's."""
    mapped = len(read_label_map(config.label_map)) if config.label_map else None
    num_classes = config.num_classes or mapped or (len(file_names) if file_names else None)
    num_classes = num_classes or (bench.num_classes if bench else None)
    if num_classes is None:
        raise AgcnError(f"{config.source}: with {how} and no --benchmark, pass --num-classes (or a --label-map)")
    return num_classes


def _no_label(label: object) -> bool:
    """No class: absent, None, or negative (pyskl writes -1 for an unlabelled video)."""
    return label is None or (isinstance(label, int | np.integer) and not isinstance(label, bool) and label < 0)


def _signature(ann: object) -> tuple[int, bool, int] | None:
    kp = ann.get("keypoint") if isinstance(ann, dict) else None
    if not isinstance(kp, np.ndarray) or kp.ndim != 4:
        return None
    return kp.shape[3], "keypoint_score" in ann, kp.shape[2]


def layout_signature(layout: Layout) -> tuple[int, bool, int]:
    """(channels in the file, has keypoint_score, joints) of the samples that fit `layout`."""
    scored = layout.channels[-1] == "score"
    return len(layout.channels) - scored, scored, layout.num_joints


def _shape_text(sig: tuple[int, bool, int]) -> str:
    return f"(M, T, {sig[2]}, {sig[0]}){' + keypoint_score' if sig[1] else ''}"


def _found(annotations: list) -> str:
    shapes = Counter(_shape_text(s) for s in map(_signature, annotations) if s)
    return shapes.most_common(1)[0][0] if shapes else "no 4-D keypoint array"


def given_layout(arg: str) -> tuple[Layout, tuple[int, bool, int]]:
    """The layout of `--layout` (a built-in name or a .json layout file) and the keypoint signature
    of the samples that fit it; AgcnError when no .pkl sample could."""
    layout = load_layout(arg)
    sig = layout_signature(layout)
    if sig[1] and sig[0] != 2:
        raise AgcnError(
            f"{arg}: a layout with a score channel is imported from x, y keypoints plus keypoint_score; "
            f"its channels must be x, y, score, not {', '.join(layout.channels)}"
        )
    return layout, sig


def choose_layout(
    path: Path, annotations: list, given: tuple[Layout, tuple[int, bool, int]] | None = None
) -> tuple[Layout, tuple[int, bool, int]]:
    """The layout `given` (`given_layout`), else the detected one (`detect_layout`); with the
    keypoint signature of the samples that fit it."""
    if given is None:
        name, sig = detect_layout(path, annotations)
        return get_layout(name), sig
    layout, sig = given
    if sig not in set(map(_signature, annotations)):
        raise AgcnError(
            f"{path}: no sample fits layout {layout.name}, which needs keypoints {_shape_text(sig)}; "
            f"the file holds {_found(annotations)}"
        )
    return layout, sig


def detect_layout(path: Path, annotations: list) -> tuple[str, tuple[int, bool, int]]:
    """The built-in layout most samples fit (others are skipped one by one with their reason)."""
    counts = Counter(sig for sig in map(_signature, annotations) if sig in PKL_LAYOUTS)
    if not counts:
        found = _found(annotations)
        raise AgcnError(
            f"{path}: keypoints {found} match no layout; expected (M, T, 25, 3) (NTU 3D), (M, T, 17, 3) (COCO 3D), "
            "or (M, T, 17, 2) with keypoint_score (COCO 2D) or (M, T, 18, 2) with keypoint_score (OpenPose 2D); "
            "for another skeleton pass --layout FILE.json"
        )
    sig = counts.most_common(1)[0][0]
    return PKL_LAYOUTS[sig], sig


# ---- one sample -------------------------------------------------------------------------------


def annotation_name(ann: object) -> str | None:
    """The sample name of an annotation: `frame_dir` (`filename` in some files); None if it has none."""
    name = ann.get("frame_dir", ann.get("filename")) if isinstance(ann, dict) else None
    return str(name) if isinstance(name, str | bytes | np.str_) else None


def _float_array(value: object, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or not (
        np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
    ):
        raise SampleError(f"{what} is not a numeric array")
    return value if np.issubdtype(value.dtype, np.floating) else value.astype(np.float32)


@dataclass
class AnnotationJob(Job):
    """One annotation of the file; `item` is its frame_dir name."""

    ann: dict


def convert_annotation(job: AnnotationJob, layout: Layout | str, sig: tuple, num_classes: int) -> Converted:
    """One annotation -> the stored (2, T, V, C) sample, pre-normalised as MMAction2's pipeline.
    `layout`: a Layout, or a built-in layout's name."""
    ann, name = job.ann, job.item
    spec = get_layout(layout) if isinstance(layout, str) else layout
    kp = ann.get("keypoint")
    if not isinstance(kp, np.ndarray) or kp.ndim != 4:
        found = f"shape {kp.shape}" if isinstance(kp, np.ndarray) else type(kp).__name__
        raise SampleError(f"keypoint has {found}, expected an array (M, T, V, C)")
    if _signature(ann) != sig:
        raise SampleError(
            f"keypoint (M, T, V, C) = {kp.shape}{' with' if 'keypoint_score' in ann else ' without'} keypoint_score "
            f"does not fit layout {spec.name} ({spec.num_joints} joints) of the other samples"
        )
    if kp.shape[1] > PKL_MAX_FRAMES or kp.shape[0] > PKL_MAX_PERSONS:
        raise SampleError(
            f"keypoint (M, T, V, C) = {kp.shape}: more than {PKL_MAX_PERSONS} persons or {PKL_MAX_FRAMES} frames "
            "(NTU and Kinetics samples hold at most 300 frames)"
        )
    kp = _float_array(kp, "keypoint")
    m, t = kp.shape[:2]
    total = ann.get("total_frames", t)
    if t == 0 or total == 0:
        raise SampleError("no frames")
    if m == 0:
        raise SampleError("no person")
    if total != t:
        raise SampleError(f"total_frames {total} but keypoint holds {t} frames")
    if not np.isfinite(kp).all():
        raise SampleError("keypoint has NaN or infinite values")
    label = check_label(ann.get("label"), num_classes, job.where)
    extras = None
    if spec.normalize is not None:  # 3D. PreNormalize3D handles 1 or 2 persons; FormatGCNInput keeps 2
        sample = pre_normalize_3d(kp[:2], **spec.normalize, dtype=np.float32)
    elif not sig[1]:  # no score channel and no normalisation in the layout: stored as given
        sample = np.asarray(kp[:2], dtype=np.float32)
    else:
        score = _float_array(ann.get("keypoint_score"), "keypoint_score")
        if score.shape != kp.shape[:3]:
            raise SampleError(f"keypoint_score has shape {score.shape}, expected {kp.shape[:3]}")
        if not np.isfinite(score).all():
            raise SampleError("keypoint_score has NaN or infinite values")
        img_shape = ann.get("img_shape", DEFAULT_IMG_SHAPE)
        try:
            h, w = (float(s) for s in img_shape)
        except (TypeError, ValueError):
            raise SampleError(f"img_shape {img_shape!r} is not (height, width)") from None
        if not (h > 0 and w > 0):
            raise SampleError(f"img_shape {img_shape!r} is not a positive (height, width)")
        # PreNormalize2D in the stored dtype, then the score as the third channel (FormatGCNInput)
        sample = pre_normalize_2d(kp[:2], (h, w), score=score[:2], dtype=kp.dtype)
        extras = {"img_shape": np.array([h, w], dtype=np.int32)}
    sample, persons = fit_and_count(sample)
    try:
        info = parse_name(name)
        meta = SampleMeta(name, label, info.setup, info.camera, info.subject, info.replication)
    except SkeletonError:  # not an NTU name: fields unknown
        meta = SampleMeta(name, label)
    return Converted(sample, meta, persons, extras)


# ---- the whole file ---------------------------------------------------------------------------


def import_pkl(config: ConvertConfig, tick: Tick | None = None) -> ConvertReport:
    """Write OUT_DIR/train.h5 (and test.h5) from the annotation file `config.source`."""
    t0 = time.perf_counter()
    path = Path(config.source)
    if config.recipe not in (None, PKL_RECIPE):
        raise AgcnError(
            f"{path}: --recipe {config.recipe} needs raw .skeleton files; an annotation file holds pyskl's bodies, "
            f"imported with the {PKL_RECIPE} recipe"
        )
    if config.labels:
        raise AgcnError(f"{path}: --labels is for Kinetics-Skeleton folders; an annotation file holds its labels")
    if config.num_classes is not None and config.num_classes < 1:
        raise AgcnError(f"--num-classes must be at least 1, got {config.num_classes}")
    given = given_layout(config.layout) if config.layout is not None else None
    data = load_annotation_file(path)
    file_names = file_label_names(path, data) if config.label_map is None else None
    if data["split"] is None:
        keys, benchmark, num_classes = one_split(config, data["holds"])
    else:
        keys, benchmark, num_classes = split_keys(config, data["split"], file_names)
    if file_names is not None and len(file_names) != num_classes:
        raise AgcnError(
            f"{path}: names {len(file_names)} classes in '{LABEL_NAMES_KEY}', but --num-classes is {num_classes}"
        )

    by_name, skipped = _by_name(path, data["annotations"])
    jobs: list[AnnotationJob] = []  # split by split
    used: set[str] = set()
    for split, key in keys.items():
        names = sorted({str(n) for n in data["split"][key]} if key is not None else by_name)
        for n in names:
            if n not in by_name:
                skipped.append((n, f"{path}: {n}: listed in split {key!r} but has no annotation"))
        jobs += [AnnotationJob(n, f"{path}: {n}", split, by_name[n]) for n in names if n in by_name]
        used.update(n for n in names if n in by_name)
    if not used:
        where = f"splits {', '.join(keys.values())} list" if data["split"] is not None else "holds"
        raise AgcnError(f"{path}: {where} no annotated sample")
    layout, sig = choose_layout(path, [by_name[n] for n in sorted(used)], given)
    _check_labels(config, {n: by_name[n] for n in sorted(used)}, num_classes)

    attrs = {
        **layout_attrs(layout),
        "recipe": PKL_RECIPE,
        "normalized": True,  # PreNormalize3D / PreNormalize2D applied here (see data_specs/recipes.md)
        "benchmark": benchmark,
        "num_classes": num_classes,
        "source": PKL_SOURCE,
        "source_file": path.name,  # and, per file, source_split: the pkl's split key
        **({"label_names": json.dumps(list(file_names))} if file_names else {}),
    }

    return write_splits(
        config, keys, attrs, jobs, lambda job: convert_annotation(job, layout, sig, num_classes),
        started=t0, skipped=skipped, outside=len(by_name) - len(used),
        split_attrs={split: {"source_split": key} for split, key in keys.items() if key is not None},
        progress=tick,
    )  # fmt: skip


def _by_name(path: Path, annotations: list) -> tuple[dict[str, dict], list[tuple[str, str]]]:
    """The annotations by frame_dir name (the first of a repeated name kept), and the skipped ones."""
    skipped: list[tuple[str, str]] = []
    by_name: dict[str, dict] = {}
    for i, ann in enumerate(annotations):
        name = annotation_name(ann)
        if name is None:
            item = f"annotation #{i}"
            skipped.append((item, f"{path}: {item}: not a dict with a frame_dir name"))
        elif name in by_name:
            problem = f"annotation #{i} repeats this frame_dir; the first one is kept"
            skipped.append((name, f"{path}: {name}: {problem}"))
        else:
            by_name[name] = ann
    return by_name, skipped


def _check_labels(config: ConvertConfig, used: dict[str, dict], num_classes: int) -> None:
    """AgcnError, before anything is written, for a sample of `used` (name -> annotation, in name
    order) without a label or with one outside 0..num_classes-1."""
    path = config.source
    unlabelled = [n for n, ann in used.items() if _no_label(ann.get("label"))]
    if unlabelled:  # a split file's labels are classes 0..num_classes-1: nothing to train or test on
        value = used[unlabelled[0]].get("label")
        found = "no label" if value is None else f"label {int(value)}"
        raise AgcnError(
            f"{path}: {unlabelled[0]}: {found} ({len(unlabelled)} of {len(used)} samples unlabelled); split files "
            f"hold labelled samples: add labels 0..{num_classes - 1}, or classify them with: agcn predict CKPT {path}"
        )
    for name, ann in used.items():
        label = ann.get("label")
        if isinstance(label, int | np.integer) and not isinstance(label, bool):
            check_label(label, num_classes, f"{path}: {name}", class_count_hint(config, num_classes))
