"""The setting-up of `agcn train`: data, config files, run folder, resume checks, RNG, metrics, signals.

RUN_DIR holds `config.json` (the resolved TrainConfig), `metrics.jsonl` (one JSON object per
epoch), `last.pt` and `best.pt` (agcn checkpoints, see checkpoint.py) and, when tensorboard
is installed, `tb/`. Only rank 0 writes here.
"""

import json
import os
import random
import shutil
import signal
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .checkpoint import DataInfo, read_checkpoint
from .data import BatchLoader, SkeletonDataset
from .distributed import Dist
from .errors import AgcnError
from .h5io import NUM_PERSONS, atomic_output
from .model import ModelConfig

if TYPE_CHECKING:
    from .train import TrainConfig

RUN_FILES = ("config.json", "metrics.jsonl", "last.pt", "best.pt")


# ---- data and model -------------------------------------------------------------------------


def resolve_splits(config: "TrainConfig") -> tuple[Path, Path | None]:
    data = Path(config.data)
    train = data / "train.h5" if data.is_dir() else data
    if data.is_dir() and not train.is_file():
        raise AgcnError(f"{data}: no train.h5 in this folder. Run: agcn preprocess RAW_DIR {data}")
    if config.val is not None:
        return train, Path(config.val)
    test = data / "test.h5"
    return train, test if data.is_dir() and test.is_file() else None


def load_split(path: Path, config: "TrainConfig", test_mode: bool, log: Callable[[str], None]) -> SkeletonDataset:
    """The split's stream in memory; derived from joint (with a log line) when not stored."""
    ds = SkeletonDataset(
        path, config.modality, clip_len=config.clip_len, test_mode=test_mode, in_memory=True, seed=config.seed
    )
    if len(ds) == 0:
        raise AgcnError(f"{path}: the split holds no samples; check agcn preprocess's report (agcn info {path})")
    if ds.derive:
        log(
            f"{path}: no stored {config.modality!r} stream, derived from joint at load time "
            f"(agcn streams {path} would store it)"
        )
    return ds


def build_data(
    config: "TrainConfig", ctx: Dist, log: Callable[[str], None]
) -> tuple[BatchLoader, BatchLoader | None, DataInfo, ModelConfig]:
    """(train loader, validation loader or None, DataInfo, ModelConfig) from the split files."""
    train_path, val_path = resolve_splits(config)
    splits = [load_split(train_path, config, False, log)]
    if val_path is not None:
        splits.append(load_split(val_path, config, True, log))
    attrs = splits[0].attrs
    num_classes = config.num_classes or int(attrs["num_classes"])
    for ds in splits:
        if (ds.attrs["layout"], ds.attrs["channels"]) != (attrs["layout"], attrs["channels"]):
            raise AgcnError(f"{ds.path}: layout/channels differ from those of the training data {train_path}")
        if int(ds.labels.max()) >= num_classes:
            raise AgcnError(
                f"{ds.path}: label {int(ds.labels.max())} does not fit {num_classes} classes (labels must be "
                f"0..{num_classes - 1}); raise --num-classes, or drop it to use the file's num_classes"
            )
    loader = BatchLoader(
        splits[0],
        config.batch_size // ctx.world_size,
        shuffle=True,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        num_workers=config.workers,
        pin_memory=config.pin_memory,
    )
    val_loader = None
    if len(splits) > 1:
        val_loader = BatchLoader(
            splits[1], config.val_batch_size, shuffle=False, rank=ctx.rank, world_size=ctx.world_size
        )
    data = DataInfo(
        modality=config.modality,
        layout=attrs["layout"],
        recipe=attrs["recipe"],
        benchmark=attrs.get("benchmark", ""),
        channels=attrs["channels"],
        clip_len=config.clip_len,
    )
    model_config = ModelConfig(
        layout=data.layout,
        num_classes=num_classes,
        in_channels=len(splits[0].layout.channels),
        num_persons=NUM_PERSONS,
        variant=config.variant,
        dropout=config.dropout,
    )
    return loader, val_loader, data, model_config


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


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """The refusals of `prepare_run_dir` that change nothing: made before the data load, which
    takes a while on a full split, and again by `prepare_run_dir`."""
    try:
        has_last = (out / "last.pt").is_file()
        present = [name for name in RUN_FILES if (out / name).exists()]
    except OSError as e:  # e.g. a folder on the path that cannot be entered
        raise AgcnError(f"{out}: cannot read the run folder ({e.strerror or e}); choose another --out") from None
    if resume and not has_last:
        raise AgcnError(f"{out}: no last.pt to resume from; start the run without --resume")
    if present and not resume and not overwrite:
        raise AgcnError(
            f"{out}: already holds a run ({', '.join(present)}); continue it with --resume, "
            "replace it with --overwrite, or choose another --out"
        )


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check or create RUN_DIR; the checkpoint to resume from, or None for a new run."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise AgcnError(f"{out}: cannot write the run folder ({e.strerror or e}); choose another --out") from None
    check_run_dir(out, resume, overwrite)
    if resume:
        return read_checkpoint(out / "last.pt")
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "tb", ignore_errors=True)
    return None


