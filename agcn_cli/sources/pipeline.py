"""The one conversion pipeline: jobs of any source format -> HDF5 split files.

One `ConvertConfig` holds the options of every format. A converter (`ntu_convert`, `pkl`,
`kinetics`, `stgcn_npy`) lists its samples as `Job`s, each naming its split, and gives a function
`job -> Converted`. This module runs that function over the jobs (in worker processes when there
are many, results in job order: `map_in_pool`, which `synth` uses too), streams the samples into
one file per split (`data_specs/hdf5.md`; atomic, all or nothing) and reports what it wrote and
skipped.

One skip policy for every format: a function that cannot use a sample raises `SampleError`
with the problem; the sample is listed in the report as `(job.item, reason)`, where the reason
is `"{job.where}: {problem}"`, naming the file (and the sample inside a file of many). Samples a
converter rejects while listing its jobs are listed the same way. With `strict` the first bad
sample fails the run with that reason as its one error line.
"""

import json
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from ..errors import AgcnError
from ..io.atomic import refuse_existing
from ..io.splitwrite import SampleMeta, SplitWriter
from ..skeleton.layouts import Layout, get_layout, load_layout, resolve_layout
from ..skeleton.persons import NUM_PERSONS

MIN_POOL_JOBS = 16  # fewer jobs are converted in this process: starting workers would cost more
POOL_CHUNKSIZE = 8  # jobs handed to a worker at a time
_T = TypeVar("_T")
_R = TypeVar("_R")


class SampleError(AgcnError):
    """One unusable sample: skipped and listed in the report (the run fails with `strict`).

    The text is the problem; the pipeline puts the job's place before it, unless `located` says
    that the text names its place already (the `.skeleton` parser names file and line).
    """

    def __init__(self, problem: str, located: bool = False):
        super().__init__(problem)
        self.located = located


@dataclass
class ConvertConfig:
    """What `agcn preprocess` converts and how: one config for every format (`formats.convert`)."""

    source: Path  # a folder of .skeleton files, a .pkl annotation file, a Kinetics-Skeleton folder, gendata .npy arrays
    out_dir: Path  # receives train.h5 and/or test.h5
    format: str = "auto"  # auto | ntu | pkl | kinetics | npy (auto: from the file or the folder's names)
    benchmark: str | None = None  # NTU benchmark: splits and num_classes (ntu, pkl: default ntu60-xsub; npy: checked)
    recipe: str | None = None  # ntu: mmaction2 (default) | 2s-agcn; other formats follow their source's, only checked
    missing_list: Path | None = None  # ntu: samples to exclude; None: the benchmark's shipped list
    split_names: tuple[str, ...] | None = None  # pkl: split keys for train[, test], instead of the benchmark's
    num_classes: int | None = None  # classifier size; default: the benchmark's (60/120), 400 for Kinetics
    labels: Path | None = None  # kinetics: label JSON of a single folder
    split: str | None = None  # train | test of a single Kinetics folder (default: from its name) or one-split .pkl
    layout: str | None = None  # a built-in layout name or a .json layout file (pkl: read in it; others: checked)
    label_map: Path | None = None  # class names, one a line; sets num_classes unless --num-classes is given
    strict: bool = False  # any bad sample fails the run instead of being skipped
    overwrite: bool = False  # replace existing outputs
    workers: int = 0  # processes converting samples; 0: one per CPU core


@dataclass
class Job:
    """One sample to convert; each format subclasses it with what its convert function reads."""

    item: str  # names the sample in the skipped list: its file, or its name inside a file of many
    where: str  # starts the reason of a skip: the file, and the sample inside a file of many
    split: str  # the output it goes to: train | test


@dataclass
class Converted:
    """One sample ready for the writer."""

    sample: np.ndarray  # (2, T, V, C) float32, persons zero-padded to 2
    meta: SampleMeta
    persons: int  # persons really present (at most 2)
    extras: dict[str, np.ndarray] | None = None  # per-sample values of extra datasets, e.g. img_shape
    frame_extras: dict[str, np.ndarray] | None = None  # per-frame values (T, ...) of extra datasets, e.g. pad_centre


