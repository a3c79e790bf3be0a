"""`agcn eval`, `fuse` and `predict`: scoring checkpoints, fusing streams, classifying files."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import AgcnError
from .app import JsonOpt, OverwriteOpt, command, err, note, out, progress_bar

TestClipsOpt = Annotated[
    int | None,
    typer.Option(
        "--clips",
        min=1,
        help="Test clips per sample. Default: 10 (MMAction2); 1 view of the whole window for a "
        "checkpoint trained on it (2s-AGCN recipe).",
    ),
]


TestClipLenOpt = Annotated[
    int | None, typer.Option("--clip-len", min=1, help="Frames per clip (default: the checkpoint's).")
]


TestBatchOpt = Annotated[
    int, typer.Option("--batch-size", "-b", min=1, help="Samples per forward pass (each with all its clips).")
]


TestDeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda")]


ForeignClassesOpt = Annotated[
    int | None, typer.Option("--num-classes", min=1, help="Foreign weights: classifier size (e.g. 60, 120).")
]


ForeignLayoutOpt = Annotated[
    str | None,
    typer.Option(
        "--layout", help="Foreign weights: skeleton layout, a name or a .json file (eval: the test file's; else ntu25)."
    ),
]


ForeignModalityOpt = Annotated[
    str | None,
    typer.Option("--modality", help="Foreign weights: stream trained on (joint | bone | joint-motion | bone-motion)."),
]


ForeignChannelsOpt = Annotated[
    int | None, typer.Option("--in-channels", min=1, help="Foreign weights: channels per joint (default: layout's).")
]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _accuracies(m) -> tuple[str, str, str]:
    """Top-1, top-5 and mean class accuracy of a Metrics, as table cells."""
    return _pct(m.top1), _pct(m.top5), _pct(m.mean_class)


def _class_label(label: int, name: str) -> str:
    """`A013 tear up paper` for NTU names, `7 jump` for a label map's, `class 7` without names."""
    from ..evaluation.metrics import ntu_class_names

    if name == f"class {label}":
        return name
    ntu = ntu_class_names()
    return f"A{label + 1:03d} {name}" if label < len(ntu) and ntu[label] == name else f"{label} {name}"


