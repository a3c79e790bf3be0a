"""`agcn preprocess` for annotation files others distribute, beside raw NTU `.skeleton` files.

- an MMAction2 / pyskl pickle (`ntu60_3d.pkl`, `ntu120_3d.pkl`, the HRNet 2D `ntu60_2d.pkl`,
  `ntu120_2d.pkl`): `agcn_cli.sources.pkl`;
- a Kinetics-Skeleton folder of per-video JSON files (ST-GCN, 2s-AGCN): `agcn_cli.kinetics`.

Both write the same HDF5 schema as the NTU path (`data_specs/hdf5.md`), one file per split,
already pre-normalised (`normalized=True`) so streams, training and evaluation work unchanged.
This module holds what they share: the source detection, the config, and the writing of the
split files (atomic, all or nothing) with the per-split summaries of `agcn preprocess`.
"""

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.splitfile import SampleMeta, SplitWriter
from ..skeleton.layouts import get_layout
from ..skeleton.persons import NUM_PERSONS
from ..skeleton.persons import fit_persons as fit_num_persons
from .ntu_convert import PreprocessReport, SplitSummary

FORMATS = ("auto", "ntu", "pkl", "kinetics")


class SampleError(AgcnError):
    """One unusable sample: skipped and listed in the report (the run fails with `strict`)."""


@dataclass
class ImportConfig:
    source: Path  # a .pkl annotation file or a Kinetics-Skeleton folder
    out_dir: Path  # receives train.h5 and/or test.h5
    format: str = "auto"  # auto | pkl | kinetics (auto: a .pkl file, else a folder of JSON files)
    benchmark: str | None = None  # pkl: NTU benchmark naming the split keys and num_classes (default ntu60-xsub)
    split_names: tuple[str, ...] | None = None  # pkl: split keys for train[, test], instead of the benchmark's
    num_classes: int | None = None  # classifier size; default: the benchmark's (60/120), 400 for Kinetics
    labels: Path | None = None  # Kinetics: label JSON of a single folder
    split: str | None = None  # Kinetics: train | test for a single folder (default: from its name)
    recipe: str | None = None  # only checked: an import follows the recipe of its source
    strict: bool = False  # any bad sample fails the run instead of being skipped
    overwrite: bool = False  # replace existing outputs
    workers: int = 0  # processes converting samples; 0: one per CPU core


@dataclass
class Converted:
    """One sample ready for the writer."""

    sample: np.ndarray  # (2, T, V, C) float32, persons zero-padded to 2
    meta: SampleMeta
    persons: int  # persons really present (at most 2)
    extras: dict[str, np.ndarray] | None = None  # per-sample values of extra datasets, e.g. img_shape


