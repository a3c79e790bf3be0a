"""`agcn preprocess` of NTU RGB+D: a folder of `.skeleton` files -> one HDF5 file per benchmark split.

The converter of raw NTU files for the conversion pipeline (`pipeline`), format `ntu` of
`formats.convert`: the options are checked (`--benchmark`, `--recipe`; the options of other formats
refused), the files listed, named (`SsssCcccPpppRrrrAaaa`), sorted into the benchmark's splits or
left out (the missing-skeleton list, other benchmarks), and each is parsed and turned into a sample
by a recipe (`recipes`); `agcn predict` reads a file through the same step (`padded_skeleton_sample`).
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.splitfile import PAD_CENTRE, PAD_PERIOD
from ..io.splitwrite import SampleMeta
from ..skeleton.layouts import get_layout
from ..skeleton.normalize import WindowPad
from .ntu import (
    DEFAULT_BENCHMARK,
    Benchmark,
    SampleInfo,
    SkeletonError,
    get_benchmark,
    parse_name,
    parse_skeleton,
    read_name_list,
)
from .pipeline import (
    ConvertConfig,
    Converted,
    ConvertReport,
    Job,
    OpenProgress,
    SampleError,
    Tick,
    list_files,
    refuse_other_layout,
    ticking,
    write_splits,
)
from .recipes import DEFAULT_RECIPE, check_recipe, make_padded_sample

NTU_SPLITS = ("train", "test")
NTU_LAYOUT = "ntu25"
NTU_SOURCE = "ntu-skeleton"


@dataclass
class SkeletonJob(Job):
    """One `.skeleton` file; `item` is its file name."""

    path: Path
    info: SampleInfo
    recipe: str
    normalize: dict  # the layout's pre-normalisation


def skeleton_sample(path: Path, recipe: str, normalize: dict) -> tuple[np.ndarray, int]:
    """One parsed and processed file: the stored sample (2, T, V, C) float32 and its person count."""
    sample, persons, _ = padded_skeleton_sample(path, recipe, normalize)
    return sample, persons


def padded_skeleton_sample(path: Path, recipe: str, normalize: dict) -> tuple[np.ndarray, int, WindowPad | None]:
    """`skeleton_sample`, and the facts of the 2s-agcn recipe's padded window (None otherwise)."""
    try:
        sk = parse_skeleton(path)
    except SkeletonError as e:  # the parser names the file and line
        raise SampleError(str(e), located=True) from None
    try:
        return make_padded_sample(sk, recipe, normalize)
    except SkeletonError as e:  # the recipes see bodies, not files: the pipeline adds the file
        raise SampleError(str(e)) from None


def _process(job: SkeletonJob) -> Converted:
    """Parse and process one file; 2s-agcn samples carry their window facts (data_specs/hdf5.md)."""
    sample, persons, pad = padded_skeleton_sample(job.path, job.recipe, job.normalize)
    if pad is None:
        return Converted(sample, _meta(job.info), persons)
    return Converted(sample, _meta(job.info), persons, {PAD_PERIOD: pad.periods}, {PAD_CENTRE: pad.centre})


def _meta(info: SampleInfo) -> SampleMeta:
    return SampleMeta(info.name, info.label, info.setup, info.camera, info.subject, info.replication)


def list_skeleton_files(raw_dir: Path) -> list[Path]:
    return list_files(raw_dir, ".skeleton", f". Run: agcn synth {raw_dir} to make synthetic ones")


def preprocess_skeletons(config: ConvertConfig, progress: OpenProgress | None = None) -> ConvertReport:
    """Write OUT_DIR/train.h5 and test.h5 from the folder of `.skeleton` files `config.source`.

    The options are checked and the files listed before `progress` opens: it counts files.
    """
    for option, value in {"--split-names": config.split_names, "--num-classes": config.num_classes,
                          "--labels": config.labels, "--split": config.split}.items():  # fmt: skip
        if value is not None:
            raise AgcnError(f"{option} applies to a .pkl or Kinetics-Skeleton input, not to .skeleton files")
    refuse_other_layout(config.layout, NTU_LAYOUT, f".skeleton files hold the Kinect {NTU_LAYOUT} layout")
    bench = get_benchmark(config.benchmark or DEFAULT_BENCHMARK)
    recipe = check_recipe(config.recipe or DEFAULT_RECIPE)
    paths = list_skeleton_files(config.source)
    with ticking(progress, len(paths), "preprocess", "file") as tick:
        return _convert_files(config, bench, recipe, paths, tick)


def _convert_files(
    config: ConvertConfig, bench: Benchmark, recipe: str, paths: list[Path], tick: Tick | None
) -> ConvertReport:
    """Name, sort and convert the listed files; `tick(n)` as files are left out or complete."""
    t0 = time.perf_counter()
    layout = get_layout(NTU_LAYOUT)
    missing = read_name_list(config.missing_list or bench.default_missing_list())
    skipped: list[tuple[str, str]] = []
    jobs: list[SkeletonJob] = []  # in name order, both splits
    excluded = outside = 0
    for path in paths:
        try:
            info = parse_name(path.name)
        except SkeletonError as e:
            skipped.append((path.name, str(e)))  # the message starts with the file name
            continue
        if not bench.includes(info):
            outside += 1
        elif info.name in missing:
            excluded += 1
        else:
            split = "train" if bench.is_train(info) else "test"
            jobs.append(SkeletonJob(path.name, str(path), split, path, info, recipe, layout.normalize))
    if tick and len(paths) > len(jobs):
        tick(len(paths) - len(jobs))

    # attribute order as the files have always been written (HDF5 keeps it, so the bytes do)
    attrs = {
        "layout": NTU_LAYOUT,
        "recipe": recipe,
        "normalized": True,  # both recipes' normalisation is applied here (see data_specs/recipes.md)
        "benchmark": bench.name,
        "num_classes": bench.num_classes,
        "channels": ",".join(layout.channels),
        "source": NTU_SOURCE,
    }
    return write_splits(
        config, NTU_SPLITS, attrs, jobs, _process,
        started=t0, skipped=skipped, excluded=excluded, outside=outside, progress=tick,
    )  # fmt: skip
