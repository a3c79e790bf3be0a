"""`agcn preprocess`: a folder of NTU `.skeleton` files -> one HDF5 file per benchmark split.

Files are parsed and processed in worker processes (one per core by default) and streamed, in
name order, into the two split writers, so memory does not grow with the number of files.
Outputs are written under temporary names and renamed when complete.
"""

import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.atomic import refuse_existing
from ..io.splitfile import SampleMeta, SplitWriter
from ..skeleton.layouts import get_layout
from ..skeleton.persons import NUM_PERSONS
from .ntu import SampleInfo, SkeletonError, get_benchmark, parse_name, parse_skeleton, read_name_list
from .recipes import DEFAULT_RECIPE, check_recipe, make_sample

SPLITS = ("train", "test")
LAYOUT = "ntu25"


@dataclass
class PreprocessConfig:
    raw_dir: Path  # folder of .skeleton files
    out_dir: Path  # receives train.h5 and test.h5
    benchmark: str = "ntu60-xsub"  # ntu60-xsub | ntu60-xview | ntu120-xsub | ntu120-xset
    recipe: str = DEFAULT_RECIPE  # body selection + normalisation: mmaction2 | 2s-agcn
    missing_list: Path | None = None  # samples to exclude; None: the benchmark's shipped list
    strict: bool = False  # any bad file fails the run instead of being skipped
    workers: int = 0  # worker processes; 0: one per CPU core
    overwrite: bool = False  # replace existing outputs


@dataclass
class SplitSummary:
    path: Path
    samples: int = 0
    frames: int = 0
    class_counts: Counter = field(default_factory=Counter)


@dataclass
class PreprocessReport:
    splits: dict[str, SplitSummary]
    skipped: list[tuple[str, str]]  # (file, reason) of bad files
    excluded: int  # on the missing-skeleton list
    outside_benchmark: int  # e.g. NTU120-only files for an NTU60 benchmark
    seconds: float

    @property
    def files_processed(self) -> int:
        return sum(s.samples for s in self.splits.values()) + len(self.skipped)


def _process(job: tuple[str, str, str, dict]) -> tuple[str, object]:
    """Worker: parse and process one file -> ("ok", (sample, persons)) or ("error", reason)."""
    path, name, recipe, normalize = job
    try:
        sk = parse_skeleton(Path(path))
    except SkeletonError as e:  # the parser names the file and line
        return "error", str(e)
    try:
        return "ok", make_sample(sk, recipe, normalize)
    except SkeletonError as e:  # the recipes see bodies, not files
        return "error", f"{path}: {e}"


def list_files(folder: Path, suffix: str, hint: str = "") -> list[Path]:
    """The files of `folder` ending in `suffix`, by name; AgcnError naming the folder when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AgcnError(f"{folder}: not a directory")
    try:
        with os.scandir(folder) as it:
            paths = [Path(e.path) for e in it if e.name.endswith(suffix) and e.is_file()]
    except OSError as e:
        raise AgcnError(f"{folder}: cannot list directory ({e.strerror})") from None
    if not paths:
        raise AgcnError(f"{folder}: no {suffix} files found{hint}")
    return sorted(paths, key=lambda p: p.name)


def list_skeleton_files(raw_dir: Path) -> list[Path]:
    return list_files(raw_dir, ".skeleton", f". Run: agcn synth {raw_dir} to make synthetic ones")


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


def preprocess(config: PreprocessConfig, progress: Callable[[int], None] | None = None) -> PreprocessReport:
    """Run the whole conversion; `progress(n)` is called as files complete."""
    t0 = time.perf_counter()
    bench = get_benchmark(config.benchmark)
    recipe = check_recipe(config.recipe)
    layout = get_layout(LAYOUT)
    missing = read_name_list(config.missing_list or bench.default_missing_list())
    paths = list_skeleton_files(config.raw_dir)
    outputs = output_paths(config.out_dir, SPLITS, config.overwrite)

    skipped: list[tuple[str, str]] = []
    jobs, infos = [], []
    excluded = outside = 0
    for path in paths:
        try:
            info = parse_name(path.name)
        except SkeletonError as e:
            skipped.append((path.name, str(e)))
            continue
        if not bench.includes(info):
            outside += 1
        elif info.name in missing:
            excluded += 1
        else:
            infos.append(info)
            jobs.append((str(path), info.name, recipe, layout.normalize))
    if config.strict and skipped:
        raise AgcnError(skipped[0][1])
    if progress and len(paths) > len(jobs):
        progress(len(paths) - len(jobs))

    attrs = {
        "layout": LAYOUT,
        "recipe": recipe,
        "normalized": True,  # both recipes' normalisation is applied here (see data_specs/recipes.md)
        "benchmark": bench.name,
        "num_classes": bench.num_classes,
        "channels": ",".join(layout.channels),
        "source": "ntu-skeleton",
    }
    summaries = {split: SplitSummary(outputs[split]) for split in SPLITS}
    writers = {
        split: SplitWriter(outputs[split], {**attrs, "split": split}, NUM_PERSONS, layout.num_joints, 3)
        for split in SPLITS
    }
    try:
        for info, (status, result) in zip(infos, _run(jobs, config.workers), strict=True):
            if progress:
                progress(1)
            if status == "error":
                if config.strict:
                    raise AgcnError(result)
                skipped.append((info.name + ".skeleton", result))
                continue
            sample, persons = result
            split = "train" if bench.is_train(info) else "test"
            writers[split].append(sample, _meta(info), persons)
            summary = summaries[split]
            summary.samples += 1
            summary.frames += sample.shape[1]
            summary.class_counts[info.label] += 1
        for writer in writers.values():
            writer.close()
    finally:
        for writer in writers.values():
            writer.discard()
    return PreprocessReport(summaries, skipped, excluded, outside, time.perf_counter() - t0)


def _meta(info: SampleInfo) -> SampleMeta:
    return SampleMeta(info.name, info.label, info.setup, info.camera, info.subject, info.replication)


def _run(jobs: list, workers: int):
    """Yield job results in order, from a process pool when more than one worker."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) < 8:
        yield from map(_process, jobs)
        return
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_process, jobs, chunksize=8)


def class_count_range(counts: Counter) -> tuple[int, int]:
    values = np.fromiter(counts.values(), dtype=np.int64) if counts else np.zeros(1, np.int64)
    return int(values.min()), int(values.max())
