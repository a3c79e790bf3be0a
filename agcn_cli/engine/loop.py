"""One training epoch (of one stream's run, or of several in lock-step), one step, one validation pass.

Several streams train one batch of each per step, over the same sample order; each keeps its own
global RNG states between its steps (`Run.rng`, swapped in around each), so dropout, say, draws
what it would in a run of its own. A single-stream run has no states of its own to swap: the
global RNGs are its own, as in any plain training loop.
"""

import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from . import distributed
from .data import BatchLoader
from .device import autocast
from .distributed import Dist
from .rng import rng_state, set_rng_state
from .run import EpochStats, Run

# A progress display, drawn by the command line (cli/train.py, with tqdm): `progress(total, done,
# description)` opens one epoch's; the `update(**figures)` it yields is called after each step.
Progress = Callable[[int, int, str], AbstractContextManager[Callable[..., None]]]


def train_one_epoch(runs: list[Run], epoch: int, stop: Callable[[], bool], progress: Progress | None = None) -> None:
    """Train epoch `epoch` of each run, one step of each per batch, each from its `stats.step` on.

    Returns early when `stop()` turns true on any rank (after the step it lands in, or before the
    next one): the runs' `stats.step < len(loader)`. A run whose loss turns non-finite
    (`stats.nonfinite`) drops out; the others go on.
    """
    ctx, steps = runs[0].ctx, len(runs[0].loader)
    batches = {id(run): _batches(run, epoch) for run in runs}
    first = min(run.stats.step for run in runs)
    desc = f"epoch {epoch + 1}/{runs[0].config.epochs}" + (f" ({len(runs)} streams)" if len(runs) > 1 else "")
    bar = progress(steps, first, desc) if progress and ctx.is_main else nullcontext(lambda **_: None)
    live = list(runs)
    with bar as update:
        t0, before = time.perf_counter(), sum(run.stats.samples for run in runs)
        for b in range(first, steps):
            if stopping(stop, ctx):  # a signal after the last step's own check: no further batch
                break
            stop_now = False
            for run in [run for run in live if run.stats.step <= b]:  # one resumed further on waits
                stopped = _step(run, batches[id(run)], stop)
                if run.stats.nonfinite:  # this stream drops out; its NaN is no stop for the others
                    live.remove(run)
                else:
                    stop_now |= stopped
            rate = (sum(run.stats.samples for run in runs) - before) * ctx.world_size / (time.perf_counter() - t0)
            update(**_figures(runs, live), sps=f"{rate:.0f}")
            if stop_now or not live:
                break


def _figures(runs: list[Run], live: list[Run]) -> dict[str, Any]:
    """What the progress bar shows beside the rate: one run's loss and lr, or how many streams train."""
    if len(runs) > 1:
        return {"streams": len(live)}
    return {"loss": f"{runs[0].stats.last_loss:.3f}", "lr": f"{runs[0].stats.lr:.4g}"}


def _batches(run: Run, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`run`'s batches of `epoch` from `run.stats.step` on, its model in training mode."""
    run.loader.set_epoch(epoch)
    run.train_model.train()
    if run.stats.step >= len(run.loader):  # resumed after the epoch's last batch (stopped in validation)
        return iter(())
    batches = iter(run.loader)
    for _ in range(run.stats.step):  # done before an interruption: the same batches, not trained again
        next(batches)
    return batches


def _step(run: Run, batches: Iterator, stop: Callable[[], bool]) -> bool:
    """One training step of `run` on its next batch (under its own RNG states, if it has them),
    timed into its stats; whether to stop after it."""
    t0 = time.perf_counter()
    batch = next(batches)
    t_batch = time.perf_counter()
    if run.rng is not None:
        set_rng_state(run.rng)
    stop_now = train_step(
        run.train_model,
        batch,
        run.optimizer,
        run.scheduler,
        run.device,
        run.stats,
        amp_dtype=run.amp_dtype,
        ctx=run.ctx,
        stop=stop,
    )
    if run.rng is not None:
        run.rng = rng_state()
    run.stats.data_wait += t_batch - t0
    run.stats.seconds += time.perf_counter() - t0
    return stop_now


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
    # one collective for both: the stop request and the non-finite loss of any rank
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
