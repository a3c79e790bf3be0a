"""`agcn synth`, `preprocess`, `info`, `streams`: the commands that make and inspect data files."""

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import AgcnError
from ..skeleton.streams import DERIVED_STREAMS
from ..sources.choices import InputFormat, Split
from ..sources.ntu import DEFAULT_BENCHMARK, BenchmarkName
from ..sources.recipes import DEFAULT_RECIPE, Recipe
from .app import command, err, out, progress_bar
from .options import LAYOUT_NAMES, JsonOpt, OverwriteOpt, WorkersOpt, plain

# what `agcn streams --modality` stores: a derived stream, or all of them
StoredStream = StrEnum("StoredStream", {s: s for s in (*DERIVED_STREAMS, "all")})


@command("synth")
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write .skeleton files into.")],
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated NTU action ids (default: the built-in class set).")
    ] = None,
    samples_per_class: Annotated[int | None, typer.Option(min=1, help="Files per class.")] = None,
    subjects: Annotated[str | None, typer.Option(help="Comma-separated performer ids.")] = None,
    min_frames: Annotated[int | None, typer.Option(min=1, help="Shortest sequence.")] = None,
    max_frames: Annotated[int | None, typer.Option(min=1, max=300, help="Longest sequence.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    clean: Annotated[bool, typer.Option("--clean/--artefacts", help="Leave out the Kinect artefacts.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write synthetic NTU-format .skeleton files (articulated bodies, Kinect artefacts)."""
    from dataclasses import replace

    from ..sources.synth import SynthConfig, generate

    config = SynthConfig(seed=seed, artefacts=not clean)
    overrides = {
        "actions": _int_list(classes, "--classes"),
        "subjects": _int_list(subjects, "--subjects"),
        "samples_per_class": samples_per_class,
        "min_frames": min_frames,
        "max_frames": max_frames,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    total = len(config.actions) * config.samples_per_class
    with progress_bar(total, "synth", "file") as bar:
        paths = generate(out_dir, config, progress=bar.update, overwrite=overwrite)
    out.print(f"wrote {len(paths)} .skeleton files ({len(config.actions)} classes) to {escape(str(out_dir))}")


def _int_list(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise AgcnError(f"{option}: expected comma-separated integers, got {text!r}") from None


@command("preprocess")
def preprocess_cmd(  # long only by its options: the body builds a config and calls convert
    raw_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of NTU .skeleton files, an MMAction2/pyskl .pkl, a Kinetics-Skeleton folder, or a folder of "
            "ST-GCN/2s-AGCN arrays (train_data_joint.npy + train_label.pkl, ...)."
        ),
    ],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write train.h5 and test.h5 into.")],
    benchmark: Annotated[
        BenchmarkName | None, typer.Option(help=f"NTU benchmark (default: {DEFAULT_BENCHMARK}).")
    ] = None,
    recipe: Annotated[
        Recipe | None, typer.Option(help=f"Which bodies are kept (data_specs/recipes.md; default: {DEFAULT_RECIPE}).")
    ] = None,
    missing_list: Annotated[
        Path | None, typer.Option(help="Samples to exclude (default: the benchmark's missing-skeleton list).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on the first bad file instead of skipping it.")
    ] = False,
    source_format: Annotated[
        InputFormat, typer.Option("--format", help="What RAW_DIR holds (auto: told from the input).")
    ] = "auto",
    split_names: Annotated[
        str | None, typer.Option(help="pkl: split keys TRAIN[,TEST] (default from the benchmark: xsub_train,xsub_val).")
    ] = None,
    num_classes: Annotated[
        int | None,
        typer.Option(min=1, help="pkl/kinetics/npy: classifier size (default: the benchmark's, 400 Kinetics)"),
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="kinetics: label JSON of a single folder of videos.")] = None,
    split: Annotated[
        Split | None, typer.Option(help="The split of a single Kinetics folder or of a one-split .pkl (dict, list).")
    ] = None,
    layout: Annotated[
        str | None, typer.Option(help=f"pkl: skeleton layout, {LAYOUT_NAMES} or a .json file (default: detected).")
    ] = None,
    label_map: Annotated[
        Path | None,
        typer.Option(help="Class names, one a line, class 0 first (MMAction2's label map); stored in the files."),
    ] = None,
    workers: WorkersOpt = 0,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert NTU .skeleton files, an MMAction2/pyskl .pkl, Kinetics-Skeleton JSON or ST-GCN/2s-AGCN .npy arrays
    into HDF5 split files."""
    from ..sources.formats import convert
    from ..sources.pipeline import ConvertConfig

    # "" names no key: refused for .skeleton files, the benchmark's keys for a .pkl
    names = None if split_names is None else tuple(split_names.split(",")) if split_names else ()
    config = ConvertConfig(
        raw_dir, out_dir, format=plain(source_format), benchmark=plain(benchmark), recipe=plain(recipe),
        missing_list=missing_list, split_names=names, num_classes=num_classes, labels=labels, split=plain(split),
        layout=layout, label_map=label_map, strict=strict, overwrite=overwrite, workers=workers,
    )  # fmt: skip
    report = convert(config, progress=progress_bar)
    _print_preprocess_report(report, as_json)


def _print_preprocess_report(report, as_json: bool) -> None:
    from ..sources.pipeline import class_count_range

    if as_json:
        data = {
            "splits": {
                name: {"path": str(s.path), "samples": s.samples, "frames": s.frames, "classes": len(s.class_counts)}
                for name, s in report.splits.items()
            },
            "skipped": [{"file": f, "reason": r} for f, r in report.skipped],
            "excluded_missing": report.excluded,
            "outside_benchmark": report.outside_benchmark,
            "seconds": round(report.seconds, 3),
        }
        out.print_json(json.dumps(data))
        return
    table = Table(title="agcn preprocess", title_justify="left")
    for col in ("split", "samples", "frames", "classes", "per-class count", "file"):
        table.add_column(col, justify="right" if col in ("samples", "frames", "classes") else "left")
    for name, s in report.splits.items():
        lo, hi = class_count_range(s.class_counts)
        table.add_row(name, str(s.samples), str(s.frames), str(len(s.class_counts)), f"{lo}-{hi}", str(s.path))
    out.print(table)
    rate = report.files_processed / report.seconds if report.seconds else 0.0
    out.print(
        f"excluded (missing-skeleton list): {report.excluded}   outside the benchmark: {report.outside_benchmark}   "
        f"skipped (bad files): {len(report.skipped)}   time: {report.seconds:.1f} s ({rate:.0f} files/s)"
    )
    for name, reason in report.skipped:
        err.print(f"[yellow]skipped[/yellow] {escape(f'{name}: {reason}')}", highlight=False, soft_wrap=True)


@command("info")
def info(
    path: Annotated[Path, typer.Argument(help="An HDF5 split file written by agcn preprocess.")],
    samples: Annotated[
        bool, typer.Option("--samples", help="List every sample: index, name, label, class, frames, persons.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Summarise an agcn HDF5 split file: attributes, samples, frames, classes, streams."""
    from ..io.splitfile import list_samples, summarize

    summary = summarize(path)
    if samples:
        _print_samples(path, list_samples(path, check=False), summary, as_json)  # summarize checked it
        return
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(title=str(path), title_justify="left", show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    out.print(table)


def _print_samples(path: Path, rows: list[dict], summary: dict, as_json: bool) -> None:
    """`agcn info --samples`: one row a sample, with its class name."""
    from ..evaluation.metrics import class_names

    names = class_names(int(summary["num_classes"]), str(summary.get("benchmark", "")), summary.get("label_names", ()))
    rows = [{**r, "class": names[r["label"]] if 0 <= r["label"] < len(names) else ""} for r in rows]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"{path}: {len(rows)} samples", title_justify="left")
    for col in ("#", "name", "label", "class", "frames", "persons"):
        table.add_column(col, justify="right" if col in ("#", "label", "frames", "persons") else "left")
    for r in rows:
        table.add_row(
            str(r["index"]), escape(r["name"]), str(r["label"]), escape(r["class"]), str(r["frames"]), str(r["persons"])
        )
    out.print(table)


@command("streams")
def streams(
    path: Annotated[Path, typer.Argument(help="An HDF5 split file written by agcn preprocess.")],
    modality: Annotated[StoredStream, typer.Option(help="The stream to store, or all.")] = "all",
    force: Annotated[bool, typer.Option("--force", help="Rewrite streams that are already in the file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store the bone, joint-motion and bone-motion streams in a split file (derived from joints)."""
    from ..io.splitfile import check_split_file
    from ..io.streamfile import materialize_streams

    wanted = list(DERIVED_STREAMS) if modality == "all" else [plain(modality)]
    samples = int(check_split_file(path)["num_samples"])
    with progress_bar(samples, "streams", "sample") as bar:
        report = materialize_streams(path, wanted, force=force, progress=bar.update)
    if as_json:
        out.print_json(json.dumps(report))
        return
    if report["written"]:
        out.print(
            f"{path}: wrote {', '.join(report['written'])} for {report['samples']} samples "
            f"({report['frames']} frames) in {report['seconds']:.1f} s"
        )
    for name in report["already_present"]:
        out.print(f"{escape(str(path))}: {name} already present (pass --force to rewrite it)")
