"""The training configuration: one dataclass, its checks, and how files and flags fill it.

Each field carries its `--help` line (`metadata["help"]`) and, for a closed set of values, its
`StrEnum` (`metadata["choices"]`); `agcn train` derives its options from these fields, adding the
default. The closed sets of training (device, precision, schedule, sampling) are declared here,
each a tuple of the plain strings config.json and checkpoints store and the `StrEnum` built from
it, which the command line's options take. This module imports no torch and no h5py, so that
`agcn --help` stays instant.
"""

import json
import math
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args, get_type_hints

from ..errors import AgcnError
from ..models.choices import VARIANTS, Variant
from ..skeleton.streams import STREAMS

# auto: cuda when available (engine/device.py)
DEVICES = ("auto", "cpu", "cuda")
Device = StrEnum("Device", {d: d for d in DEVICES})
# auto: bf16 autocast on CUDA, fp32 on the CPU; fp32 is float32 (TF32 off), tf32 allows TF32 (CUDA only)
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
Precision = StrEnum("Precision", {p: p for p in PRECISIONS})
# cosine: per iteration (MMAction2); step: x0.1 at epochs (2s-AGCN); see engine/schedule.py
SCHEDULES = ("cosine", "step")
Schedule = StrEnum("Schedule", {s: s for s in SCHEDULES})
# uniform: UniformSampleFrames clips; full: the whole padded window (2s-AGCN); see skeleton/views.py
SAMPLINGS = ("uniform", "full")
Sampling = StrEnum("Sampling", {s: s for s in SAMPLINGS})
# clip_len and window beyond this are a typo, not a recipe (2s-AGCN's window is 300): a batch would not fit in memory
MAX_FRAMES = 10_000
MAX_EPOCHS = 10_000  # the published recipes train 50-80 epochs


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


# keys of a run's config.json that record the run (engine/run.py) rather than configure it
RECORDS = ("init_source", "environment", "resumes")  # environment, resumes: engine/record.py
CONFIG_SUFFIXES = (".toml", ".json")


def _option(default: Any, help: str, choices: type[StrEnum] | None = None) -> Any:
    """A field with its one-line `--help` text (the default is added by the CLI) and, for a closed
    set of values, their StrEnum: the option's type on the command line."""
    return field(default=default, metadata={"help": help, "choices": choices})


def _either(values: tuple[str, ...]) -> str:
    """`a | b | c`: a closed set of values, in a help line."""
    return " | ".join(values)


