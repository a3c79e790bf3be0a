"""`agcn fuse`: per-stream score files fused by a weighted sum, aligned by sample name."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import command, err, out
from .options import JsonOpt, OverwriteOpt
from .tables import accuracies


@command("fuse")
def fuse_cmd(
    scores: Annotated[list[Path], typer.Argument(help="Score files from agcn eval --out, one per stream.")],
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated weight per file, e.g. 2,1,2,1 (default: all 1).")
    ] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="Write the fused scores here (HDF5).")] = None,
    logits: Annotated[
        bool, typer.Option("--logits", help="Fuse clip-averaged logits instead of probabilities.")
    ] = False,
    search: Annotated[bool, typer.Option("--search", help="Choose the weights on a grid (see --grid, --val).")] = False,
    grid: Annotated[str, typer.Option(help="Weight values tried by --search.")] = "0,0.5,1,1.5,2",
    val: Annotated[
        list[Path] | None,
        typer.Option("--val", help="Validation score files (same streams, same order) to search on; repeat."),
    ] = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fuse per-stream scores by a weighted sum, aligned by sample name."""
    from ..evaluation.fusion import fuse_files, parse_numbers
    from ..io.atomic import refuse_existing

    refuse_existing([out_path], overwrite)
    values = tuple(parse_numbers(grid, "--grid"))
    if search and not val:
        err.print(
            "[yellow]warning:[/yellow] choosing weights on the test split overfits it; pass --val with scores "
            "of a validation split to choose them there",
            highlight=False,
            soft_wrap=True,
        )
    kind = "logit" if logits else "prob"
    report = fuse_files(scores, weights, kind=kind, out=out_path, search=search, grid=values, val=val or [])
    if as_json:
        _print_json(report, kind)
        return
    _print_table(report, logits)
    if out_path is not None:
        out.print(f"wrote {escape(str(out_path))}")


def _row(m) -> dict:
    return {"top1": m.top1, "top5": m.top5, "mean_class_accuracy": m.mean_class, "samples": m.samples}


def _weights(ws) -> str:
    return ",".join(f"{w:g}" for w in ws)


def _print_json(report, kind: str) -> None:
    from dataclasses import asdict

    data = {
        "kind": kind,
        "streams": [
            {"file": str(s.path), "modality": s.modality, "weight": s.weight, **_row(s.metrics)} for s in report.streams
        ],
        "fused": {"weights": report.weights, **_row(report.metrics)},
    }
    if report.search is not None:
        data["given"] = {"weights": report.given_weights, **_row(report.given)}
        data["search"] = asdict(report.search)
        data["search"]["mean_class_accuracy"] = data["search"].pop("mean_class")  # one name in every output
        if report.val_metrics is not None:
            data["search"]["val"] = _row(report.val_metrics)
    out.print_json(json.dumps(data))


def _print_table(report, logits: bool) -> None:
    """A row a stream, then the fused rows (given weights, searched on val, applied to test)."""
    table = Table(title=f"agcn fuse ({'logits' if logits else 'probabilities'})", title_justify="left")
    for col in ("scores", "stream", "weight", "top-1 %", "top-5 %", "mean class %"):
        table.add_column(col, justify="left" if col in ("scores", "stream") else "right")
    for s in report.streams:
        table.add_row(s.path.name, s.modality, f"{s.weight:g}", *accuracies(s.metrics))
    fused_modality = str(report.fused.attrs["modality"])
    if report.search is not None:
        table.add_row("fused", fused_modality, _weights(report.given_weights), *accuracies(report.given))
        if report.val_metrics is not None:
            searched = "fused, searched (val)"
            table.add_row(searched, fused_modality, _weights(report.weights), *accuracies(report.val_metrics))
        label = "fused, searched" + (" (applied to test)" if report.val_metrics is not None else " (on test)")
    else:
        label = "fused"
    table.add_row(label, fused_modality, _weights(report.weights), *accuracies(report.metrics))
    out.print(table)
    if report.search is not None:
        out.print(
            f"best of {report.search.tried} weight combinations on {report.search.on}: {_weights(report.weights)}"
        )