@dataclass
class SplitSummary:
    path: Path
    samples: int = 0
    frames: int = 0
    class_counts: Counter = field(default_factory=Counter)

    def add(self, item: Converted) -> None:
        self.samples += 1
        self.frames += item.sample.shape[1]
        self.class_counts[item.meta.label] += 1


@dataclass
class ConvertReport:
    splits: dict[str, SplitSummary]
    skipped: list[tuple[str, str]]  # (item, reason) of bad samples
    excluded: int  # left out on purpose: the missing-skeleton list, Kinetics' has_skeleton false
    outside_benchmark: int  # e.g. NTU120-only files for an NTU60 benchmark, annotations in no split
    seconds: float

    @property
    def files_processed(self) -> int:
        return sum(s.samples for s in self.splits.values()) + len(self.skipped)


# ---- progress ----------------------------------------------------------------------------------

Tick = Callable[[int], None]  # told how many more inputs are done


class ProgressBar(Protocol):
    def update(self, n: int) -> None: ...


# (total, or None when unknown; what; unit) -> a progress display, open while the inputs convert
OpenProgress = Callable[[int | None, str, str], AbstractContextManager[ProgressBar]]


@contextmanager
def ticking(progress: OpenProgress | None, total: int | None, what: str, unit: str) -> Iterator[Tick | None]:
    """The tick of the display `progress(total, what, unit)`, open for the block; None without one."""
    if progress is None:
        yield None
        return
    with progress(total, what, unit) as bar:
        yield bar.update


# ---- inputs and outputs -----------------------------------------------------------------------


def list_files(folder: Path, suffix: str, hint: str = "") -> list[Path]:
    """The files of `folder` ending in `suffix`, by name; AgcnError naming the folder when none."""
    folder = Path(folder)
    if not folder.exists():
        raise AgcnError(f"{folder}: no such file or folder")
    if not folder.is_dir():
        raise AgcnError(f"{folder}: a file, not a folder of {suffix} files")
    try:
        with os.scandir(folder) as it:
            paths = [Path(e.path) for e in it if e.name.endswith(suffix) and _maybe_file(e)]
    except OSError as e:
        raise AgcnError(f"{folder}: cannot list directory ({e.strerror})") from None
    if not paths:
        raise AgcnError(f"{folder}: no {suffix} files found{hint}")
    return sorted(paths, key=lambda p: p.name)


def _maybe_file(entry: os.DirEntry) -> bool:
    """A file, or an entry that cannot be checked (a symlink loop): listed, so that reading it
    fails for that file alone, skipped and named (or failing the run with `strict`)."""
    try:
        return entry.is_file()
    except OSError:
        return True


def output_paths(out_dir: Path, splits: Iterable[str], overwrite: bool) -> dict[str, Path]:
    """`{split: OUT_DIR/split.h5}`, after checking that they may be written."""
    out_dir = Path(out_dir)
    outputs = {split: out_dir / f"{split}.h5" for split in splits}
    refuse_existing(outputs.values(), overwrite)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AgcnError(f"{out_dir}: cannot create output directory ({e.strerror})") from None
    if not os.access(out_dir, os.W_OK):
        raise AgcnError(f"{out_dir}: output directory is not writable")
    return outputs


def layout_attrs(layout: str | Layout) -> dict[str, str]:
    """The `layout`, `layout_spec` and `channels` attributes of a split file (a name: built-in)."""
    spec = get_layout(layout) if isinstance(layout, str) else layout
    return {"layout": spec.name, "layout_spec": spec.spec(), "channels": ",".join(spec.channels)}


def refuse_other_layout(layout: str | None, native: str, holds: str) -> None:
    """AgcnError `--layout LAYOUT: HOLDS` when `layout` (a --layout given to a format of one
    skeleton) is not the topology of the built-in layout `native`."""
    if layout is not None and not load_layout(layout).same_topology(get_layout(native)):
        raise AgcnError(f"--layout {layout}: {holds}")


