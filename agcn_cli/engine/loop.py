"""One training epoch and one validation pass."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import distributed
from .data import BatchLoader
from .device import autocast
from .distributed import Dist


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
    last_loss: float = 0.0  # the loss of the last step (the progress bar's)


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

    Returns early (with `stats.step < len(loader)`) when `stop()` turns true on any rank (after
    the step it lands in, or before the next one) or the loss is not finite (`stats.nonfinite`).
    """
    model.train()
    t0 = time.perf_counter()
    if stats.step >= len(loader):  # resumed after the epoch's last batch (stopped in validation)
        return stats
    batches = iter(loader)
    for _ in range(stats.step):  # done before an interruption: same batches, not trained again
        next(batches)
    while not stopping(stop, ctx):
        t_wait = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        stats.data_wait += time.perf_counter() - t_wait
        stop_now = train_step(
            model, batch, optimizer, scheduler, device, stats, amp_dtype=amp_dtype, ctx=ctx, stop=stop
        )
        if stats.nonfinite:
            break
        if bar is not None:
            rate = stats.samples * ctx.world_size / max(time.perf_counter() - t0 + stats.seconds, 1e-9)
            bar.set_postfix(loss=f"{stats.last_loss:.3f}", lr=f"{stats.lr:.4g}", sps=f"{rate:.0f}", refresh=False)
            bar.update()
        if stop_now:
            break
    stats.seconds += time.perf_counter() - t0
    return stats


def stopping(stop: Callable[[], bool], ctx: Dist) -> bool:
    """`stop()` on any rank: checked before each batch, so a signal that lands after a step's own
    check (in its backward pass, or in the epoch's last step) stops before the next batch."""
    return distributed.any_rank([stop()], ctx)[0]


def train_step(
    model: torch.nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device,
    stats: EpochStats,
    *,
    amp_dtype: torch.dtype | None = None,
    ctx: Dist = Dist(),
    stop: Callable[[], bool] = lambda: False,
) -> bool:
    """One SGD step on `batch` (x (N, C, T, V, M), y, idx), counted in `stats`; whether to stop
    after it (`stop()` on any rank). A non-finite loss on any rank sets `stats.nonfinite` and
    takes no step."""
    x, y, _ = batch
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    with autocast(device, amp_dtype):
        logits = model(x)  # (N, num_classes)
    loss = F.cross_entropy(logits.float(), y)
    value = loss.item()
    stop_now, nonfinite = distributed.any_rank([stop(), not math.isfinite(value)], ctx)
    if nonfinite:
        stats.nonfinite = True
        return True
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    stats.lr = optimizer.param_groups[0]["lr"]
    scheduler.step()  # per iteration, as MMAction2's convert_to_iter_based
    stats.step += 1
    stats.samples += len(y)
    stats.loss_sum += value * len(y)
    stats.last_loss = value
    stats.correct += int((logits.argmax(1) == y).sum())
    return stop_now


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    loader: BatchLoader,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    ctx: Dist = Dist(),
    stop: Callable[[], bool] = lambda: False,
) -> dict[str, float] | None:
    """Single-clip top-1 / top-5 (fractions in [0, 1]) and mean loss over the whole split, each sample once;
    None when `stop()` turns true on any rank (checked before each batch).

    Ranks score their shards; per-sample results are merged by sample index with a max, so
    the samples BatchLoader repeats to even out the shards count once.
    """
    model.eval()
    n = len(loader.dataset)
    per_sample = torch.zeros(4, n, dtype=torch.float64)  # top-1 hit, top-5 hit, loss, seen
    for x, y, idx in loader:
        if stopping(stop, ctx):
            return None
        with autocast(device, amp_dtype):
            logits = model(x.to(device)).float().cpu()  # (N, num_classes)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        per_sample[0, idx] = (top[:, 0] == y).double()
        per_sample[1, idx] = (top == y[:, None]).any(1).double()
        per_sample[2, idx] = F.cross_entropy(logits, y, reduction="none").double()
        per_sample[3, idx] = 1.0
    distributed.all_max_(per_sample, ctx)
    seen = per_sample[3].sum().clamp(min=1)
    return {
        "top1": float(per_sample[0].sum() / seen),
        "top5": float(per_sample[1].sum() / seen),
        "loss": float(per_sample[2].sum() / seen),
    }
