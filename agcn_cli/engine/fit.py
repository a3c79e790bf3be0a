"""`agcn train`: the MMAction2 2s-AGCN recipe as defaults, one process or DDP under torchrun.

Recipe (MMAction2 `2s-agcn_8xb16-*-u100-80e_ntu60-xsub-keypoint-3d`): one uniformly sampled
clip of 100 frames, 2 persons; SGD lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4;
cross-entropy; cosine annealing to 0 stepped every iteration; total batch 128 (16 x 8 GPUs).

Epochs: MMAction2 trains 16 epochs of a RepeatDataset(times=5), i.e. 80 passes over the
training set, and validates after each of its epochs. Here an epoch is one pass, so
`epochs=80` gives the reference's iteration count and schedule, and `val_every=5` its
validation points. The learning rate is given for `base_batch_size` (128) and, with
`auto_scale_lr` (on by default, MMAction2's `--auto-scale-lr`), scaled linearly to the
total batch actually used: lr x batch_size / base_batch_size.

Run folder: `config.json` (the resolved config), `metrics.jsonl` (one object per epoch),
`last.pt` (every epoch, and on SIGINT/SIGTERM mid-epoch) and `best.pt` (best validation
top-1), written atomically by rank 0 only. A resumed run skips the batches an interrupted
epoch had done (the batch order and frame sampling depend on (seed, epoch, batch) alone), so
with `deterministic=True` it ends bit-identical to an uninterrupted one.
"""

import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..errors import AgcnError
from ..io.atomic import atomic_output
from ..io.checkpoint import save_checkpoint
from ..models.agcn import AGCN, build_model
from . import distributed
from .config import RUN_CONTROL, TrainConfig
from .data import build_data
from .device import resolve_device, tf32
from .distributed import Dist
from .loop import EpochStats, evaluate, train_one_epoch
from .rng import rng_state, set_rng_state
from .rundir import MetricsLog, check_resume, check_run_dir, epoch_line, prepare_run_dir
from .signals import StopSignals

# ---- one epoch --------------------------------------------------------------------------------