def read_label_map(path: Path) -> tuple[str, ...]:
    """Class names of a label map: one name a line (MMAction2's `label_map_*.txt`), surrounding
    spaces stripped, blank lines at the end ignored; an empty or repeated name is an error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AgcnError(f"{path}: no such label map file") from None
    except OSError as e:
        raise AgcnError(f"{path}: cannot read the label map ({e.strerror or e})") from None
    lines = []
    for i, line in enumerate(raw.splitlines(), start=1):
        try:
            lines.append(line.decode("utf-8-sig" if i == 1 else "utf-8").strip())  # a BOM is not part of a name
        except UnicodeDecodeError:
            raise AgcnError(f"{path}: line {i}: not UTF-8 text (a label map is one class name a line)") from None
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise AgcnError(f"{path}: the label map lists no class name (one name a line)")
    first: dict[str, int] = {}
    for i, name in enumerate(lines, start=1):
        if not name:
            raise AgcnError(f"{path}: line {i}: empty class name (one name a line, class 0 first)")
        if not name.isprintable():  # tabs, NUL, terminal escapes: they would reach tables and files as is
            raise AgcnError(f"{path}: line {i}: class name {name!r} holds control characters")
        if name in first:
            raise AgcnError(f"{path}: line {i}: class name {name!r} repeats line {first[name]}")
        first[name] = i
    return tuple(lines)


def label_map_attrs(path: Path | None, num_classes: int) -> dict[str, str]:
    """The `label_names` attribute (JSON list) of a split file from a label map, whose names must
    number the data's classes; {} without a label map."""
    if path is None:
        return {}
    names = read_label_map(path)
    if len(names) != num_classes:
        raise AgcnError(
            f"{path}: {len(names)} class names, but the data has {num_classes} classes; give one name per class "
            "(class 0 first)"
        )
    return {"label_names": json.dumps(list(names))}


# ---- one sample ----------------------------------------------------------------------------


def check_label(label: object, num_classes: int, where: str, hint: str = "") -> int:
    """The label as int; SampleError when it is not an integer, AgcnError naming `where` (for the
    whole run: the class count is wrong) when it is outside 0..num_classes-1; `hint`: where the
    count came from and what to change (`class_count_hint`)."""
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise SampleError(f"label {label!r} is not an integer")
    if not 0 <= int(label) < num_classes:
        raise AgcnError(
            f"{where}: label {int(label)} is outside 0..{num_classes - 1} ({num_classes} classes); "
            + (hint or "pass the matching --benchmark or --num-classes")
        )
    return int(label)


def class_count_hint(config: ConvertConfig, num_classes: int) -> str:
    """What set an import's class count, for a label beyond it: --num-classes, the label map's
    names, or the benchmark (or format) default."""
    if config.num_classes:
        return f"--num-classes {num_classes} is too few for it"
    if config.label_map:
        return (
            f"the label map {config.label_map} names only {num_classes} classes: give every class a name "
            "(or pass --num-classes)"
        )
    return "pass the matching --benchmark or --num-classes"


# ---- the run ----------------------------------------------------------------------------------


