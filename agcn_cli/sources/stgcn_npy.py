"""ST-GCN / 2s-AGCN data files (`train_data_joint.npy` + `train_label.pkl`, ...) -> split files.

The `data_gen/*_gendata.py` scripts of ST-GCN and 2s-AGCN write, per part (`train`, `val`), one
array (N, C=3, T=300, V, M=2) float32 and beside it a pickle of `(sample_names, labels)`: two
lists, labels 0-based, NTU names with their `.skeleton` suffix, Kinetics names `<video id>.json`.
2s-AGCN names the array `{part}_data_joint.npy`, ST-GCN `{part}_data.npy`; 2s-AGCN's
`gen_bone_data.py` and `gen_motion_data.py` add `{part}_data_bone.npy`,
`{part}_data_joint_motion.npy` and `{part}_data_bone_motion.npy` of the same shape.

The arrays are memory-mapped (a 30 GB file need not fit in memory) and each sample is read as its
own contiguous slice, checked and converted with whole-array numpy operations. The label pickle
goes through `safe_pickle.load_pickle`. `train` becomes train.h5, `val` (or `test`) test.h5.

What a sample becomes depends on its skeleton (`data_specs/imports.md`):
- NTU (V = 25, `ntu25`) from 2s-AGCN: already pre-normalised by its `pre_normalization`, which
  also filled every person's 300 frames by repeating its frames, so the real length is lost: all
  300 frames are stored as they are, with window facts saying that nothing repeats inside them
  (period 300, centre at the origin). The full window is then the array itself.
- NTU from ST-GCN: raw camera coordinates, zero past the real frames. The real frames are
  normalised here by 2s-AGCN's `pre_normalization` (what `--recipe 2s-agcn` applies to
  `.skeleton` files), with the facts of its padded window. Which of the two a file holds is read
  from its first samples: 2s-AGCN's centring puts person 0's centre joint at the origin in every
  frame.
- Kinetics-Skeleton (V = 18, `openpose18`; x, y, score), the same from both: zero past the video,
  so trailing all-zero frames are cut (a frame counts while any value is non-zero, as 2s-AGCN's
  `feeders/tools.py` counts valid frames), and the file records source `kinetics-skeleton`,
  whose full window pads with zeros as that array does.
Stream arrays are stored as the split file's `bone`, `joint-motion` and `bone-motion` datasets, the
same frames as the joints, with the values the files hold.
"""

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.splitfile import PAD_CENTRE, PAD_PERIOD
from ..io.splitwrite import SampleMeta
from ..skeleton.layouts import get_layout
from ..skeleton.normalize import pre_normalize_2sagcn_padded
from ..skeleton.persons import fit_and_count, fit_persons
from .kinetics import KINETICS_BENCHMARK, KINETICS_NUM_CLASSES, KINETICS_SOURCE
from .ntu import BENCHMARKS, Benchmark, SkeletonError, get_benchmark, parse_name
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
    refuse_other_layout,
    write_splits,
)
from .safe_pickle import load_pickle

NPY_SOURCE = "stgcn-npy"  # NTU arrays; Kinetics arrays record KINETICS_SOURCE (their window pads with zeros)
NPY_RECIPE = "2s-agcn"
NPY_PARTS = {"train": "train", "val": "test", "test": "test"}  # file name prefix -> agcn split
NPY_JOINT_FILE = re.compile(r"(train|val|test)_data(_joint)?\.npy")  # 2s-AGCN's name, ST-GCN's name
NPY_STREAM_FILES = {"bone": "bone", "joint-motion": "joint_motion", "bone-motion": "bone_motion"}  # stream -> tail
NPY_LAYOUTS = {25: "ntu25", 18: "openpose18"}  # joints V of an (N, 3, T, V, M) array -> layout
NPY_PROBE = 64  # samples read to tell 2s-AGCN's normalised NTU joints from ST-GCN's raw ones


def is_npy_joint_file(name: str) -> bool:
    """Whether a file name is a joint array of the gendata scripts (`train_data_joint.npy`, `val_data.npy`)."""
    return NPY_JOINT_FILE.fullmatch(name) is not None


# ---- files ------------------------------------------------------------------------------------


@dataclass
class NpyPart:
    """One part's files and, once opened, its arrays."""

    split: str  # train | test
    joint: Path  # {part}_data_joint.npy or {part}_data.npy
    labels: Path  # {part}_label.pkl
    streams: dict[str, Path]  # stored stream -> its file, for the stream files present
    arrays: dict[str, np.ndarray] | None = None  # "joint" and each stream: (N, 3, T, V, M) memory maps
    raw: bool = False  # NTU joints not yet pre-normalised (ST-GCN's): normalised at import


