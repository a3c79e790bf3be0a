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
    help="Skeleton-based action recognition with 2s-AGCN: preprocess, streams, train, eval, fuse, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# plain lines are not hard-wrapped, and tables get 120 columns, when output is piped or logged
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
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
            except (AgcnError, OSError) as e:  # OSError: a disk or file-system problem not caught closer to it
                if _state["debug"]:
                    raise
                if isinstance(e, AgcnError):
                    message = " ".join(str(e).splitlines())  # one line, even when a library's text has several
                else:
                    message = (f"{e.filename}: " if getattr(e, "filename", None) else "") + str(e.strerror or e)
                err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
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
    raw_dir: Annotated[
        Path,
        typer.Argument(help="Folder of NTU .skeleton files, an MMAction2/pyskl .pkl, or a Kinetics-Skeleton folder."),
    ],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write train.h5 and test.h5 into.")],
    benchmark: Annotated[
        str | None, typer.Option(help="ntu60-xsub (default) | ntu60-xview | ntu120-xsub | ntu120-xset")
    ] = None,
    recipe: Annotated[
        str | None, typer.Option(help="mmaction2 (pyskl denoising, default) | 2s-agcn (the original scripts)")
    ] = None,
    missing_list: Annotated[
        Path | None, typer.Option(help="Samples to exclude (default: the benchmark's missing-skeleton list).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on the first bad file instead of skipping it.")
    ] = False,
    source_format: Annotated[
        str, typer.Option("--format", help="auto | ntu | pkl | kinetics (auto: from the input)")
    ] = "auto",
    split_names: Annotated[
        str | None, typer.Option(help="pkl: split keys TRAIN[,TEST] (default from the benchmark: xsub_train,xsub_val).")
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option(min=1, help="pkl/kinetics: classifier size (default: the benchmark's, 400 Kinetics)")
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="kinetics: label JSON of a single folder of videos.")] = None,
    split: Annotated[str | None, typer.Option(help="kinetics: train | test for a single folder.")] = None,
    workers: WorkersOpt = 0,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert NTU .skeleton files, an MMAction2/pyskl .pkl or Kinetics-Skeleton JSON into HDF5 split files."""
    from .importers import detect_format
    from .ntu import get_benchmark
    from .preprocess import PreprocessConfig, list_skeleton_files
    from .preprocess import preprocess as run
    from .recipes import check_recipe

    import_only = {"--split-names": split_names, "--num-classes": num_classes, "--labels": labels, "--split": split}
    if detect_format(raw_dir, source_format) != "ntu":
        from .importers import ImportConfig, import_source

        if missing_list is not None:
            raise AgcnError(f"--missing-list applies to .skeleton folders, not to {raw_dir}")
        names = tuple(split_names.split(",")) if split_names else None
        config = ImportConfig(
            raw_dir, out_dir, format=source_format, benchmark=benchmark, split_names=names, num_classes=num_classes,
            labels=labels, split=split, recipe=recipe, strict=strict, overwrite=overwrite, workers=workers,
        )  # fmt: skip
        with _progress(None, "import", "sample") as bar:
            report = import_source(config, progress=bar.update)
        _print_preprocess_report(report, as_json)
        return
    given = [opt for opt, value in import_only.items() if value is not None]
    if given:
        raise AgcnError(f"{given[0]} applies to a .pkl or Kinetics-Skeleton input, not to .skeleton files")
    benchmark, recipe = benchmark or "ntu60-xsub", recipe or "mmaction2"
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


# ---- eval, fuse, predict ----------------------------------------------------------------------


@command("streams")
def streams(
    path: Annotated[Path, typer.Argument(help="An HDF5 split file written by agcn preprocess.")],
    modality: Annotated[str, typer.Option(help="bone | joint-motion | bone-motion | all")] = "all",
    force: Annotated[bool, typer.Option("--force", help="Rewrite streams that are already in the file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store the bone, joint-motion and bone-motion streams in a split file (derived from joints)."""
    from .h5io import check_split_file
    from .streams import DERIVED_STREAMS, materialize_streams

    wanted = list(DERIVED_STREAMS) if modality == "all" else [modality]
    if wanted[0] not in DERIVED_STREAMS:
        raise AgcnError(f"--modality {modality!r}: choose one of: {', '.join(DERIVED_STREAMS)}, all")
    samples = int(check_split_file(path)["num_samples"])
    with _progress(samples, "streams", "sample") as bar:
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
        out.print(f"{path}: {name} already present (pass --force to rewrite it)")


