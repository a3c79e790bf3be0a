"""The learning-rate schedule of a run, stepped once per iteration (after each optimizer step).

- `cosine` (MMAction2's recipe, the default): cosine annealing from the lr to `min_lr` over all
  iterations, `CosineAnnealingLR` as MMAction2's `convert_to_iter_based` steps it.
- `step` (lshiwjx/2s-AGCN `main.py`, `adjust_learning_rate`): constant within an epoch,
  lr = base_lr * 0.1 ** (number of `lr_steps` epochs reached), epochs counted from 0, so with
  steps 30,40 epochs 0-29 train at base_lr, 30-39 at base_lr / 10, 40 on at base_lr / 100.

Warm-up (`warmup_epochs` W > 0, 2s-AGCN's `warm_up_epoch`, 0 in its configs): epoch e < W
trains at base_lr * (e + 1) / W, constant within the epoch as there; the schedule then runs
as above (for cosine: over the iterations after the warm-up).

The scheduler's state (its iteration count) is saved in last.pt and restored on resume.
"""

import math

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler

from .config import TrainConfig


def step_factor(epoch: int, steps: tuple[int, ...], warmup_epochs: int = 0) -> float:
    """lr / base_lr in (0-based) `epoch` under the step schedule: 2s-AGCN's formula."""
    if epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    return 0.1 ** sum(epoch >= s for s in steps)


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> LRScheduler:
    """The run's scheduler over `config.epochs * steps_per_epoch` iterations (see the module doc)."""
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs
    if config.schedule == "cosine" and warmup == 0:
        return CosineAnnealingLR(optimizer, total, config.min_lr)
    base = config.scaled_lr()
    if config.schedule == "step":
        steps = config.lr_milestones()
        return LambdaLR(optimizer, lambda it: step_factor(it // steps_per_epoch, steps, warmup))

    start = warmup * steps_per_epoch  # cosine after a warm-up: anneal over the remaining iterations
    span = max(total - start, 1)

    def cosine(it: int) -> float:
        if it < start:
            return step_factor(it // steps_per_epoch, (), warmup)
        lr = config.min_lr + (base - config.min_lr) * (1 + math.cos(math.pi * (it - start) / span)) / 2
        return lr / base

    return LambdaLR(optimizer, cosine)


def resize_schedule(scheduler: LRScheduler, total: int) -> list[float]:
    """A resumed run given another `--epochs`: the schedule becomes that of a run of `total`
    iterations, at the iteration the saved state reached; returns the lrs it sets now.

    LambdaLR's factors are closed-form functions built for the new length (they are not saved
    in the state); CosineAnnealingLR's saved state holds the old length, and its recursive
    update follows the lr it finds, so its length and current lr are set to the closed form."""
    it = scheduler.last_epoch
    if isinstance(scheduler, CosineAnnealingLR):
        scheduler.T_max = total
        low = scheduler.eta_min
        lrs = [low + (base - low) * (1 + math.cos(math.pi * min(it, total) / total)) / 2 for base in scheduler.base_lrs]
    else:
        lrs = [base * factor(it) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler._last_lr = lrs
    return lrs