def check_resume(
    ckpt: dict[str, Any], config: dict[str, Any], data: DataInfo, model: dict[str, Any], path: Path, free: set[str]
) -> None:
    """Refuse a checkpoint trained with another recipe, on other data or for another model, naming the fields.

    `model`: the ModelConfig as a dict; `free`: config fields that may change between the
    runs (paths, speed options).
    """
    saved = ckpt.get("train_config", {})
    diff = [
        f"{k} {v!r} (checkpoint: {saved.get(k)!r})" for k, v in config.items() if k not in free and saved.get(k) != v
    ]
    stored = ckpt.get("data", {})
    diff += [f"data {k} {v!r} (checkpoint: {stored.get(k)!r})" for k, v in asdict(data).items() if stored.get(k) != v]
    built = ckpt.get("model_config", {})  # e.g. num_classes taken from a data file with another count
    diff += [f"model {k} {v!r} (checkpoint: {built.get(k)!r})" for k, v in model.items() if built.get(k) != v]
    if diff:
        raise AgcnError(
            f"{path}: --resume with a different config: {'; '.join(diff)}. Drop those options to "
            "continue this run, or start a new one with another --out"
        )


def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain Python data (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = {
        "name": name,
        "keys": keys.tolist(),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(gauss),
    }
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():  # the devices both machines have
        for i, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, i)
    s = state["numpy"]
    np.random.set_state((s["name"], np.array(s["keys"], np.uint32), s["pos"], s["has_gauss"], s["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


class MetricsLog:
    """metrics.jsonl (one object per epoch) and, if installed, TensorBoard scalars."""

    def __init__(self, run_dir: Path, resume_epoch: int | None, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        if resume_epoch is not None and self.path.is_file():
            # keep the epochs last.pt holds: a run may stop between writing a row and last.pt
            rows = [r for r in self.path.read_text().splitlines() if r and json.loads(r)["epoch"] <= resume_epoch]
            with atomic_output(self.path) as tmp:
                tmp.write_text("".join(r + "\n" for r in rows))
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional: tensorboard is not a dependency
                return
            self.writer = SummaryWriter(str(run_dir / "tb"))

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, row["epoch"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def epoch_line(row: dict[str, Any], epochs: int, best: dict[str, Any]) -> str:
    line = (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.1f}%  "
        f"lr {row['lr']:.4g}  {row['samples_per_s']:.1f} samples/s  data-wait {row['data_wait_s']:.2f} s"
    )
    if "val_top1" in row:
        line += f"  val top1 {row['val_top1']:.1f}% top5 {row['val_top5']:.1f}%"
        line += f" (best {best['top1']:.1f}% @{best['epoch']})"
    return line + f"  {row['epoch_s']:.1f} s"


class StopSignals:
    """Within the block, SIGINT/SIGTERM set `signum` (training saves and stops after the step);
    a second signal raises KeyboardInterrupt at once. Outside the main thread: no handling."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def __enter__(self) -> "StopSignals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
