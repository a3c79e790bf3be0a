"""`agcn eval`: a checkpoint, or each stream of a run and their fusions, tested on a split file."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..evaluation.choices import CheckpointKind
from .app import command, note, out, progress_bar
from .options import (
    JsonOpt,
    OverwriteOpt,
    TestBatchOpt,
    TestClipLenOpt,
    TestClipsOpt,
    TestDeviceOpt,
    foreign_options,
    plain,
)
from .tables import accuracies, class_label, pct


@command("eval")
@foreign_options
def eval_cmd(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A checkpoint from agcn train (or foreign weights, see below), or the RUN_DIR of "
            "agcn train --modality all: every stream, then the joint+bone and four-stream fusions."
        ),
    ],
    test_file: Annotated[Path, typer.Argument(help="A split file from agcn preprocess, e.g. OUT_DIR/test.h5.")],
    clips: TestClipsOpt = None,
    clip_len: TestClipLenOpt = None,
    batch_size: TestBatchOpt = 16,
    device: TestDeviceOpt = "auto",
    bf16: Annotated[
        bool, typer.Option("--bf16", help="bfloat16 autocast (CUDA only); else float32, TF32 off.")
    ] = False,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Write scores here (HDF5, for agcn fuse); for a RUN_DIR, a folder of them."),
    ] = None,
    confusion: Annotated[
        Path | None, typer.Option(help="Write the confusion matrix as CSV (and a PNG beside it with matplotlib).")
    ] = None,
    mmaction_dump: Annotated[
        Path | None, typer.Option(help="Also write MMAction2 1.x's test.py --dump pickle (.pkl).")
    ] = None,
    per_class: Annotated[int, typer.Option(min=0, help="Worst classes shown (0: all).")] = 10,
    which: Annotated[
        CheckpointKind | None,
        typer.Option(
            "--checkpoint",
            help="For a RUN_DIR: test (each stream's) last.pt, the last epoch's, or best.pt, the best validation "
            "top-1's. Default: last.",
        ),
    ] = None,
    foreign: dict[str, Any] | None = None,  # --num-classes, --layout, --modality, --in-channels
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Test a checkpoint on a split file: multi-clip scores, top-1/top-5, per-class accuracy.

    Foreign weights (lshiwjx/2s-AGCN, MMAction2, pyskl) need --num-classes and --modality; agcn
    checkpoints and agcn's MMAction2 exports state them.
    """
    from ..evaluation.evaluate import EvalConfig, EvalOutputs
    from ..evaluation.runs import RunResult, evaluate_path

    config = EvalConfig(checkpoint, test_file, clips, clip_len, batch_size, plain(device), bf16)
    outputs = EvalOutputs(out_path, confusion, mmaction_dump, overwrite)
    result = evaluate_path(
        config, which=plain(which), outputs=outputs, foreign=foreign, progress=progress_bar, note=note
    )
    if isinstance(result, RunResult):
        _print_run(result, test_file, out_path, as_json)
    elif as_json:
        _print_json(result, test_file)
    else:
        _print_tables(result, test_file, per_class)
        if outputs.files():
            out.print(f"wrote {escape(', '.join(map(str, outputs.files())))}")


def _print_json(result, test_file: Path) -> None:
    """One checkpoint's result as JSON (data_specs/outputs.md)."""
    attrs = result.scores.attrs
    info = {"checkpoint": str(result.checkpoint), "test_file": str(test_file), "modality": attrs["modality"],
            "clips": attrs["clips"], "clip_len": attrs["clip_len"], "device": result.device}  # fmt: skip
    out.print_json(json.dumps({**info, **result.metrics.summary()}))


def _print_tables(result, test_file: Path, per_class: int) -> None:
    """One checkpoint's accuracies, then its worst classes (`per_class` of them; 0: all)."""
    m, attrs = result.metrics, result.scores.attrs
    views = attrs["clips"]  # 10 clips by default, 1 view of a full-window checkpoint's window
    table = Table(title=escape(f"agcn eval {result.checkpoint} on {test_file}"), title_justify="left")
    for col in ("stream", "clips", "samples", "top-1 %", "top-5 %", "mean class %"):
        table.add_column(col, justify="left" if col == "stream" else "right")
    table.add_row(attrs["modality"], f"{views} x {attrs['clip_len']}", str(m.samples), *accuracies(m))
    out.print(table)
    shown = m.per_class if per_class == 0 else m.per_class[:per_class]
    worst = Table(title=f"per class, worst first ({len(shown)} of {len(m.per_class)})", title_justify="left")
    for col in ("class", "samples", "top-1 %", "most confused with"):
        worst.add_column(col, justify="right" if col in ("samples", "top-1 %") else "left")
    for c in shown:
        other = "" if c.confused_with is None else (
            f"{class_label(c.confused_with, result.class_names[c.confused_with])} ({c.confused_count})"
        )  # fmt: skip
        worst.add_row(escape(class_label(c.label, c.name)), str(c.samples), pct(c.accuracy), escape(other))
    out.print(worst)


def _print_run(result, test_file: Path, out_dir: Path | None, as_json: bool) -> None:
    """`agcn eval RUN_DIR`: a row a stream, then a row a fusion; or the JSON of them."""
    run_dir, kind = result.run_dir, result.which
    if as_json:
        streams = {s: {"checkpoint": str(r.checkpoint), "clips": r.scores.attrs["clips"],
                       "clip_len": r.scores.attrs["clip_len"], **r.metrics.summary()}
                   for s, r in result.streams.items()}  # fmt: skip
        fusions = {f.name: {"streams": list(f.streams), "weights": list(f.weights), **f.metrics.summary()}
                   for f in result.fusions}  # fmt: skip
        data = {"run_dir": str(run_dir), "test_file": str(test_file), "checkpoint": kind, "streams": streams,
                "fusions": fusions}  # fmt: skip
        out.print_json(json.dumps(data))
        return
    table = Table(title=escape(f"agcn eval {run_dir} ({kind}.pt of each stream) on {test_file}"), title_justify="left")
    for col in ("stream", "checkpoint", "weights", "clips", "samples", "top-1 %", "top-5 %", "mean class %"):
        table.add_column(col, justify="left" if col in ("stream", "checkpoint", "weights") else "right")
    for s, r in result.streams.items():
        views = f"{r.scores.attrs['clips']} x {r.scores.attrs['clip_len']}"
        ckpt = escape(f"{s}/{r.checkpoint.name}")
        table.add_row(s, ckpt, "", views, str(r.metrics.samples), *accuracies(r.metrics))
    for f in result.fusions:
        weights = ":".join(f"{w:g}" for w in f.weights)
        name = f"{f.name} ({', '.join(f.streams)})"
        table.add_row(name, f"{kind}.pt", weights, "", str(f.metrics.samples), *accuracies(f.metrics))
    out.print(table)
    if out_dir is not None:
        names = [*result.streams, *(f.name for f in result.fusions)]
        out.print(f"wrote {escape(', '.join(str(out_dir / f'{name}.h5') for name in names))}")