def write_splits(
    config: ConvertConfig,
    splits: Iterable[str],
    attrs: dict,
    jobs: list[Job],
    convert: Callable[[Job], Converted],
    *,
    started: float,
    skipped: Iterable[tuple[str, str]] = (),
    excluded: int = 0,
    outside: int = 0,
    split_attrs: dict[str, dict] | None = None,
    progress: Tick | None = None,
) -> ConvertReport:
    """Convert `jobs` into OUT_DIR/`job.split`.h5, in order; all files appear only on success.

    `skipped`, `excluded`, `outside`: what the converter left out while listing its jobs (with
    `config.strict`, the first skipped one fails the run before anything is written). `attrs` are
    the files' attributes, `layout`, `channels` and `num_classes` among them, in the order they are
    written; `layout_spec` (the layout's canonical JSON) and, with `config.label_map`, `label_names`
    follow; each file gets its `split` after them, then `split_attrs[split]`. A `SampleError` from `convert`
    skips the sample (see the module docstring). `started`: when the run began, for the report.
    """
    skipped = list(skipped)
    if config.strict and skipped:
        raise SampleError(skipped[0][1])
    spec = resolve_layout(attrs["layout"], attrs.get("layout_spec", ""))
    attrs = {
        **attrs,
        "layout_spec": spec.spec(),
        **label_map_attrs(config.label_map, int(attrs["num_classes"])),
    }
    outputs = output_paths(config.out_dir, splits, config.overwrite)
    summaries = {split: SplitSummary(path) for split, path in outputs.items()}
    writers: dict[str, SplitWriter] = {}
    failed: Counter = Counter()  # samples of each split that could not be converted
    try:
        for split, path in outputs.items():
            file_attrs = {**attrs, "split": split, **(split_attrs or {}).get(split, {})}
            writers[split] = SplitWriter(path, file_attrs, NUM_PERSONS, spec.num_joints, len(spec.channels))
        for job, (status, item) in zip(jobs, map_in_pool(partial(_try, convert), jobs, config.workers), strict=True):
            if progress:
                progress(1)
            if status == "skip":
                if config.strict:
                    raise SampleError(item)
                skipped.append((job.item, item))
                failed[job.split] += 1
                continue
            writers[job.split].append(item.sample, item.meta, item.persons, item.extras, item.frame_extras)
            summaries[job.split].add(item)
        _refuse_empty(summaries, skipped, failed)  # before any file is renamed into place: the old ones stay
        for writer in writers.values():
            writer.close()
    finally:
        for writer in writers.values():
            writer.discard()
    return ConvertReport(summaries, skipped, excluded, outside, time.perf_counter() - started)


def _refuse_empty(summaries: dict[str, SplitSummary], skipped: list[tuple[str, str]], failed: Counter) -> None:
    """AgcnError naming the first split that would be written without a sample, when every split
    would be, or when all samples of that split were bad. A split that no input belongs to (a
    subset of a dataset) is still written empty when the others are not."""
    nothing = all(s.samples == 0 for s in summaries.values())
    for split, summary in summaries.items():
        if summary.samples == 0 and (nothing or failed[split]):
            why = f"{len(skipped)} skipped, the first: {skipped[0][1]}" if skipped else "no input sample belongs to it"
            raise AgcnError(f"{summary.path}: no sample for the {split} split ({why}); nothing written")


def _try(convert: Callable, job: Job) -> tuple[str, object]:
    """("ok", Converted) or ("skip", reason), the reason already worded (in the worker)."""
    try:
        return "ok", convert(job)
    except SampleError as e:
        return "skip", str(e) if e.located else f"{job.where}: {e}"


# ---- the one worker pool ----------------------------------------------------------------------

_TASK: tuple | None = None  # (fn, items), inherited by forked workers instead of pickled


def _call_index(i: int) -> object:
    fn, items = _TASK
    return fn(items[i])


def map_in_pool(fn: Callable[[_T], _R], items: Sequence[_T], workers: int) -> Iterator[_R]:
    """`fn(item)` for each item, in item order; an exception of `fn` ends the run.

    With `workers` > 1 (0: one per core) and at least MIN_POOL_JOBS items, `fn` runs in forked
    processes, which inherit `fn` and the items (closures need no pickling; the results are
    pickled back); where there is no fork, in this process.
    """
    global _TASK
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(items) < MIN_POOL_JOBS or not hasattr(os, "fork"):
        yield from map(fn, items)
        return
    _TASK = (fn, items)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(_call_index, range(len(items)), chunksize=POOL_CHUNKSIZE)
    finally:
        _TASK = None


def class_count_range(counts: Counter) -> tuple[int, int]:
    """The smallest and largest per-class sample count ((0, 0) for none)."""
    values = np.fromiter(counts.values(), dtype=np.int64) if counts else np.zeros(1, np.int64)
    return int(values.min()), int(values.max())