@dataclass
class TrainConfig:
    data: str = _option("", "DATA_DIR with train.h5 (+ test.h5), or a training split file.")
    out: str = _option("runs/agcn", "RUN_DIR: config.json, metrics.jsonl, last.pt, best.pt.")
    val: str | None = _option(None, "Validation split. Default: DATA_DIR/test.h5 when DATA is a folder.")
    modality: str = _option(
        "joint",
        f"Stream: {_either(STREAMS)} (derived if not stored); several (a comma list, or all) train together "
        "in one process, each into RUN_DIR/STREAM.",
    )
    num_classes: int | None = _option(None, "Classifier size. Default: the data file's num_classes.")
    variant: str = _option(
        "mmaction2",
        f"Model: {_either(VARIANTS)}; mmaction2 is the AAGCN unit (the recipe's), 2s-agcn the CVPR original.",
        Variant,
    )
    dropout: float = _option(0.0, "Dropout before the classifier (0 in the recipe).")
    # fine-tuning (engine/run.py): new weights, not --resume; optimizer, schedule and epochs start fresh
    init_from: str | None = _option(
        None,
        "CKPT to start from: an agcn checkpoint or lshiwjx/2s-AGCN, MMAction2, pyskl weights; "
        "another class count re-initialises the classifier (fc).",
    )
    freeze_epochs: int = _option(0, "Train only the classifier for the first N epochs (backbone fixed, BN too).")
    backbone_lr_mult: float = _option(1.0, "Backbone lr = lr x this; the classifier gets lr (e.g. 0.1 to fine-tune).")
    clip_len: int = _option(100, "Frames per uniformly sampled clip (UniformSampleFrames).")
    # MMAction2 trains 16 epochs of RepeatDataset(times=5): 80 passes, the same schedule
    epochs: int = _option(80, "Passes over the training set.")
    batch_size: int = _option(128, "Total batch over all processes (recipe: 16 per GPU x 8 GPUs).")
    lr: float = _option(0.1, "Learning rate for --base-batch-size.")
    base_batch_size: int = _option(128, "The batch the lr is given for.")
    auto_scale_lr: bool = _option(True, "lr x batch size / base batch size (MMAction2's --auto-scale-lr).")
    min_lr: float = _option(0.0, "Cosine annealing floor (eta_min).")
    momentum: float = _option(0.9, "SGD momentum.")
    nesterov: bool = _option(True, "Nesterov momentum.")
    weight_decay: float = _option(5e-4, "Weight decay (L2 on every parameter, as the recipe).")
    # lshiwjx/2s-AGCN's recipe (configs/2s-agcn-*.toml): step schedule, full padded window, its augmentation
    schedule: str = _option(
        "cosine",
        f"LR: {_either(SCHEDULES)}; cosine per iteration (MMAction2), step x0.1 at --lr-steps (2s-AGCN).",
        Schedule,
    )
    lr_steps: str = _option("", "Epochs where --schedule step multiplies the lr by 0.1, comma-separated, e.g. 30,40.")
    warmup_epochs: int = _option(0, "Linear lr warm-up over the first N epochs (2s-AGCN's warm_up_epoch).")
    sampling: str = _option(
        "uniform",
        f"Frames: {_either(SAMPLINGS)}; uniform clips of --clip-len, or the full padded --window (2s-AGCN).",
        Sampling,
    )
    window: int = _option(300, "Frames of the padded window of --sampling full (2s-AGCN: 300), also at test time.")
    random_choose: int = _option(0, "Train on a random run of N frames of the full window (2s-AGCN Kinetics: 150).")
    random_move: bool = _option(False, "2s-AGCN's random rotation, scale and shift of x, y per clip (Kinetics).")
    drop_last: bool = _option(False, "Drop the last incomplete training batch (2s-AGCN's loader does).")
    val_every: int = _option(5, "Validate every N epochs and after the last (5: MMAction2's points).")
    val_batch_size: int = _option(64, "Validation batch per process.")
    stop_after: int | None = _option(None, "Stop (resumably) after this many epochs, e.g. to split a run.")
    seed: int = _option(0, "Seed of model init, batch order and frame sampling.")
    deterministic: bool = _option(False, "Deterministic kernels: a resumed run matches an uninterrupted one.")
    device: str = _option("auto", f"Device: {_either(DEVICES)}; auto is cuda if available.", Device)
    precision: str = _option(
        "auto",
        f"Precision: {_either(PRECISIONS)}; auto is bf16 on CUDA and fp32 on the CPU, tf32 needs CUDA, bf16 autocast "
        "CUDA or a CPU with AMX/AVX512-BF16.",
        Precision,
    )
    compile: bool = _option(False, "torch.compile the training model: GPU steps ~1.8x faster after ~1 min.")
    workers: int = _option(0, "Batch-loading worker processes (0: gather in the main process).")
    pin_memory: bool = _option(True, "Pinned host batches (CUDA only).")
    tensorboard: bool = _option(True, "Also log to RUN_DIR/tb (needs tensorboard: the package's tb extra).")
    resume: bool = _option(False, "Continue the run in RUN_DIR from last.pt.")
    overwrite: bool = _option(False, "Replace a run already in RUN_DIR.")

    def check(self) -> None:
        self.streams  # noqa: B018 - checks the modality list
        choices = {
            "variant": VARIANTS,
            "device": DEVICES,
            "precision": PRECISIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise AgcnError(f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}")
        for name in ("clip_len", "epochs", "batch_size", "base_batch_size", "val_every", "val_batch_size"):
            if getattr(self, name) < 1:
                raise AgcnError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.epochs > MAX_EPOCHS:  # a typo, not a schedule: the run would never end
            raise AgcnError(f"epochs must be at most {MAX_EPOCHS}, got {self.epochs}")
        if self.num_classes is not None and self.num_classes < 1:
            raise AgcnError(f"num_classes must be at least 1, got {self.num_classes}")
        for name in ("lr", "min_lr", "momentum", "weight_decay", "dropout", "backbone_lr_mult"):
            if not math.isfinite(getattr(self, name)):  # NaN passes every < and > check below
                raise AgcnError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.lr <= 0 or self.min_lr < 0 or self.weight_decay < 0 or self.workers < 0 or self.seed < 0:
            raise AgcnError("lr must be positive; min_lr, weight_decay, workers and seed non-negative")
        if not 0 <= self.momentum < 1 or (self.nesterov and self.momentum == 0):  # else SGD's ValueError
            raise AgcnError(f"momentum must be in [0, 1) and positive with --nesterov, got {self.momentum}")
        if self.stop_after is not None and self.stop_after < 1:
            raise AgcnError(f"stop_after must be at least 1, got {self.stop_after}")
        if self.freeze_epochs < 0 or self.backbone_lr_mult < 0:
            raise AgcnError("freeze_epochs and backbone_lr_mult must be non-negative")
        if self.freeze_epochs and not self.init_from:
            raise AgcnError("--freeze-epochs needs --init-from CKPT: a frozen random backbone would stay random")
        self._check_recipe()
        if not self.data:
            raise AgcnError("no training data: give DATA_DIR (with train.h5) or a train split file")
        if self.resume and self.overwrite:
            raise AgcnError("--resume and --overwrite exclude each other")

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams `modality` names: one, a comma list (in the order given), or all four."""
        if self.modality == "all":
            return STREAMS
        names = tuple(s.strip() for s in str(self.modality).split(","))
        unknown = [s for s in names if s not in STREAMS]
        if unknown or len(set(names)) < len(names):
            problem = f"unknown stream {unknown[0]!r}" if unknown else "a stream named twice"
            raise AgcnError(
                f"modality {self.modality!r}: {problem}; choose one of: {', '.join(STREAMS)}, "
                "a comma list of them, or all"
            )
        return names

    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / self.base_batch_size if self.auto_scale_lr else self.lr

    def lr_milestones(self) -> tuple[int, ...]:
        """`lr_steps` as sorted epochs: "30,40" -> (30, 40); "" -> ()."""
        try:
            steps = tuple(sorted(int(s) for s in self.lr_steps.split(",") if s.strip()))
        except (AttributeError, ValueError):
            raise AgcnError(f"lr_steps must be epochs separated by commas, e.g. 30,40; got {self.lr_steps!r}") from None
        if any(s < 1 for s in steps):
            raise AgcnError(f"lr_steps must be positive epochs, got {self.lr_steps!r}")
        return steps

    def _check_recipe(self) -> None:
        """The schedule and frame-sampling options (2s-AGCN's recipe)."""
        for name, allowed in {"schedule": SCHEDULES, "sampling": SAMPLINGS}.items():
            if getattr(self, name) not in allowed:
                raise AgcnError(f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}")
        steps = self.lr_milestones()
        if self.schedule == "cosine" and steps:
            raise AgcnError("--lr-steps is for --schedule step (cosine annealing has no steps)")
        if len(set(steps)) < len(steps):
            raise AgcnError(f"lr_steps lists an epoch twice, got {self.lr_steps!r}; give each step epoch once")
        if steps and steps[-1] > self.epochs:
            raise AgcnError(
                f"lr_steps {','.join(map(str, steps))} reach beyond the run's {self.epochs} epochs; "
                "give steps up to --epochs (a step at epoch s lowers the lr after s epochs)"
            )
        if self.window < 1 or self.warmup_epochs < 0 or self.random_choose < 0:
            raise AgcnError("window must be at least 1; warmup_epochs and random_choose non-negative")
        for name in ("clip_len", "window"):
            if getattr(self, name) > MAX_FRAMES:
                raise AgcnError(
                    f"{name} {getattr(self, name)} is beyond {MAX_FRAMES} frames (2s-AGCN's window is 300): "
                    "a batch of such clips would not fit in memory"
                )
        if self.sampling != "full" and (self.random_choose or self.random_move):
            raise AgcnError("--random-choose and --random-move apply to --sampling full (2s-AGCN's window)")
        if self.random_choose > self.window:
            raise AgcnError(f"random_choose {self.random_choose} exceeds the window of {self.window} frames")


def build_config(flags: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """Defaults < the run's saved config (when resuming) < `config_file` < flags (None: not given)."""
    names = [f.name for f in fields(TrainConfig)]
    file_values = load_config_file(config_file, names) if config_file else {}
    given = {k: v for k, v in flags.items() if v is not None}
    values = {**file_values, **given}
    saved = Path(values.get("out", TrainConfig.out)) / "config.json"
    if values.get("resume") and saved.is_file():
        base = load_config_file(saved, names)
        values = {**{k: v for k, v in base.items() if k not in ("resume", "overwrite", "stop_after")}, **values}
    config = TrainConfig(**values)
    try:
        config.check()
    except AgcnError as e:  # a value the config file gave (and no flag replaced): name the file
        from_file = [k for k in file_values if k not in given and str(e).startswith((k, f"unknown {k} "))]
        if from_file:
            raise AgcnError(f"{config_file}: {e}") from None
        raise
    return config


def load_config_file(path: str | Path, allowed: list[str]) -> dict[str, Any]:
    """Config values from a .toml or .json file, each of its field's type; keys may use - or _."""
    import tomllib

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        found = "a Python file (Python configs, as MMAction2's, are not run)" if suffix == ".py" else (
            f"a {suffix} file" if suffix else "a file without a suffix")  # fmt: skip
        raise AgcnError(f"{path}: a config file is TOML (.toml) or JSON (.json), not {found}")
    try:
        text = path.read_text()
        values = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError, RecursionError) as e:  # TOMLDecodeError, JSONDecodeError: ValueErrors; nesting
        raise AgcnError(f"{path}: cannot read the config file ({' '.join(str(e).split())})") from None
    if not isinstance(values, dict):
        raise AgcnError(f"{path}: expected an object of options (key: value), found a JSON {type(values).__name__}")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    for key in RECORDS:  # a run's config.json also records facts that are not options
        values.pop(key, None)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise AgcnError(f"{path}: unknown config keys {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return {key: _typed(path, key, value) for key, value in values.items()}


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _typed(path: Path, key: str, value: Any) -> Any:
    """`value` as TrainConfig's field `key` takes it (an integer for a float field becomes a float),
    or AgcnError naming the file, the key and the type expected."""
    hint = get_type_hints(TrainConfig)[key]
    kinds = [t for t in (get_args(hint) or (hint,)) if t is not type(None)]
    if value is None and len(kinds) < len(get_args(hint) or (hint,)):  # `X | None`: JSON's null
        return None
    kind = kinds[0]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    shown = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    nullable = " (or left out)" if len(kinds) < len(get_args(hint) or (hint,)) else ""
    raise AgcnError(f"{path}: {key} must be {_TYPE_NAMES[kind]}{nullable}, got {shown}")