@command("eval")
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
        str | None,
        typer.Option(
            "--checkpoint",
            help="For a RUN_DIR: test (each stream's) last.pt, the last epoch's, or best.pt, the best validation "
            "top-1's: last | best. Default: last.",
        ),
    ] = None,
    num_classes: ForeignClassesOpt = None,
    layout: ForeignLayoutOpt = None,
    modality: ForeignModalityOpt = None,
    in_channels: ForeignChannelsOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Test a checkpoint on a split file: multi-clip scores, top-1/top-5, per-class accuracy.

    Foreign weights (lshiwjx/2s-AGCN, MMAction2, pyskl) need --num-classes and --modality; agcn
    checkpoints and agcn's MMAction2 exports state them.
    """
    from ..evaluation.evaluate import EvalConfig, check_argument_order, evaluate
    from ..evaluation.metrics import write_confusion_csv, write_confusion_png
    from ..evaluation.runs import check_run_checkpoint, multistream_streams, run_checkpoint
    from ..io.atomic import refuse_existing
    from ..io.scores import write_mmaction_dump, write_scores
    from ..io.splitfile import check_split_file
    from ..models.loading import foreign_facts

    check_argument_order(checkpoint, test_file)
    if checkpoint.is_dir():
        kind = check_run_checkpoint(which or "last")
        run_dir, streams = checkpoint, multistream_streams(checkpoint)  # None: a single-stream run, or no run
        if streams is None:
            checkpoint = run_checkpoint(run_dir, kind)  # RUN_DIR/last.pt or best.pt
        if which is None:
            each = "each stream's " if streams else ""
            note(f"{run_dir}: testing {each}last.pt (the last epoch's); --checkpoint best tests {each}best.pt")
    elif which is not None:
        raise AgcnError(f"--checkpoint {which}: picks last.pt or best.pt of a run folder; {checkpoint} is a file")
    if checkpoint.is_dir():
        given = {"--confusion": confusion, "--mmaction-dump": mmaction_dump, "--num-classes": num_classes,
                 "--layout": layout, "--modality": modality, "--in-channels": in_channels}  # fmt: skip
        extra = [name for name, value in given.items() if value is not None]
        if extra:
            verb = "applies" if len(extra) == 1 else "apply"
            raise AgcnError(f"{checkpoint}: {', '.join(extra)} {verb} to one checkpoint; give RUN_DIR/STREAM/{kind}.pt")
        config = EvalConfig(checkpoint, test_file, clips, clip_len, batch_size, device, bf16)
        _eval_run_dir(checkpoint, test_file, config, kind, out_path, overwrite, as_json)
        return
    if mmaction_dump is not None and mmaction_dump.suffix not in (".pkl", ".pickle"):
        raise AgcnError(f"--mmaction-dump {mmaction_dump}: MMAction2 dumps are .pkl or .pickle files")
    if confusion is not None and confusion.suffix.lower() != ".csv":
        raise AgcnError(f"--confusion {confusion}: expected a .csv file name")
    refuse_existing([out_path, confusion, mmaction_dump], overwrite)
    attrs = check_split_file(test_file)
    foreign_config, foreign_data = foreign_facts(
        num_classes=num_classes, layout=layout, modality=modality, in_channels=in_channels, clip_len=clip_len,
        defaults=attrs,
    )  # fmt: skip
    config = EvalConfig(checkpoint, test_file, clips, clip_len, batch_size, device, bf16, foreign_config, foreign_data)
    with progress_bar(int(attrs.get("num_samples", 0)) or None, "eval", "sample") as bar:
        result = evaluate(config, progress=bar.update, note=note, attrs=attrs)
    m, scores = result.metrics, result.scores
    views = scores.attrs["clips"]  # 10 clips by default, 1 view of a full-window checkpoint's window
    if out_path is not None:
        write_scores(out_path, scores)
    if mmaction_dump is not None:
        write_mmaction_dump(mmaction_dump, scores)
    if confusion is not None:
        write_confusion_csv(confusion, m.confusion, result.class_names)
        png = confusion.with_suffix(".png")
        if not write_confusion_png(png, m.confusion, result.class_names):
            note("matplotlib is not installed: wrote the CSV only (pip install matplotlib for the PNG)")
    if as_json:
        info = {"checkpoint": str(checkpoint), "test_file": str(test_file), "modality": scores.attrs["modality"],
                "clips": views, "clip_len": scores.attrs["clip_len"], "device": result.device}  # fmt: skip
        out.print_json(json.dumps({**info, **m.summary()}))
        return
    table = Table(title=escape(f"agcn eval {checkpoint} on {test_file}"), title_justify="left")
    for col in ("stream", "clips", "samples", "top-1 %", "top-5 %", "mean class %"):
        table.add_column(col, justify="left" if col == "stream" else "right")
    table.add_row(scores.attrs["modality"], f"{views} x {scores.attrs['clip_len']}", str(m.samples), *_accuracies(m))
    out.print(table)
    shown = m.per_class if per_class == 0 else m.per_class[:per_class]
    worst = Table(title=f"per class, worst first ({len(shown)} of {len(m.per_class)})", title_justify="left")
    for col in ("class", "samples", "top-1 %", "most confused with"):
        worst.add_column(col, justify="right" if col in ("samples", "top-1 %") else "left")
    for c in shown:
        other = "" if c.confused_with is None else (
            f"{_class_label(c.confused_with, result.class_names[c.confused_with])} ({c.confused_count})"
        )  # fmt: skip
        worst.add_row(escape(_class_label(c.label, c.name)), str(c.samples), _pct(c.accuracy), escape(other))
    out.print(worst)
    written = [str(p) for p in (out_path, mmaction_dump, confusion) if p is not None]
    if written:
        out.print(f"wrote {escape(', '.join(written))}")


def _eval_run_dir(
    run_dir: Path, test_file: Path, config, kind: str, out_dir: Path | None, overwrite: bool, as_json: bool
) -> None:
    """`agcn eval RUN_DIR TEST.h5`: each stream of a multi-stream run (its `kind`.pt), then the published fusions."""
    from ..evaluation.runs import FUSIONS, evaluate_run, run_checkpoints
    from ..io.atomic import refuse_existing
    from ..io.splitfile import check_split_file

    streams = run_checkpoints(run_dir, kind, note)
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise AgcnError(f"--out {out_dir}: is a file; for a RUN_DIR, --out is a folder of score files")
        names = [*streams, *(name for name, need, _ in FUSIONS if all(s in streams for s in need))]
        refuse_existing([out_dir / f"{name}.h5" for name in names], overwrite)
        out_dir.mkdir(parents=True, exist_ok=True)
    attrs = check_split_file(test_file)
    samples = int(attrs.get("num_samples", 0)) * len(streams)
    with progress_bar(samples or None, "eval", "sample") as bar:
        result = evaluate_run(streams, test_file, config, out_dir=out_dir, progress=bar.update, note=note, attrs=attrs)
    used = {s: str(result.checkpoints[s]) for s in result.streams}
    if as_json:
        data = {
            "run_dir": str(run_dir),
            "test_file": str(test_file),
            "checkpoint": kind,
            "streams": {
                s: {
                    "checkpoint": used[s],
                    "clips": r.scores.attrs["clips"],
                    "clip_len": r.scores.attrs["clip_len"],
                    **r.metrics.summary(),
                }
                for s, r in result.streams.items()
            },  # fmt: skip
            "fusions": {
                f.name: {"streams": list(f.streams), "weights": list(f.weights), **f.metrics.summary()}
                for f in result.fusions
            },  # fmt: skip
        }
        out.print_json(json.dumps(data))
        return
    table = Table(title=escape(f"agcn eval {run_dir} ({kind}.pt of each stream) on {test_file}"), title_justify="left")
    for col in ("stream", "checkpoint", "weights", "clips", "samples", "top-1 %", "top-5 %", "mean class %"):
        table.add_column(col, justify="left" if col in ("stream", "checkpoint", "weights") else "right")
    for s, r in result.streams.items():
        views = f"{r.scores.attrs['clips']} x {r.scores.attrs['clip_len']}"
        ckpt = escape(f"{s}/{result.checkpoints[s].name}")
        table.add_row(s, ckpt, "", views, str(r.metrics.samples), *_accuracies(r.metrics))
    for f in result.fusions:
        weights = ":".join(f"{w:g}" for w in f.weights)
        name = f"{f.name} ({', '.join(f.streams)})"
        table.add_row(name, f"{kind}.pt", weights, "", str(f.metrics.samples), *_accuracies(f.metrics))
    out.print(table)
    if out_dir is not None:
        names = [*result.streams, *(f.name for f in result.fusions)]
        out.print(f"wrote {escape(', '.join(str(out_dir / f'{name}.h5') for name in names))}")


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
    from dataclasses import asdict

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

    def row(m):
        return {"top1": m.top1, "top5": m.top5, "mean_class_accuracy": m.mean_class, "samples": m.samples}

    if as_json:
        data = {
            "kind": kind,
            "streams": [
                {"file": str(s.path), "modality": s.modality, "weight": s.weight, **row(s.metrics)}
                for s in report.streams
            ],
            "fused": {"weights": report.weights, **row(report.metrics)},
        }
        if report.search is not None:
            data["given"] = {"weights": report.given_weights, **row(report.given)}
            data["search"] = asdict(report.search)
            data["search"]["mean_class_accuracy"] = data["search"].pop("mean_class")  # one name in every output
            if report.val_metrics is not None:
                data["search"]["val"] = row(report.val_metrics)
        out.print_json(json.dumps(data))
        return
    table = Table(title=f"agcn fuse ({'logits' if logits else 'probabilities'})", title_justify="left")
    for col in ("scores", "stream", "weight", "top-1 %", "top-5 %", "mean class %"):
        table.add_column(col, justify="left" if col in ("scores", "stream") else "right")

    def fmt_w(ws):
        return ",".join(f"{w:g}" for w in ws)

    for s in report.streams:
        m = s.metrics
        table.add_row(s.path.name, s.modality, f"{s.weight:g}", *_accuracies(m))
    fused_modality = str(report.fused.attrs["modality"])
    if report.search is not None:
        g = report.given
        table.add_row("fused", fused_modality, fmt_w(report.given_weights), *_accuracies(g))
        if report.val_metrics is not None:
            v = report.val_metrics
            table.add_row("fused, searched (val)", fused_modality, fmt_w(report.weights), *_accuracies(v))
        label = "fused, searched" + (" (applied to test)" if report.val_metrics is not None else " (on test)")
    else:
        label = "fused"
    m = report.metrics
    table.add_row(label, fused_modality, fmt_w(report.weights), *_accuracies(m))
    out.print(table)
    if report.search is not None:
        out.print(f"best of {report.search.tried} weight combinations on {report.search.on}: {fmt_w(report.weights)}")
    if out_path is not None:
        out.print(f"wrote {escape(str(out_path))}")


@command("predict")
def predict_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint from agcn train.")],
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Inputs: .skeleton files or a folder of them, a .pkl annotation file (MMAction2/pyskl), "
            "Kinetics-Skeleton .json files or a folder, split .h5 files."
        ),
    ],
    more: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", "-c", help="A further checkpoint (e.g. the bone stream) to fuse with; repeat."),
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated weight per checkpoint, in order (default: all 1).")
    ] = None,
    sample: Annotated[
        list[str] | None, typer.Option("--sample", help="Split .h5 inputs: classify only this sample name; repeat.")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Classes shown per sample.")] = 5,
    clips: TestClipsOpt = None,
    clip_len: TestClipLenOpt = None,
    batch_size: TestBatchOpt = 16,
    device: TestDeviceOpt = "auto",
    num_classes: ForeignClassesOpt = None,
    layout: ForeignLayoutOpt = None,
    modality: ForeignModalityOpt = None,
    in_channels: ForeignChannelsOpt = None,
    recipe: Annotated[
        str | None, typer.Option(help="Foreign weights: preprocessing recipe of their training data.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Top classes with probabilities for each sample of the inputs (the checkpoint's recipe, stream, 10 clips).

    A sample or input that cannot be read is reported on stderr and skipped; the others are classified; exit 1.
    """

    from ..evaluation.fusion import parse_weights
    from ..evaluation.predict import Prediction, predict
    from ..models.loading import foreign_facts

    checkpoints = [checkpoint, *(more or [])]
    w = parse_weights(weights, checkpoints, noun="checkpoints")
    foreign_config, foreign_data = foreign_facts(
        num_classes=num_classes, layout=layout, modality=modality, in_channels=in_channels, recipe=recipe,
        clip_len=clip_len,
    )  # fmt: skip
    results = predict(
        checkpoints, inputs, samples=sample, weights=w, clips=clips, clip_len=clip_len, top=top,
        batch_size=batch_size, device=device, foreign_config=foreign_config, foreign_data=foreign_data, note=note,
    )  # fmt: skip
    predictions, failed = [], []
    for r in results:
        if not isinstance(r, Prediction):
            failed.append(r)
            err.print(f"[red]error:[/red] {escape(str(r))}", highlight=False, soft_wrap=True)
            continue
        if as_json:
            predictions.append(r)
            continue
        truth = "" if r.label is None else f", true: {_class_label(r.label, r.label_name or f'class {r.label}')}"
        table = Table(title=escape(f"{r.name} ({r.source}, {r.frames} frames{truth})"), title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("class")
        table.add_column("probability", justify="right")
        for rank, (c, name, prob) in enumerate(r.top, 1):
            table.add_row(str(rank), escape(_class_label(c, name)), f"{prob:.4f}")  # label-map names: not markup
        out.print(table)
    if as_json:
        data = {
            "checkpoints": [str(p) for p in checkpoints],
            "weights": w,
            "predictions": [
                {
                    "name": p.name,
                    "source": str(p.source),
                    "frames": p.frames,
                    "label": p.label,
                    "label_name": p.label_name,
                    "top": [{"class": c, "name": name, "probability": prob} for c, name, prob in p.top],
                }
                for p in predictions
            ],
            "failed": [{"input": f.input, "error": f.error} for f in failed],
        }
        out.print_json(json.dumps(data))
    if failed:
        raise typer.Exit(1)
