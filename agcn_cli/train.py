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
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from . import distributed, runs
from .checkpoint import save_checkpoint
from .data import BatchLoader
from .distributed import Dist
from .errors import AgcnError
from .h5io import atomic_output
from .model import AGCN, VARIANTS, build_model
from .streams import STREAMS

# auto: bf16 autocast on CUDA, fp32 on the CPU; fp32 is float32 (TF32 off), tf32 allows TF32 (CUDA only)
PRECISIONS = ("auto", "fp32", "tf32", "bf16")

# fields that may change when resuming: where things are and how fast, not what is trained
RUN_CONTROL = {
    "data",
    "out",
    "val",
    "val_batch_size",
    "stop_after",
    "device",
    "compile",
    "workers",
    "pin_memory",
    "tensorboard",
    "resume",
    "overwrite",
}


@dataclass
class TrainConfig:
    data: str = ""  # DATA_DIR holding train.h5 (and test.h5), or a training split file
    out: str = "runs/agcn"  # RUN_DIR: config.json, metrics.jsonl, last.pt, best.pt
    val: str | None = None  # validation split; None: DATA_DIR/test.h5 when `data` is a folder
    modality: str = "joint"  # stream: joint, bone, joint-motion, bone-motion (derived if not stored)
    num_classes: int | None = None  # classifier size; None: the file's num_classes attribute
    variant: str = "mmaction2"  # model variant: mmaction2 (AAGCN unit, the recipe's) or 2s-agcn
    dropout: float = 0.0  # before the classifier (0 in the recipe)
    clip_len: int = 100  # frames per uniformly sampled clip (UniformSampleFrames)
    epochs: int = 80  # passes over the training set (MMAction2: 16 epochs x RepeatDataset 5)
    batch_size: int = 128  # total over all processes (recipe: 16 per GPU x 8 GPUs)
    lr: float = 0.1  # learning rate for base_batch_size
    base_batch_size: int = 128  # the batch `lr` is given for
    auto_scale_lr: bool = True  # lr x batch_size / base_batch_size (MMAction2's --auto-scale-lr)
    min_lr: float = 0.0  # cosine annealing floor (eta_min)
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = True  # Nesterov momentum
    weight_decay: float = 5e-4  # L2 on every parameter, as the recipe
    val_every: int = 5  # validate every N epochs and after the last (5: MMAction2's points)
    val_batch_size: int = 64  # validation batch per process
    stop_after: int | None = None  # stop (resumably) after this many epochs, e.g. to split a run
    seed: int = 0  # model init, batch order and frame sampling
    deterministic: bool = False  # deterministic kernels: a resumed run matches an uninterrupted one
    device: str = "auto"  # auto (cuda if available), cpu or cuda
    precision: str = "auto"  # fp32, tf32 (CUDA) or bf16 autocast; auto: bf16 on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the training model
    workers: int = 0  # BatchLoader worker processes (0: gather in the main process)
    pin_memory: bool = True  # pinned host batches (CUDA only)
    tensorboard: bool = True  # also log to RUN_DIR/tb when tensorboard is installed
    resume: bool = False  # continue the run in `out` from last.pt
    overwrite: bool = False  # replace a run already in `out`

    def check(self) -> None:
        choices = {
            "modality": STREAMS,
            "variant": VARIANTS,
            "device": distributed.DEVICES,
            "precision": PRECISIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise AgcnError(f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}")
        for name in ("clip_len", "epochs", "batch_size", "base_batch_size", "val_every", "val_batch_size"):
            if getattr(self, name) < 1:
                raise AgcnError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_classes is not None and self.num_classes < 1:
            raise AgcnError(f"num_classes must be at least 1, got {self.num_classes}")
        if self.lr <= 0 or self.min_lr < 0 or self.weight_decay < 0 or self.workers < 0 or self.seed < 0:
            raise AgcnError("lr must be positive; min_lr, weight_decay, workers and seed non-negative")
        if not 0 <= self.momentum < 1 or (self.nesterov and self.momentum == 0):  # else SGD's ValueError
            raise AgcnError(f"momentum must be in [0, 1) and positive with --nesterov, got {self.momentum}")
        if self.stop_after is not None and self.stop_after < 1:
            raise AgcnError(f"stop_after must be at least 1, got {self.stop_after}")
        if not self.data:
            raise AgcnError("no training data: give DATA_DIR (with train.h5) or a train split file")
        if self.resume and self.overwrite:
            raise AgcnError("--resume and --overwrite exclude each other")

    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / self.base_batch_size if self.auto_scale_lr else self.lr


def build_config(flags: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """Defaults < the run's saved config (when resuming) < `config_file` < flags (None: not given)."""
    names = [f.name for f in fields(TrainConfig)]
    values = runs.load_config_file(config_file, names) if config_file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    saved = Path(values.get("out", TrainConfig.out)) / "config.json"
    if values.get("resume") and saved.is_file():
        base = runs.load_config_file(saved, names)
        values = {**{k: v for k, v in base.items() if k not in ("resume", "overwrite", "stop_after")}, **values}
    config = TrainConfig(**values)
    config.check()
    return config


# ---- one epoch --------------------------------------------------------------------------------


@dataclass
class EpochStats:
    step: int = 0  # batches done (also those done before an interruption)
    loss_sum: float = 0.0  # summed per-sample loss
    correct: int = 0  # top-1 hits on the training clips
    samples: int = 0
    data_wait: float = 0.0  # seconds spent waiting for batches (this rank)
    seconds: float = 0.0  # training time of the epoch (this rank)
    lr: float = 0.0  # learning rate of the last step
    nonfinite: bool = False  # a NaN or infinite loss stopped the epoch


def train_one_epoch(
    model: torch.nn.Module,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device,
    stats: EpochStats,
    *,
    amp_dtype: torch.dtype | None = None,
    ctx: Dist = Dist(),
    stop: Callable[[], bool] = lambda: False,
    bar: Any = None,
) -> EpochStats:
    """Train on the batches of `loader`'s epoch from `stats.step` on; stats are this rank's.

    Returns early (with `stats.step < len(loader)`) when `stop()` turns true on any rank or
    the loss is not finite (`stats.nonfinite`), after the current step.
    """
    model.train()
    t0 = time.perf_counter()
    batches = iter(loader)
    for _ in range(stats.step):  # done before an interruption: same batches, not trained again
        next(batches)
    while True:
        t_wait = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        x, y, _ = batch  # x (N, C, T, V, M)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        stats.data_wait += time.perf_counter() - t_wait
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            logits = model(x)  # (N, num_classes)
        loss = F.cross_entropy(logits.float(), y)
        value = loss.item()
        stop_now, nonfinite = distributed.any_rank([stop(), not math.isfinite(value)], ctx)
        if nonfinite:
            stats.nonfinite = True
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stats.lr = optimizer.param_groups[0]["lr"]
        scheduler.step()  # per iteration, as MMAction2's convert_to_iter_based
        stats.step += 1
        stats.samples += len(y)
        stats.loss_sum += value * len(y)
        stats.correct += int((logits.argmax(1) == y).sum())
        if bar is not None:
            rate = stats.samples * ctx.world_size / max(time.perf_counter() - t0 + stats.seconds, 1e-9)
            bar.set_postfix(loss=f"{value:.3f}", lr=f"{stats.lr:.4g}", sps=f"{rate:.0f}", refresh=False)
            bar.update()
        if stop_now:
            break
    stats.seconds += time.perf_counter() - t0
    return stats


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: BatchLoader,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    ctx: Dist = Dist(),
) -> dict[str, float]:
    """Single-clip top-1 / top-5 (%) and mean loss over the whole split, each sample once.

    Ranks score their shards; per-sample results are merged by sample index with a max, so
    the samples BatchLoader repeats to even out the shards count once.
    """
    model.eval()
    n = len(loader.dataset)
    per_sample = torch.zeros(4, n, dtype=torch.float64)  # top-1 hit, top-5 hit, loss, seen
    for x, y, idx in loader:
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            logits = model(x.to(device)).float().cpu()  # (N, num_classes)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        per_sample[0, idx] = (top[:, 0] == y).double()
        per_sample[1, idx] = (top == y[:, None]).any(1).double()
        per_sample[2, idx] = F.cross_entropy(logits, y, reduction="none").double()
        per_sample[3, idx] = 1.0
    distributed.all_max_(per_sample, ctx)
    seen = per_sample[3].sum().clamp(min=1)
    return {
        "top1": 100 * float(per_sample[0].sum() / seen),
        "top5": 100 * float(per_sample[1].sum() / seen),
        "loss": float(per_sample[2].sum() / seen),
    }


# ---- the training run -------------------------------------------------------------------------


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fit(config: TrainConfig, log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Train (or resume) the run described by `config`, in this process or as one torchrun rank.

    Returns a summary: `epoch` (epochs completed), `best_top1`, `best_epoch`, `last` (the
    last metrics row), `interrupted` (the signal's name, or None), `run_dir` and `rank`.
    """
    config.check()
    cuda = distributed.resolve_device(config.device).type == "cuda"
    ctx = distributed.init("cuda" if cuda else "cpu")
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        device = torch.device("cuda", ctx.local_rank) if cuda else torch.device("cpu")
        with distributed.tf32(config.precision == "tf32"):
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
    distributed.on_main(ctx, lambda: runs.check_run_dir(run_dir, config.resume, config.overwrite))  # before the load
    loader, val_loader, data, model_config = runs.build_data(config, ctx, log)
    # rank 0 checks the folder and reads last.pt; every rank gets the checkpoint (or the error)
    ckpt = distributed.on_main(ctx, lambda: runs.prepare_run_dir(run_dir, config.resume, config.overwrite))

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
        runs.check_resume(ckpt, asdict(config), data, asdict(model_config), run_dir / "last.pt", RUN_CONTROL)
        if ckpt["partial"] and ckpt["world_size"] != ctx.world_size:  # the done batches were another sharding
            raise AgcnError(
                f"{run_dir / 'last.pt'}: saved mid-epoch by {ckpt['world_size']} process(es); resume it with "
                f"{ckpt['world_size']} (not {ctx.world_size}), or at an epoch boundary with any number"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        runs.set_rng_state(ckpt["rng"])
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
        metrics_log = runs.MetricsLog(run_dir, start if ckpt is not None else None, config.tensorboard)
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
            rng=runs.rng_state(),
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
        with runs.StopSignals() as stop:
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
                log(runs.epoch_line(row, config.epochs, best))
                summary.update(epoch=epoch + 1, best_top1=best["top1"], best_epoch=best["epoch"], last=row)
                stats = EpochStats()
        return summary
    finally:
        if metrics_log is not None:
            metrics_log.close()