def detect_format(source: Path, fmt: str = "auto") -> str:
    """`ntu`, `pkl` or `kinetics` for `source` (a file or folder); `fmt` other than auto wins."""
    if fmt not in FORMATS:
        raise AgcnError(f"unknown input format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    source = Path(source)
    if source.is_file():
        return "pkl" if source.suffix == ".pkl" else "ntu"  # the ntu path names what is wrong
    if not source.is_dir():
        if source.suffix == ".pkl":
            raise AgcnError(f"{source}: no such file")
        return "ntu"
    if (source / "kinetics_train").is_dir() or (source / "kinetics_val").is_dir():
        return "kinetics"
    try:
        with os.scandir(source) as it:
            for entry in it:  # the first telling name decides; no full listing of a large folder
                if entry.name.endswith(".skeleton"):
                    return "ntu"
                if entry.name.endswith(".json") and not entry.name.endswith("_label.json"):
                    return "kinetics"
    except OSError as e:
        raise AgcnError(f"{source}: cannot list directory ({e.strerror})") from None
    return "ntu"


def import_source(config: ImportConfig, progress: Callable[[int], None] | None = None) -> PreprocessReport:
    """Convert a .pkl or Kinetics-Skeleton source; `progress(n)` is called as samples complete."""
    fmt = detect_format(config.source, config.format)
    if fmt == "pkl":
        from .pkl import import_pkl

        return import_pkl(config, progress)
    if fmt == "kinetics":
        from .kinetics import import_kinetics

        return import_kinetics(config, progress)
    raise AgcnError(f"{config.source}: raw NTU .skeleton input goes through agcn_cli.preprocess, not the importers")


def write_splits(
    outputs: dict[str, Path],
    layout: str,
    attrs: dict,
    jobs: dict[str, list],
    convert: Callable[[object], Converted],
    *,
    source: str,
    split_attrs: dict[str, dict] | None = None,
    strict: bool = False,
    workers: int = 0,
    skipped: list[tuple[str, str]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, SplitSummary], list[tuple[str, str]]]:
    """Convert `jobs[split]` into `outputs[split]`, in order; all files appear only on success.

    `convert(job)` returns a `Converted` or raises `SampleError`, which skips the sample
    (recorded as `(str(job), "source: reason")`) unless `strict`. The files get `attrs` plus
    the layout's name and channels and their split; `split_attrs[split]` adds attributes to one
    split's file. With `workers` > 1
    (0: one per core) the conversions run in forked processes, the writing here.
    """
    skipped = [] if skipped is None else skipped
    spec = get_layout(layout)
    attrs = {"layout": layout, "channels": ",".join(spec.channels), **attrs}
    summaries = {split: SplitSummary(path) for split, path in outputs.items()}
    flat = [(split, job) for split in outputs for job in jobs.get(split, [])]
    extras: dict[str, dict[str, list]] = {split: {} for split in outputs}
    writers: dict[str, SplitWriter] = {}
    try:
        for split, path in outputs.items():
            file_attrs = {**attrs, "split": split, **(split_attrs or {}).get(split, {})}
            writers[split] = SplitWriter(path, file_attrs, NUM_PERSONS, spec.num_joints, len(spec.channels))
        results = _convert_all(convert, [job for _, job in flat], workers)
        for (split, job), (status, item) in zip(flat, results, strict=True):
            if progress:
                progress(1)
            if status == "skip":
                if strict:
                    raise SampleError(f"{source}: {job}: {item}")
                skipped.append((str(job), f"{source}: {item}"))
                continue
            writers[split].append(item.sample, item.meta, item.persons)
            for key, value in (item.extras or {}).items():
                extras[split].setdefault(key, []).append(value)
            summary = summaries[split]
            summary.samples += 1
            summary.frames += item.sample.shape[1]
            summary.class_counts[item.meta.label] += 1
        for split, writer in writers.items():
            for key, values in extras[split].items():  # one entry per written sample
                writer.file.create_dataset(key, data=np.stack(values))
            writer.close()
    finally:
        for writer in writers.values():
            writer.discard()
    return summaries, skipped


_TASK: tuple | None = None  # (convert, jobs), inherited by forked workers instead of pickled


def _try(convert: Callable, job: object) -> tuple[str, object]:
    try:
        return "ok", convert(job)
    except SampleError as e:
        return "skip", str(e)


def _convert_index(i: int) -> tuple[str, object]:
    convert, jobs = _TASK
    return _try(convert, jobs[i])


def _convert_all(convert: Callable, jobs: list, workers: int) -> Iterator[tuple[str, object]]:
    """("ok", Converted) or ("skip", reason) per job, in order."""
    global _TASK
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) < 64 or not hasattr(os, "fork"):
        yield from (_try(convert, job) for job in jobs)
        return
    _TASK = (convert, jobs)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(_convert_index, range(len(jobs)), chunksize=16)
    finally:
        _TASK = None


def make_report(summaries, skipped, excluded: int, outside: int, t0: float) -> PreprocessReport:
    return PreprocessReport(summaries, skipped, excluded, outside, time.perf_counter() - t0)


def fit_persons(sample: np.ndarray) -> tuple[np.ndarray, int]:
    """(M, T, V, C) -> (2, T, V, C) float32 (extra persons dropped, missing ones zero) and the
    number of persons with any non-zero value among the kept ones."""
    out = fit_num_persons(np.array(sample, dtype=np.float32))  # a copy: the caller keeps its array
    persons = int((np.abs(out).reshape(len(out), -1).sum(axis=1) > 0).sum())
    return out, persons


def check_label(label: object, num_classes: int, where: str) -> int:
    """The label as int; AgcnError when it is not an integer in 0..num_classes-1."""
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise SampleError(f"{where}: label {label!r} is not an integer")
    if not 0 <= int(label) < num_classes:
        raise AgcnError(
            f"{where}: label {int(label)} is outside 0..{num_classes - 1} ({num_classes} classes); "
            "pass the matching --benchmark or --num-classes"
        )
    return int(label)
