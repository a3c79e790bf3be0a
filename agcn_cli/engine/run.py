"""What one stream's training run is: its state (`Run`), its set-up, its resume and its last.pt.

`setup_run` seeds the global RNGs, checks and prepares RUN_DIR (engine/rundir.py), loads the data,
builds the model, SGD and the schedule, and resumes from last.pt: weights, optimizer, schedule, RNG
states and an interrupted epoch's sums (`EpochStats`, saved as `partial`). A resumed run skips the
batches an interrupted epoch had done (the batch order and frame sampling depend on (seed, epoch,
batch) alone), so with `deterministic=True` it ends bit-identical to an uninterrupted one. A larger
`--epochs` on resume recomputes the schedule for the new length (`_resized`, schedule.resize_schedule).

Fine-tuning (`init_from`): a new run whose weights come from a checkpoint (models/loading.py,
`init_weights_from`; a new class count keeps the fresh classifier); optimizer, schedule and
epochs start fresh, and config.json and last.pt record the source (`init_source`). A resumed
run keeps its own weights. `freeze_epochs` and `backbone_lr_mult`: `_set_frozen`, `_param_groups`.

Precision: `_seed_and_precision` picks the autocast dtype (bf16 on CUDA by default; on a CPU only
with bfloat16 units) and sets deterministic kernels.
"""

import json
import os
import random
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..errors import AgcnError
from ..io.atomic import atomic_output
from ..io.checkpoint import DataInfo, save_checkpoint
from ..models.agcn import AGCN, ModelConfig, build_model
from ..models.loading import init_weights_from, is_classifier
from . import distributed
from .config import RUN_CONTROL, TrainConfig
from .data import BatchLoader
from .device import cpu_bf16_units
from .distributed import Dist
from .record import environment
from .rng import rng_state, set_rng_state
from .rundir import MetricsLog, RunLog, check_resume, check_run_dir, drop_replaced, hold_run_dir, prepare_run_dir
from .schedule import build_scheduler, resize_schedule
from .splits import build_data

FORCE_CPU_BF16 = "AGCN_FORCE_CPU_BF16"  # =1: --precision bf16 even on a CPU without bfloat16 units
ACCURACY_UNIT = "fraction"  # checkpoints' `accuracy_unit`: `best` and metrics.jsonl in [0, 1]
_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)  # AGCN's: the input BatchNorm and the units'


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


@dataclass
class Run:
    """One stream's training run: its objects, and its progress (`done`, `best`, `stats`) as it goes."""

    config: TrainConfig  # the stream's own: `modality` one stream, `out` its RUN_DIR
    ctx: Dist
    device: torch.device
    log: RunLog  # the terminal (prefixed `[stream] ` beside other streams) and RUN_DIR/train.log
    loader: BatchLoader
    val_loader: BatchLoader | None
    data: DataInfo
    model: AGCN  # unwrapped: what is saved, validated and broadcast
    optimizer: torch.optim.SGD
    scheduler: torch.optim.lr_scheduler.LRScheduler  # engine/schedule.py, stepped per iteration
    amp_dtype: torch.dtype | None  # bf16 autocast, or None
    train_model: torch.nn.Module | None = None  # `model`, or its DDP / torch.compile wrapper (`_wrap`)
    done: int = 0  # whole epochs trained (last.pt holds them)
    last: dict[str, Any] | None = None  # the metrics row of the last epoch this process trained
    best: dict[str, Any] = field(default_factory=lambda: {"top1": -1.0, "epoch": 0})
    stats: EpochStats = field(default_factory=EpochStats)  # the current epoch's, so far
    wall0: float = 0.0  # training seconds of the run before this process
    clock: float = 0.0  # perf_counter() at the run's virtual start: this process's start less `wall0`
    metrics_log: MetricsLog | None = None  # rank 0 only
    init_source: dict[str, Any] | None = None  # where --init-from's weights came from (InitReport), kept in last.pt
    environment: dict[str, Any] | None = None  # engine/record.py: of the process that began the run (None: unknown)
    resumes: list[dict[str, Any]] = field(default_factory=list)  # of each --resume, with the epoch it took over at
    frozen: bool = False  # the backbone is frozen (--freeze-epochs)
    freeze_hook: Any = None  # the forward pre-hook keeping the frozen backbone's BatchNorms in eval mode
    # Beside other streams: this run's global RNG states between its steps, swapped in around each
    # (engine/loop.py), so that it draws what it would alone. None: the global RNGs are its own.
    rng: dict[str, Any] | None = None
    resume_dir: Path | None = None  # the --out that resumes it: RUN_DIR, or the parent of a multi-stream run's

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out)

    @property
    def stream(self) -> str:
        return self.config.modality

    def wall(self) -> float:
        """Training seconds of the whole run so far (those before this process too)."""
        return time.perf_counter() - self.clock

    def __post_init__(self) -> None:
        self.resume_dir = self.resume_dir or self.run_dir