def find_npy_parts(source: Path) -> list[NpyPart]:
    """The parts of a folder of gendata files, or the one part of a joint array's path."""
    source = Path(source)
    if source.suffix == ".npy":
        if not is_npy_joint_file(source.name):
            raise AgcnError(
                f"{source}: not a joint array of the ST-GCN/2s-AGCN gendata scripts; expected train_data_joint.npy, "
                "val_data_joint.npy (2s-AGCN) or train_data.npy, val_data.npy (ST-GCN)"
            )
        if not source.is_file():
            raise AgcnError(f"{source}: no such file")
        folder, joints = source.parent, [source]
    elif source.is_dir():
        folder = source
        joints = [folder / f"{p}_data{j}.npy" for p in NPY_PARTS for j in ("_joint", "")]
        joints = [p for p in joints if p.is_file()]
        if not joints:
            raise AgcnError(
                f"{folder}: no train_data_joint.npy / val_data_joint.npy (2s-AGCN) or train_data.npy / val_data.npy "
                "(ST-GCN) found"
            )
    else:
        raise AgcnError(f"{source}: no such file or folder")
    parts: dict[str, NpyPart] = {}
    for joint in joints:
        part = joint.name.split("_")[0]
        split = NPY_PARTS[part]
        if split in parts:
            raise AgcnError(f"{folder}: {parts[split].joint.name} and {joint.name} would both be {split}.h5; keep one")
        labels = folder / f"{part}_label.pkl"
        if not labels.is_file():
            raise AgcnError(f"{labels}: no such file; the gendata scripts write the labels beside {joint.name}")
        streams = {s: folder / f"{part}_data_{tail}.npy" for s, tail in NPY_STREAM_FILES.items()}
        parts[split] = NpyPart(split, joint, labels, {s: p for s, p in streams.items() if p.is_file()})
    return [parts[s] for s in ("train", "test") if s in parts]