# ---- the training run -------------------------------------------------------------------------


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fit(config: TrainConfig, log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Train (or resume) the run described by `config`, in this process or as one torchrun rank.

    Returns a summary: `epoch` (epochs completed), `best_top1`, `best_epoch`, `last` (the
    last metrics row), `interrupted` (the signal's name, or None), `run_dir` and `rank`.
    """
    config.check()
    cuda = resolve_device(config.device).type == "cuda"
    ctx = distributed.init("cuda" if cuda else "cpu")
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        device = torch.device("cuda", ctx.local_rank) if cuda else torch.device("cpu")
        with tf32(config.precision == "tf32"):
            return _fit(config, log if ctx.is_main else lambda _: None, device, ctx)
    finally:
        torch.use_deterministic_algorithms(deterministic)  # process-wide: leave it as found
        distributed.cleanup(ctx)


def _fit(config: TrainConfig, log: Callable[[str], None], device: torch.device, ctx: Dist) -> dict[str, Any]:
    from tqdm import tqdm

    if config.batch_size % ctx.world_size:
        raise AgcnError(f"batch size {config.batch_size} does not split over {ctx.world_size} processes")
    random.seed(config.seed), np.random.seed(config.seed), torch.manual_seed(config.seed)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    amp_dtype = torch.bfloat16 if bf16 else None
    precision = "bf16" if bf16 else "tf32" if config.precision == "tf32" and device.type == "cuda" else "fp32"
    if config.precision == "tf32" and device.type != "cuda":
        log("--precision tf32 applies on CUDA only; training in float32")
    run_dir = Path(config.out)
    distributed.on_main(ctx, lambda: check_run_dir(run_dir, config.resume, config.overwrite))  # before the load
    loader, val_loader, data, model_config = build_data(config, ctx, log)
    # rank 0 checks the folder and reads last.pt; every rank gets the checkpoint (or the error)
    ckpt = distributed.on_main(ctx, lambda: prepare_run_dir(run_dir, config.resume, config.overwrite))

    model: AGCN = build_model(model_config).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.scaled_lr(),
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs * len(loader), config.min_lr)
    start, stats, best, wall0 = 0, EpochStats(), {"top1": -1.0, "epoch": 0}, 0.0
    if ckpt is not None:
        check_resume(ckpt, asdict(config), data, asdict(model_config), run_dir / "last.pt", RUN_CONTROL)
        if ckpt["partial"] and ckpt["world_size"] != ctx.world_size:  # the done batches were another sharding
            raise AgcnError(
                f"{run_dir / 'last.pt'}: saved mid-epoch by {ckpt['world_size']} process(es); resume it with "
                f"{ckpt['world_size']} (not {ctx.world_size}), or at an epoch boundary with any number"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        start, best, wall0 = ckpt["epoch"], ckpt["best"], ckpt["wall_s"]
        if ckpt["partial"]:  # an interrupted epoch: the sums so far (of all ranks) go to rank 0
            stats = EpochStats(**ckpt["partial"]) if ctx.is_main else EpochStats(step=ckpt["partial"]["step"])
        log(f"resuming {run_dir} at epoch {start + 1}" + (f", batch {stats.step + 1}" if stats.step else ""))
    train_model: torch.nn.Module = model
    if ctx.enabled:
        train_model = DistributedDataParallel(model, device_ids=None if device.index is None else [device.index])
    if config.compile:
        train_model = torch.compile(train_model)
    metrics_log = None
    if ctx.is_main:
        with atomic_output(run_dir / "config.json") as tmp:
            tmp.write_text(json.dumps(asdict(config), indent=2) + "\n")
        metrics_log = MetricsLog(run_dir, start if ckpt is not None else None, config.tensorboard)
    per_rank = config.batch_size // ctx.world_size
    log(
        f"training {data.modality} on {loader.dataset.path} ({len(loader.dataset)} samples, "
        f"{model_config.num_classes} classes): {config.epochs} epochs x {len(loader)} batches of {per_rank} x "
        f"{ctx.world_size} {device.type} process(es), lr {config.scaled_lr():.4g}, {precision}; "
        f"validation: {val_loader.dataset.path if val_loader else 'none (pass --val FILE)'}"
    )

    def save(epoch: int, partial: EpochStats | None, wall: float) -> None:
        save_checkpoint(
            run_dir / "last.pt",
            model,
            data,
            epoch,
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng=rng_state(),
            train_config=asdict(config),
            best=best,
            partial=None if partial is None else asdict(partial),
            wall_s=wall,
            world_size=ctx.world_size,
        )

    end = config.epochs if config.stop_after is None else min(config.epochs, config.stop_after)
    summary = {
        "epoch": start,
        "interrupted": None,
        "best_top1": best["top1"],
        "best_epoch": best["epoch"],
        "last": None,
        "run_dir": str(run_dir),
        "rank": ctx.rank,
    }
    t_run = time.perf_counter() - wall0
    try:
        with StopSignals() as stop:
            for epoch in range(start, end):
                loader.set_epoch(epoch)
                with tqdm(
                    total=len(loader),
                    initial=stats.step,
                    desc=f"epoch {epoch + 1}/{config.epochs}",
                    unit="batch",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    disable=None if ctx.is_main else True,
                    leave=False,
                ) as bar:
                    train_one_epoch(
                        train_model,
                        loader,
                        optimizer,
                        scheduler,
                        device,
                        stats,
                        amp_dtype=amp_dtype,
                        ctx=ctx,
                        stop=lambda: stop.signum is not None,
                        bar=bar,
                    )
                loss_sum, correct, samples = distributed.all_sum([stats.loss_sum, stats.correct, stats.samples], ctx)
                if stats.nonfinite:
                    kept = f"{run_dir / 'last.pt'} holds epoch {epoch}" if epoch else "no checkpoint was written"
                    raise AgcnError(
                        f"non-finite training loss at epoch {epoch + 1}, batch {stats.step + 1}: stopped; "
                        f"{kept}. Lower --lr, or check the data (agcn info {loader.dataset.path})"
                    )
                if stats.step < len(loader):  # a signal: save mid-epoch, with all ranks' sums so far
                    if ctx.is_main:
                        partial = replace(stats, loss_sum=loss_sum, correct=int(correct), samples=int(samples))
                        save(epoch, partial, time.perf_counter() - t_run)
                    log(
                        f"{stop.name}: saved {run_dir / 'last.pt'} at epoch {epoch + 1}, batch {stats.step}; "
                        f"continue with: agcn train --resume --out {run_dir}"
                    )
                    return {**summary, "interrupted": stop.name}
                row = {
                    "epoch": epoch + 1,
                    "train_loss": loss_sum / samples,
                    "train_acc": 100 * correct / samples,
                    "train_samples": int(samples),
                    "lr": stats.lr,
                    "samples_per_s": samples / stats.seconds,
                    "data_wait_s": stats.data_wait,
                }
                if val_loader is not None and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs):
                    distributed.broadcast_buffers_(model, ctx)  # score the model rank 0 saves
                    val = evaluate(model, val_loader, device, amp_dtype=amp_dtype, ctx=ctx)
                    row.update(val_top1=val["top1"], val_top5=val["top5"], val_loss=val["loss"])
                improved = row.get("val_top1", -1.0) > best["top1"]
                if improved:
                    best = {"top1": row["val_top1"], "epoch": epoch + 1}
                row["epoch_s"], row["wall_s"] = stats.seconds, time.perf_counter() - t_run
                if ctx.is_main:
                    save(epoch + 1, None, row["wall_s"])
                    if improved:
                        with atomic_output(run_dir / "best.pt") as tmp:
                            shutil.copyfile(run_dir / "last.pt", tmp)
                    metrics_log.write(row)
                log(epoch_line(row, config.epochs, best))
                summary.update(epoch=epoch + 1, best_top1=best["top1"], best_epoch=best["epoch"], last=row)
                stats = EpochStats()
        return summary
    finally:
        if metrics_log is not None:
            metrics_log.close()
