"""`agcn model-info` and `agcn train`."""

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import JsonOpt, command, err, out


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
    from ..models.agcn import ModelConfig, model_summary
    from ..skeleton.layouts import get_layout

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
    from ..engine.config import build_config
    from ..engine.fit import fit

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