def open_npy(path: Path) -> np.ndarray:
    """The (N, 3, T, V, M) array of `path`, memory-mapped; AgcnError naming the file otherwise."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as e:
        raise AgcnError(f"{path}: cannot read ({e.strerror or e})") from None
    except (ValueError, EOFError) as e:  # a short file fails here, before any sample is read
        raise AgcnError(f"{path}: not a readable .npy array ({e}); a truncated or partly copied file?") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise AgcnError(f"{path}: an .npz archive, not an .npy array")
    n, c, t, v, m = array.shape if array.ndim == 5 else (0, 0, 0, 0, 0)
    if array.dtype.kind not in "fiu":
        raise AgcnError(f"{path}: holds {array.dtype} values, expected numbers (float32)")
    if array.ndim != 5 or c != 3 or v not in NPY_LAYOUTS or t < 1 or m < 1:
        raise AgcnError(
            f"{path}: shape {array.shape}, expected (N, 3, T, 25, M) (NTU) or (N, 3, T, 18, M) (Kinetics-Skeleton), "
            "as the ST-GCN/2s-AGCN gendata scripts write"
        )
    if n == 0:
        raise AgcnError(f"{path}: holds no sample")
    return array


def read_label_pkl(path: Path, count: int, joint: Path) -> tuple[list[str], list[int]]:
    """The `(sample_names, labels)` pickle of the gendata scripts, checked against the `count`
    samples of the array `joint`."""
    data = load_pickle(path)
    sequences = list | tuple | np.ndarray  # lists as written; an array of labels in some forks
    if not (isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(v, sequences) for v in data)):
        sized = isinstance(data, tuple | list | dict)
        found = f"{type(data).__name__} of {len(data)}" if sized else type(data).__name__
        raise AgcnError(f"{path}: expected a pickle of (names, labels), two lists, as gendata writes; found {found}")
    names, labels = (list(v) if isinstance(v, np.ndarray) and v.ndim == 1 else v for v in data)
    if isinstance(names, np.ndarray) or isinstance(labels, np.ndarray):
        raise AgcnError(f"{path}: sample names and labels must be flat lists; found arrays of rank > 1")
    if len(names) != len(labels):
        raise AgcnError(f"{path}: {len(names)} sample names but {len(labels)} labels")
    if len(names) != count:
        raise AgcnError(f"{path}: {len(names)} samples, but {joint.name} holds {count}")
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        if not isinstance(name, str) or not name.strip() or not name.isprintable():
            raise AgcnError(f"{path}: sample name #{i} is {name!r}, not a name")
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise AgcnError(f"{path}: {name}: label {label!r} is not an integer class")
    return [str(n) for n in names], [int(v) for v in labels]


def sample_meta(name: str, label: int, layout: str) -> SampleMeta:
    """The stored name and fields of a gendata sample name: an NTU name without `.skeleton` (its
    setup, camera, subject, replication), a Kinetics video id (the name up to its first dot, as
    Kinetics-Skeleton JSON is named), or the name as given, fields -1."""
    try:
        info = parse_name(name)
        return SampleMeta(info.name, label, info.setup, info.camera, info.subject, info.replication)
    except SkeletonError:
        stored = name.split(".")[0] if layout == "openpose18" else name.removesuffix(".skeleton")
        return SampleMeta(stored or name, label)


# ---- one sample -------------------------------------------------------------------------------


@dataclass
class RowJob(Job):
    """One sample of a part; `item` is its stored name."""

    row: int  # its index in the part's arrays
    meta: SampleMeta


def real_frames(x: np.ndarray) -> int:
    """Frames of a (C, T, V, M) sample up to its last frame with a non-zero value (0: all zero)."""
    valid = np.flatnonzero((x != 0).any(axis=(0, 2, 3)))
    return int(valid[-1]) + 1 if len(valid) else 0


def convert_row(job: RowJob, part: NpyPart, normalize: dict | None) -> Converted:
    """One sample of a part -> the stored (2, T, V, C) sample with its stored streams.

    `normalize`: the NTU layout's normalisation (None for Kinetics arrays, stored as they are).
    """
    x = np.asarray(part.arrays["joint"][job.row], dtype=np.float32)  # (C, T, V, M), one contiguous read
    if not np.isfinite(x).all():
        raise SampleError("joint has NaN or infinite values")
    t = real_frames(x)
    if t == 0:
        raise SampleError("no skeleton: every value is zero")
    sample = x[:, :t].transpose(3, 1, 2, 0)  # (M, T, V, C)
    extras = frame_extras = None
    if normalize is not None:
        origin = normalize["origin"]
        if part.raw:  # ST-GCN's camera coordinates: 2s-AGCN's pre_normalization, with its window facts
            sample, pad = pre_normalize_2sagcn_padded(sample, **normalize)
            if not np.isfinite(sample).all():
                raise SampleError("coordinates out of range: the 2s-agcn normalisation gives inf/NaN")
            periods, centre = pad.periods, pad.centre
        elif sample[0, :, origin].any():
            raise SampleError(
                f"person 0's centre joint (index {origin}) is off the origin: not 2s-AGCN's pre-normalised joints, "
                "unlike the file's first samples"
            )
        else:  # 2s-AGCN's normalised array: nothing repeats inside its frames, the centre is at the origin
            periods = np.where(sample.reshape(len(sample), -1).any(axis=1), t, 0)
            centre = np.zeros((t, 3), np.float32)
        extras, frame_extras = {PAD_PERIOD: fit_persons(periods).astype(np.int32)}, {PAD_CENTRE: centre}
    sample, persons = fit_and_count(sample)
    for stream, array in part.arrays.items():
        if stream == "joint":
            continue
        y = np.asarray(array[job.row, :, :t], dtype=np.float32)  # (C, T, V, M)
        if not np.isfinite(y).all():
            raise SampleError(f"{part.streams[stream].name} has NaN or infinite values")
        rows = np.array(fit_persons(y.transpose(1, 3, 2, 0), axis=1))  # (T, M, V, C), a copy, not a view of the map
        frame_extras = {**(frame_extras or {}), stream: rows}
    return Converted(sample, job.meta, persons, extras, frame_extras)


# ---- the whole import -------------------------------------------------------------------------


def open_part(part: NpyPart, layout: str | None) -> str:
    """Open the part's arrays (checked: shapes, stream shapes, NTU normalisation); its layout name,
    which must be `layout` when that is given (the other part's)."""
    joint = open_npy(part.joint)
    found = NPY_LAYOUTS[joint.shape[3]]
    if layout is not None and found != layout:
        raise AgcnError(f"{part.joint}: {joint.shape[3]} joints ({found}), but the other part holds {layout}")
    part.arrays = {"joint": joint}
    for stream, path in part.streams.items():
        array = open_npy(path)
        if array.shape != joint.shape:
            raise AgcnError(f"{path}: shape {array.shape}, but {part.joint.name} has {joint.shape}; regenerate it")
        part.arrays[stream] = array
    if found == "ntu25":
        origin = get_layout(found).normalize["origin"]
        probe = np.asarray(joint[:NPY_PROBE, :, :, :, 0], dtype=np.float32)  # (n, C, T, V) person 0
        present = probe.reshape(len(probe), -1).any(axis=1)
        part.raw = bool(present.any()) and bool(probe[np.argmax(present), :, :, origin].any())
        if part.raw and part.streams:
            raise AgcnError(
                f"{part.joint}: raw camera coordinates (ST-GCN's), normalised at import, so the stream files beside "
                f"them ({', '.join(p.name for p in part.streams.values())}) do not fit; remove them (agcn streams "
                "derives the streams from the normalised joints)"
            )
    return found


def import_npy(config: ConvertConfig, tick: Tick | None = None) -> ConvertReport:
    """Write OUT_DIR/train.h5 and/or test.h5 from the gendata arrays of `config.source`."""
    t0 = time.perf_counter()
    if config.recipe not in (None, NPY_RECIPE):
        raise AgcnError(f"--recipe {config.recipe}: the gendata arrays follow 2s-AGCN's scripts ({NPY_RECIPE})")
    # an empty --split-names names no split key: nothing to refuse
    given = {"--split-names": config.split_names or None, "--labels": config.labels, "--split": config.split}
    for option, value in given.items():
        if value is not None:
            raise AgcnError(f"{option} does not apply to gendata arrays: train_* is train.h5, val_* is test.h5")
    if config.num_classes is not None and config.num_classes < 1:
        raise AgcnError(f"--num-classes must be at least 1, got {config.num_classes}")
    parts = find_npy_parts(config.source)
    layout = None
    for part in parts:
        layout = open_part(part, layout)
    refuse_other_layout(config.layout, layout, f"{parts[0].joint.name} holds the {layout} layout")
    kinetics = layout == "openpose18"
    if kinetics and config.benchmark:
        raise AgcnError(f"--benchmark is for NTU arrays; {parts[0].joint.name} holds Kinetics-Skeleton's 18 joints")
    bench = get_benchmark(config.benchmark) if config.benchmark else None
    mapped = len(read_label_map(config.label_map)) if config.label_map else None
    default = KINETICS_NUM_CLASSES if kinetics else (bench.num_classes if bench else None)
    num_classes = config.num_classes or mapped or default
    if num_classes is None:
        raise AgcnError(
            f"{config.source}: NTU arrays: pass --benchmark ({', '.join(BENCHMARKS)}; it records the benchmark and "
            "sets the class count) or --num-classes"
        )

    jobs, skipped = _row_jobs(parts, layout, bench, num_classes, class_count_hint(config, num_classes))

    attrs = {
        **layout_attrs(layout),
        "recipe": NPY_RECIPE,
        "normalized": True,  # 2s-AGCN's pre_normalization (NTU; at import for ST-GCN's), Kinetics centred
        "benchmark": KINETICS_BENCHMARK if kinetics else (bench.name if bench else "custom"),
        "num_classes": num_classes,
        "source": KINETICS_SOURCE if kinetics else NPY_SOURCE,
    }
    by_split = {part.split: part for part in parts}
    normalize = None if kinetics else get_layout(layout).normalize
    # a copy per sample leaves nothing for worker processes to share out, but the normalisation
    run = config if any(part.raw for part in parts) else replace(config, workers=1)
    return write_splits(
        run, by_split, attrs, jobs, lambda job: convert_row(job, by_split[job.split], normalize),
        started=t0, skipped=skipped, progress=tick,
        split_attrs={part.split: {"source_file": part.joint.name} for part in parts},
    )  # fmt: skip


def _row_jobs(
    parts: list[NpyPart], layout: str, bench: Benchmark | None, num_classes: int, hint: str
) -> tuple[list[RowJob], list[tuple[str, str]]]:
    """The samples of the parts, split by split, each in name order, and those skipped (a repeated
    name); AgcnError for a label outside 0..num_classes-1 (`hint`: how to fix it) or a name outside
    the benchmark's split."""
    jobs: list[RowJob] = []
    skipped: list[tuple[str, str]] = []
    for part in parts:
        names, labels = read_label_pkl(part.labels, len(part.arrays["joint"]), part.joint)
        rows: dict[str, RowJob] = {}
        for row, (name, label) in enumerate(zip(names, labels, strict=True)):
            meta = sample_meta(name, check_label(label, num_classes, f"{part.labels}: {name}", hint), layout)
            if meta.name in rows:
                skipped.append((meta.name, f"{part.labels}: {name}: repeats sample #{rows[meta.name].row}'s name"))
                continue
            if bench is not None and meta.setup >= 0:
                _check_benchmark(bench, meta, part)
            rows[meta.name] = RowJob(meta.name, f"{part.joint}: {meta.name}", part.split, row, meta)
        jobs += [rows[n] for n in sorted(rows)]
    return jobs, skipped


def _check_benchmark(bench: Benchmark, meta: SampleMeta, part: NpyPart) -> None:
    """AgcnError when an NTU sample's name puts it outside `bench` or in its other split: the
    arrays were made for another benchmark (e.g. xview arrays imported as ntu60-xsub)."""
    info = parse_name(meta.name)
    other = "train" if part.split == "test" else "test"
    if not bench.includes(info) or (bench.is_train(info) != (part.split == "train")):
        where = f"the {other} split of {bench.name}" if bench.includes(info) else f"outside {bench.name}"
        raise AgcnError(
            f"{part.labels}: {meta.name} belongs to {where}, but {part.joint.name} makes {part.split}.h5; "
            "pass the --benchmark the arrays were made for"
        )
