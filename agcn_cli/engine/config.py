"""The training configuration: one dataclass, its checks, and how files and flags fill it."""

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import AgcnError
from ..models.agcn import VARIANTS
from ..skeleton.streams import STREAMS
from .device import DEVICES

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
            "device": DEVICES,
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
    values = load_config_file(config_file, names) if config_file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    saved = Path(values.get("out", TrainConfig.out)) / "config.json"
    if values.get("resume") and saved.is_file():
        base = load_config_file(saved, names)
        values = {**{k: v for k, v in base.items() if k not in ("resume", "overwrite", "stop_after")}, **values}
    config = TrainConfig(**values)
    config.check()
    return config


def load_config_file(path: str | Path, allowed: list[str]) -> dict[str, Any]:
    """Config values from a .toml (or .json) file; keys may use - or _."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text()
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as e:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise AgcnError(f"{path}: cannot read the config file ({e})") from None
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise AgcnError(f"{path}: unknown config keys {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return values
