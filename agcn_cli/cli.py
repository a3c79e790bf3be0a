"""The `agcn` command line: one thin function per command.

Each command validates its options, builds a config, calls one library function and prints a
summary. Library errors (`AgcnError`) are printed as one red line on stderr with exit code 1;
`--debug` shows the traceback. Heavy imports (torch, h5py) happen inside the commands so that
`agcn --help` is instant.
"""

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .errors import AgcnError

app = typer.Typer(
    name="agcn",
    help="Skeleton-based action recognition with 2s-AGCN: synthesise or preprocess NTU RGB+D, inspect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
_state = {"debug": False}

# Options shared across commands.
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=0, help="Worker processes (0: one per CPU core).")]


def command(*args, **kwargs):
    """`app.command` that turns AgcnError (and Ctrl-C) into one line on stderr."""

    def register(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            try:
                return fn(*a, **kw)
            except AgcnError as e:
                if _state["debug"]:
                    raise
                err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                err.print("[yellow]interrupted[/yellow]; no partial output was kept")
                raise typer.Exit(130) from None

        return app.command(*args, **kwargs)(wrapper)

    return register


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


def _progress(total: int, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, disable=None)


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
) -> None:
    """Write synthetic NTU-format .skeleton files (articulated bodies, Kinect artefacts)."""
    from dataclasses import replace

    from .synth import SynthConfig, generate

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
    with _progress(total, "synth", "file") as bar:
        paths = generate(out_dir, config, progress=bar.update)
    out.print(f"wrote {len(paths)} .skeleton files ({len(config.actions)} classes) to {out_dir}")


def _int_list(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise AgcnError(f"{option}: expected comma-separated integers, got {text!r}") from None


@command("preprocess")
def preprocess(
    raw_dir: Annotated[Path, typer.Argument(help="Folder of NTU .skeleton files.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write train.h5 and test.h5 into.")],
    benchmark: Annotated[str, typer.Option(help="ntu60-xsub | ntu60-xview | ntu120-xsub | ntu120-xset")] = "ntu60-xsub",
    recipe: Annotated[
        str, typer.Option(help="mmaction2 (pyskl denoising, default) | 2s-agcn (the original scripts)")
    ] = "mmaction2",
    missing_list: Annotated[
        Path | None, typer.Option(help="Samples to exclude (default: the benchmark's missing-skeleton list).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on the first bad file instead of skipping it.")
    ] = False,
    workers: WorkersOpt = 0,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Parse raw .skeleton files into one HDF5 file per benchmark split."""
    from .ntu import get_benchmark
    from .preprocess import PreprocessConfig, list_skeleton_files
    from .preprocess import preprocess as run
    from .recipes import check_recipe

    get_benchmark(benchmark), check_recipe(recipe)
    config = PreprocessConfig(raw_dir, out_dir, benchmark, recipe, missing_list, strict, workers, overwrite)
    total = len(list_skeleton_files(raw_dir))
    with _progress(total, "preprocess", "file") as bar:
        report = run(config, progress=bar.update)
    _print_preprocess_report(report, as_json)


def _print_preprocess_report(report, as_json: bool) -> None:
    from .preprocess import class_count_range

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
        err.print(f"[yellow]skipped[/yellow] {name}: {reason}", highlight=False, soft_wrap=True)


@command("info")
def info(
    path: Annotated[Path, typer.Argument(help="An HDF5 split file written by agcn preprocess.")],
    as_json: JsonOpt = False,
) -> None:
    """Summarise an agcn HDF5 split file: attributes, samples, frames, classes, streams."""
    from .h5io import summarize

    summary = summarize(path)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(title=str(path), title_justify="left", show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