# ---- setting up --------------------------------------------------------------------------------


def setup_run(config: TrainConfig, log: RunLog, device: torch.device, ctx: Dist, held: ExitStack) -> Run:
    """Seed, check the run folder, load the data, build the model, optimizer and schedule, resume.

    `held` gets RUN_DIR's lock (rank 0), which the caller releases when the run ends."""
    if config.batch_size % ctx.world_size:
        raise AgcnError(f"batch size {config.batch_size} does not split over {ctx.world_size} processes")
    amp_dtype, precision = _seed_and_precision(config, device, log)
    run_dir = Path(config.out)

    def hold_and_check() -> None:  # the lock first: a run training in RUN_DIR is refused as in use
        held.enter_context(hold_run_dir(run_dir))
        check_run_dir(run_dir, config.resume, config.overwrite)

    distributed.on_main(ctx, hold_and_check)  # before the load
    loader, val_loader, data, model_config = build_data(config, ctx, log)
    model, optimizer, scheduler = _build_model(config, model_config, device, len(loader))
    run = Run(config, ctx, device, log, loader, val_loader, data, model, optimizer, scheduler, amp_dtype)
    if config.init_from and not config.resume:  # a resumed run keeps its own weights; a changed CKPT is refused
        # read before the run folder changes (it may lie in it, under --overwrite)
        report = init_weights_from(model, Path(config.init_from), data, note=lambda text: log(f"note: {text}"))
        run.init_source = asdict(report)
        log(_init_line(config, report.path, run.init_source))
    # rank 0 checks the folder and reads last.pt; every rank gets the checkpoint (or the error)
    ckpt = distributed.on_main(ctx, lambda: prepare_run_dir(run_dir, config.resume, config.overwrite))
    if ctx.is_main:
        log.open(run_dir)  # train.log: the lines so far, then each as it comes
    if ckpt is not None:
        _resume(run, ckpt)
    if ctx.is_main:  # the record (engine/record.py): the run's first, or this resume's added
        env = environment(device)
        if ckpt is None:
            run.environment = env
        else:
            run.resumes.append({**env, "epoch": run.done})
    _set_frozen(run, run.done < config.freeze_epochs)
    _wrap(run)
    if ctx.is_main:
        _write_config(run)
        percent = ckpt is not None and _percent_checkpoint(ckpt)
        resumed = run.done if ckpt is not None else None
        run.metrics_log = MetricsLog(run_dir, resumed, config.tensorboard, percent=percent, log=log)
    log(
        f"training {data.modality} on {loader.dataset.path} ({len(loader.dataset)} samples, "
        f"{model_config.num_classes} classes): {config.epochs} epochs x {len(loader)} batches of "
        f"{config.batch_size // ctx.world_size} x {ctx.world_size} {device.type} process(es), "
        f"lr {config.scaled_lr():.4g}, {precision}; "
        f"validation: {val_loader.dataset.path if val_loader else 'none (pass --val FILE)'}"
    )
    return run