@command("model-info")
def model_info(
    layout: Annotated[str, typer.Option(help="Skeleton layout: ntu25 | coco17 | openpose18")] = "ntu25",
    num_classes: Annotated[int, typer.Option(min=1, help="Classifier outputs.")] = 60,
    in_channels: Annotated[int, typer.Option(min=1, help="Channels per joint.")] = 3,
    variant: Annotated[
        str, typer.Option(help="mmaction2 (AAGCN unit, default) | 2s-agcn (CVPR original)")
    ] = "mmaction2",
    clip_len: Annotated[int, typer.Option(min=1, help="Frames of the clip the MACs are measured on.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Parameters and MACs of the AGCN model, measured on one 2-person clip."""
    from .layouts import get_layout
    from .model import ModelConfig, model_summary

    get_layout(layout)
    summary = model_summary(ModelConfig(layout, num_classes, in_channels, variant=variant), clip_len)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(
        f"AGCN ({summary['variant']} variant, layout {layout}, graph {summary['graph']}): "
        f"{summary['params']:,} parameters, {summary['macs'] / 1e9:.2f} GMACs per clip "
        f"of shape {tuple(summary['input_shape'])} (N, C, T, V, M)"
    )


@command("train")
def train_cmd(
    data: Annotated[
        Path | None, typer.Argument(help="DATA_DIR with train.h5 (+ test.h5), or a train split file.")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="RUN_DIR: config, metrics, checkpoints.")] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML (or JSON) file of these options; flags override it.")
    ] = None,
    modality: Annotated[str | None, typer.Option(help="joint | bone | joint-motion | bone-motion")] = None,
    val: Annotated[Path | None, typer.Option(help="Validation split (default: DATA_DIR/test.h5).")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Classifier size (default: the file's).")] = None,
    variant: Annotated[str | None, typer.Option(help="Model: mmaction2 (the recipe's) | 2s-agcn")] = None,
    dropout: Annotated[float | None, typer.Option(help="Dropout before the classifier. Default: 0.")] = None,
    clip_len: Annotated[int | None, typer.Option(help="Frames per sampled clip. Default: 100.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the training set. Default: 80.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Total batch over all processes. Default: 128.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate for --base-batch-size. Default: 0.1.")] = None,
    base_batch_size: Annotated[int | None, typer.Option(help="Batch the lr is given for. Default: 128.")] = None,
    auto_scale_lr: Annotated[
        bool | None, typer.Option("--auto-scale-lr/--no-auto-scale-lr", help="lr x batch / base batch. Default: on.")
    ] = None,
    min_lr: Annotated[float | None, typer.Option(help="Cosine annealing floor. Default: 0.")] = None,
    momentum: Annotated[float | None, typer.Option(help="SGD momentum. Default: 0.9.")] = None,
    nesterov: Annotated[bool | None, typer.Option("--nesterov/--no-nesterov", help="Nesterov. Default: on.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay. Default: 5e-4.")] = None,
    val_every: Annotated[int | None, typer.Option(help="Validate every N epochs and at the end. Default: 5.")] = None,
    val_batch_size: Annotated[int | None, typer.Option(help="Validation batch per process. Default: 64.")] = None,
    stop_after: Annotated[int | None, typer.Option(help="Stop (resumably) after this many epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of init, order and sampling. Default: 0.")] = None,
    deterministic: Annotated[
        bool | None, typer.Option("--deterministic/--no-deterministic", help="Deterministic kernels. Default: off.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda. Default: auto.")] = None,
    precision: Annotated[
        str | None, typer.Option(help="auto | fp32 | tf32 | bf16. Default: auto (bf16 CUDA, fp32 CPU).")
    ] = None,
    compile_model: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile", help="torch.compile: GPU steps ~1.8x faster after ~1 min. Default: off."
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Batch-loading worker processes. Default: 0.")] = None,
    pin_memory: Annotated[
        bool | None, typer.Option("--pin-memory/--no-pin-memory", help="Pinned host batches (CUDA). Default: on.")
    ] = None,
    tensorboard: Annotated[
        bool | None, typer.Option("--tensorboard/--no-tensorboard", help="Log to RUN_DIR/tb if installed. Default: on.")
    ] = None,
    resume: Annotated[bool | None, typer.Option("--resume", help="Continue the run in RUN_DIR from last.pt.")] = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite", help="Replace a run already in RUN_DIR.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train 2s-AGCN on one stream (MMAction2 recipe defaults); DDP under torchrun."""
    flags = {k: v for k, v in locals().items() if k not in ("config_file", "as_json", "out_dir", "compile_model")}
    flags.update(out=out_dir, compile=compile_model)
    from .train import build_config, fit

    flags = {k: str(v) if isinstance(v, Path) else v for k, v in flags.items()}
    config = build_config(flags, config_file)
    summary = fit(config, log=lambda line: err.print(line, highlight=False, soft_wrap=True))
    if summary["rank"] == 0:  # under torchrun, rank 0 reports
        if as_json:
            out.print_json(json.dumps(summary))
        elif summary["best_epoch"]:
            out.print(f"{summary['run_dir']}: {summary['epoch']} epochs, best val top-1 {summary['best_top1']:.2f}% "
                      f"at epoch {summary['best_epoch']} (best.pt, last.pt)")  # fmt: skip
        else:
            out.print(f"{summary['run_dir']}: {summary['epoch']} epochs (last.pt)")
    if summary["interrupted"]:
        raise typer.Exit(130 if summary["interrupted"] == "SIGINT" else 143)


TestClipsOpt = Annotated[int, typer.Option("--clips", min=1, help="Test clips per sample (MMAction2: 10).")]
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
ForeignModalityOpt = Annotated[
    str | None,
    typer.Option("--modality", help="Foreign weights: stream trained on (joint | bone | joint-motion | bone-motion)."),
]
ForeignChannelsOpt = Annotated[
    int | None, typer.Option("--in-channels", min=1, help="Foreign weights: channels per joint (default: layout's).")
]


def _note(text: str) -> None:
    err.print(f"[yellow]note:[/yellow] {text}", highlight=False, soft_wrap=True)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _accuracies(m) -> tuple[str, str, str]:
    """Top-1, top-5 and mean class accuracy of a Metrics, as table cells."""
    return _pct(m.top1), _pct(m.top5), _pct(m.mean_class)


def _class_label(label: int, name: str) -> str:
    """`A013 tear up paper` for NTU names, `class 7` otherwise."""
    return name if name == f"class {label}" else f"A{label + 1:03d} {name}"


@command("eval")
def eval_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint from agcn train (or foreign weights, see below).")],
    test_file: Annotated[Path, typer.Argument(help="A split file from agcn preprocess, e.g. OUT_DIR/test.h5.")],
    clips: TestClipsOpt = 10,
    clip_len: TestClipLenOpt = None,
    batch_size: TestBatchOpt = 16,
    device: TestDeviceOpt = "auto",
    bf16: Annotated[
        bool, typer.Option("--bf16", help="bfloat16 autocast (CUDA only); else float32, TF32 off.")
    ] = False,
    out_path: Annotated[Path | None, typer.Option("--out", help="Write scores here (HDF5, for agcn fuse).")] = None,
    confusion: Annotated[
        Path | None, typer.Option(help="Write the confusion matrix as CSV (and a PNG beside it with matplotlib).")
    ] = None,
    mmaction_dump: Annotated[
        Path | None, typer.Option(help="Also write MMAction2 1.x's test.py --dump pickle (.pkl).")
    ] = None,
    per_class: Annotated[int, typer.Option(min=0, help="Worst classes shown (0: all).")] = 10,
    num_classes: ForeignClassesOpt = None,
    layout: Annotated[str | None, typer.Option(help="Foreign weights: skeleton layout (default: the file's).")] = None,
    modality: ForeignModalityOpt = None,
    in_channels: ForeignChannelsOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Test a checkpoint on a split file: multi-clip scores, top-1/top-5, per-class accuracy.

    Foreign weights (lshiwjx/2s-AGCN, MMAction2, pyskl) need --num-classes and --modality.
    """
    from .evaluate import EvalConfig, evaluate, foreign_facts
    from .h5io import check_split_file, refuse_existing
    from .metrics import write_confusion_csv, write_confusion_png
    from .scores import write_mmaction_dump, write_scores

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
    with _progress(int(attrs.get("num_samples", 0)) or None, "eval", "sample") as bar:
        result = evaluate(config, progress=bar.update, note=_note)
    m, scores = result.metrics, result.scores
    if out_path is not None:
        write_scores(out_path, scores)
    if mmaction_dump is not None:
        write_mmaction_dump(mmaction_dump, scores)
    if confusion is not None:
        write_confusion_csv(confusion, m.confusion, result.class_names)
        png = confusion.with_suffix(".png")
        if not write_confusion_png(png, m.confusion, result.class_names):
            _note("matplotlib is not installed: wrote the CSV only (pip install matplotlib for the PNG)")
    if as_json:
        info = {"checkpoint": str(checkpoint), "test_file": str(test_file), "modality": scores.attrs["modality"],
                "clips": clips, "clip_len": scores.attrs["clip_len"], "device": result.device}  # fmt: skip
        out.print_json(json.dumps({**info, **m.summary()}))
        return
    table = Table(title=f"agcn eval {checkpoint.name} on {test_file}", title_justify="left")
    for col in ("stream", "clips", "samples", "top-1 %", "top-5 %", "mean class %"):
        table.add_column(col, justify="left" if col == "stream" else "right")
    table.add_row(scores.attrs["modality"], f"{clips} x {scores.attrs['clip_len']}", str(m.samples), *_accuracies(m))
    out.print(table)
    shown = m.per_class if per_class == 0 else m.per_class[:per_class]
    worst = Table(title=f"per class, worst first ({len(shown)} of {len(m.per_class)})", title_justify="left")
    for col in ("class", "samples", "top-1 %", "most confused with"):
        worst.add_column(col, justify="right" if col in ("samples", "top-1 %") else "left")
    for c in shown:
        other = "" if c.confused_with is None else (
            f"{_class_label(c.confused_with, result.class_names[c.confused_with])} ({c.confused_count})"
        )  # fmt: skip
        worst.add_row(_class_label(c.label, c.name), str(c.samples), _pct(c.accuracy), other)
    out.print(worst)
    written = [str(p) for p in (out_path, mmaction_dump, confusion) if p is not None]
    if written:
        out.print(f"wrote {', '.join(written)}")


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

    from .fuse import fuse_files, parse_numbers
    from .h5io import refuse_existing

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
        out.print(f"wrote {out_path}")


@command("predict")
def predict_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint from agcn train.")],
    files: Annotated[list[Path], typer.Argument(help="Raw NTU .skeleton files.")],
    more: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", "-c", help="A further checkpoint (e.g. the bone stream) to fuse with; repeat."),
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated weight per checkpoint, in order (default: all 1).")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Classes shown per file.")] = 5,
    clips: TestClipsOpt = 10,
    clip_len: TestClipLenOpt = None,
    batch_size: TestBatchOpt = 16,
    device: TestDeviceOpt = "auto",
    num_classes: ForeignClassesOpt = None,
    modality: ForeignModalityOpt = None,
    in_channels: ForeignChannelsOpt = None,
    recipe: Annotated[
        str | None, typer.Option(help="Foreign weights: preprocessing recipe of their training data.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Top classes with probabilities for raw .skeleton files (the checkpoint's recipe, stream, 10 clips)."""
    from .evaluate import foreign_facts
    from .fuse import parse_weights
    from .predict import predict

    checkpoints = [checkpoint, *(more or [])]
    w = parse_weights(weights, checkpoints, noun="checkpoints")
    foreign_config, foreign_data = foreign_facts(
        num_classes=num_classes, modality=modality, in_channels=in_channels, recipe=recipe, clip_len=clip_len
    )
    preds = predict(
        checkpoints, files, weights=w, clips=clips, clip_len=clip_len, top=top, batch_size=batch_size, device=device,
        foreign_config=foreign_config, foreign_data=foreign_data, note=_note,
    )  # fmt: skip
    if as_json:
        data = [
            {
                "file": str(p.file),
                "frames": p.frames,
                "true_action": p.action,
                "top": [{"label": c, "action": c + 1, "name": name, "probability": prob} for c, name, prob in p.top],
            }
            for p in preds
        ]
        out.print_json(json.dumps(data))
        return
    for p in preds:
        truth = f", true A{p.action:03d}" if p.action is not None else ""
        table = Table(title=f"{p.file} ({p.frames} frames{truth})", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("class")
        table.add_column("probability", justify="right")
        for rank, (c, name, prob) in enumerate(p.top, 1):
            table.add_row(str(rank), _class_label(c, name), f"{prob:.4f}")
        out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