def _write_config(run: Run) -> None:
    """RUN_DIR/config.json: the resolved config and the records that are not options (config.RECORDS)."""
    record = {"init_source": run.init_source} if run.init_source else {}
    record.update(environment=run.environment, resumes=run.resumes)
    with atomic_output(run.run_dir / "config.json") as tmp:
        tmp.write_text(json.dumps({**asdict(run.config), **record}, indent=2) + "\n")


def _build_model(
    config: TrainConfig, model_config: ModelConfig, device: torch.device, steps_per_epoch: int
) -> tuple[AGCN, torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """The model (initialised from the seeded torch RNG), SGD, and cosine annealing stepped per iteration."""
    model: AGCN = build_model(model_config).to(device)
    optimizer = torch.optim.SGD(
        _param_groups(model, config),
        lr=config.scaled_lr(),
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    scheduler = build_scheduler(config, optimizer, steps_per_epoch)  # cosine or 2s-AGCN's step (schedule.py)
    return model, optimizer, scheduler


def _param_groups(model: AGCN, config: TrainConfig) -> list[torch.nn.Parameter] | list[dict[str, Any]]:
    """One group of all parameters (the recipe); with --backbone-lr-mult, the classifier's at lr
    (first: the lr the metrics log) and the backbone's at lr x the multiplier. The schedule then
    scales both alike."""
    if config.backbone_lr_mult == 1.0:
        return list(model.parameters())  # as before fine-tuning existed: old runs resume unchanged
    params = list(model.named_parameters())
    lr = config.scaled_lr()
    return [
        {"params": [p for name, p in params if is_classifier(name)], "lr": lr},
        {"params": [p for name, p in params if not is_classifier(name)], "lr": lr * config.backbone_lr_mult},
    ]


def _init_line(config: TrainConfig, path: str, source: dict[str, Any]) -> str:
    """The log line saying where a fine-tuning run starts from and how it treats the backbone."""
    trained = f", {source['modality']} stream, epoch {source['epoch']}" if source["format"] == "agcn" else ""
    line = f"fine-tuning from {path} ({source['format']} weights{trained}; classifier {source['classifier']})"
    if config.freeze_epochs:
        line += f"; backbone frozen for the first {config.freeze_epochs} epoch(s)"
    if config.backbone_lr_mult != 1.0:
        line += f"; backbone lr x {config.backbone_lr_mult:g}"
    return line


def _seed_and_precision(config: TrainConfig, device: torch.device, log: RunLog) -> tuple[torch.dtype | None, str]:
    """Seed the global RNGs, set deterministic kernels; the autocast dtype and the precision's name."""
    random.seed(config.seed), np.random.seed(config.seed), torch.manual_seed(config.seed)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    precision = "bf16" if bf16 else "tf32" if config.precision == "tf32" and device.type == "cuda" else "fp32"
    if config.precision == "tf32" and device.type != "cuda":
        log("--precision tf32 applies on CUDA only; training in float32")
    if bf16 and device.type == "cpu":
        units = cpu_bf16_units()
        if not units and os.environ.get(FORCE_CPU_BF16) != "1":
            raise AgcnError(
                "--precision bf16: this CPU has no bfloat16 units (AMX-BF16 or AVX512-BF16), so PyTorch runs "
                "bfloat16 convolutions and matrix products through slow reference kernels, 15-20x slower than "
                f'fp32 (BENCHMARKS.md, "CPU bfloat16"); train in fp32 (the CPU default), or set {FORCE_CPU_BF16}=1 '
                "to study bf16 numerics anyway"
            )
        log(f"bf16 on the CPU: this CPU has {units} units" if units else
            f"note: bf16 on a CPU without bfloat16 units ({FORCE_CPU_BF16}=1): 15-20x slower than fp32")  # fmt: skip
    return (torch.bfloat16 if bf16 else None), precision


# ---- freezing and wrapping ---------------------------------------------------------------------


def thaw(run: Run, epoch: int) -> None:
    """Freeze or thaw the backbone as `freeze_epochs` says for `epoch` (rebuilding the wrappers)."""
    if run.frozen != (epoch < run.config.freeze_epochs):  # the backbone thaws: train it from here on
        _set_frozen(run, epoch < run.config.freeze_epochs)
        _wrap(run)


def _set_frozen(run: Run, frozen: bool) -> None:
    """Freeze or unfreeze the backbone (every parameter but the classifier's).

    Frozen parameters get `requires_grad=False` rather than leaving the optimizer: no gradient
    is computed through the backbone (the step costs little more than a forward pass) and SGD
    skips parameters without a gradient, so neither weight decay nor momentum moves them; the
    optimizer keeps one set of groups, so its state and schedule run on unchanged when the
    backbone thaws. The backbone's BatchNorms stay in eval mode while frozen (a forward pre-hook
    undoes `model.train()` for them): they keep the checkpoint's running statistics and
    normalise with them, so the classifier learns on the features the frozen backbone gives at
    test time, not on statistics of small fine-tuning batches.
    """
    if frozen == run.frozen:
        return
    for name, p in run.model.named_parameters():
        if not is_classifier(name):
            p.requires_grad_(not frozen)
    if frozen:
        norms = [m for name, m in run.model.named_modules() if isinstance(m, _NORMS) and not is_classifier(name)]

        def keep_eval(model: AGCN, args: Any) -> None:  # returns None: the input is left as it is
            for m in norms:
                m.eval()

        run.freeze_hook = run.model.register_forward_pre_hook(keep_eval)
    else:
        run.freeze_hook.remove()
        run.freeze_hook = None
    run.frozen = frozen


def _wrap(run: Run) -> None:
    """`run.train_model`: the model, under DDP and torch.compile when asked. DDP registers the
    parameters that need a gradient when it is built, so it is built again when they change."""
    run.train_model = run.model
    if run.ctx.enabled:
        index = run.device.index
        run.train_model = DistributedDataParallel(run.model, device_ids=None if index is None else [index])
    if run.config.compile:
        run.train_model = torch.compile(run.train_model)


# ---- last.pt: resuming and saving --------------------------------------------------------------


def _resume(run: Run, ckpt: dict[str, Any]) -> None:
    """Load last.pt's weights, optimizer, schedule and RNG states, and an interrupted epoch's sums."""
    config, ctx, last = run.config, run.ctx, run.run_dir / "last.pt"
    planned = _resized(ckpt, config, last)
    check_resume(ckpt, asdict(config), run.data, asdict(run.model.config), last, RUN_CONTROL | {"epochs"})
    if ckpt["partial"] and ckpt["world_size"] != ctx.world_size:  # the done batches were another sharding
        raise AgcnError(
            f"{last}: saved mid-epoch by {ckpt['world_size']} process(es); resume it with "
            f"{ckpt['world_size']} (not {ctx.world_size}), or at an epoch boundary with any number"
        )
    partial = _check_partial(ckpt.get("partial"), last, len(run.loader))
    for what, load in (
        ("weights", lambda: run.model.load_state_dict(ckpt["model"])),
        ("optimizer state", lambda: run.optimizer.load_state_dict(ckpt["optimizer"])),
        ("schedule state", lambda: run.scheduler.load_state_dict(ckpt["scheduler"])),
        ("RNG states", lambda: set_rng_state(ckpt["rng"])),
    ):
        try:
            load()
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
            detail = " ".join(str(e).split())[:200]
            raise AgcnError(f"{last}: its {what} do not fit this run ({detail}); start a new run") from None
    if planned != config.epochs:  # --epochs changed: the schedule of a run of the new length, from here on
        was = run.optimizer.param_groups[0]["lr"]
        now = resize_schedule(run.scheduler, config.epochs * len(run.loader))[0]
        run.log(
            f"--epochs {config.epochs}: the run was planned for {planned} epochs; its {config.schedule} schedule "
            f"is recomputed for {config.epochs} (lr now {now:.4g}, was {was:.4g})"
        )
    run.done, run.best, run.wall0 = ckpt["epoch"], ckpt["best"], ckpt["wall_s"]
    run.init_source = ckpt.get("init_source")
    run.environment, run.resumes = ckpt.get("environment"), list(ckpt.get("resumes", []))
    if _percent_checkpoint(ckpt) and run.best["top1"] > 0:  # begun before accuracies were fractions
        run.best = {**run.best, "top1": run.best["top1"] / 100}
    if partial:  # an interrupted epoch: the sums so far (of all ranks) go to rank 0
        run.stats = EpochStats(**partial) if ctx.is_main else EpochStats(step=partial["step"])
    step = run.stats.step
    run.log(f"resuming {run.run_dir} at epoch {run.done + 1}" + (f", batch {step + 1}" if step else ""))


def _resized(ckpt: dict[str, Any], config: TrainConfig, path: Path) -> int:
    """The epochs last.pt's run was planned for; refuses a new `--epochs` below the epochs it has
    trained (an interrupted epoch counts as begun)."""
    planned = ckpt.get("train_config", {}).get("epochs", config.epochs)
    begun = ckpt["epoch"] + (1 if ckpt.get("partial") else 0)
    if config.epochs != planned and config.epochs < begun:
        raise AgcnError(
            f"{path}: --epochs {config.epochs} is fewer than the {begun} epoch(s) this run has "
            f"{'begun' if ckpt.get('partial') else 'trained'}; give at least {begun}, or leave --epochs out"
        )
    return planned


def _check_partial(partial: Any, path: Path, steps: int) -> dict[str, Any] | None:
    """last.pt's `partial` (an interrupted epoch's EpochStats as a dict), checked by type and range."""
    if partial is None:
        return None
    kinds = {f.name: f.type for f in fields(EpochStats)}
    if not isinstance(partial, dict) or set(partial) - set(kinds):
        found = sorted(set(partial) - set(kinds)) if isinstance(partial, dict) else type(partial).__name__
        raise AgcnError(f"{path}: 'partial' is not an interrupted epoch's sums (found {found}); start a new run")
    for key, value in partial.items():
        kind = {int: int, float: (int, float), bool: bool}[kinds[key]]
        bad = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        if bad or (not isinstance(value, bool) and value < 0):
            raise AgcnError(f"{path}: 'partial' {key} must be a non-negative number, got {value!r}; start a new run")
    if partial.get("step", 0) > steps:
        raise AgcnError(f"{path}: 'partial' step {partial['step']} is beyond the epoch's {steps} batches")
    return partial


def _percent_checkpoint(ckpt: dict[str, Any]) -> bool:
    """A last.pt written before accuracies became fractions: its `best` and metrics rows hold percent."""
    return ckpt.get("accuracy_unit") != ACCURACY_UNIT


def save_last(run: Run, epoch: int, partial: EpochStats | None, wall: float) -> None:
    """last.pt (rank 0): the unwrapped model, optimizer, schedule, RNG states, config and progress;
    `partial`: an interrupted epoch's sums (of all ranks), None after a whole epoch; `wall`: `run.wall()`."""
    save_checkpoint(
        run.run_dir / "last.pt",
        run.model,
        run.data,
        epoch,
        optimizer=run.optimizer.state_dict(),
        scheduler=run.scheduler.state_dict(),
        rng=rng_state() if run.rng is None else run.rng,
        train_config=asdict(run.config),
        best=run.best,
        partial=None if partial is None else asdict(partial),
        wall_s=wall,
        world_size=run.ctx.world_size,
        init_source=run.init_source,
        environment=run.environment,
        resumes=run.resumes,
        accuracy_unit=ACCURACY_UNIT,
    )
    drop_replaced(run.run_dir)  # the run a --overwrite moved aside: this one now has a checkpoint
