"""The run folder of `agcn train`: its checks, the resume checks, the metrics log and the epoch line.

RUN_DIR holds `config.json` (the resolved TrainConfig; a fine-tuning run adds `init_source`, the
record of `--init-from`'s file, see engine/fit.py), `metrics.jsonl` (one JSON object per epoch),
`last.pt` and `best.pt` (agcn checkpoints, see io/checkpoint.py) and, when tensorboard is
installed, `tb/`. Only rank 0 writes here.
"""

import json
import os
import shutil
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

from ..errors import AgcnError
from ..io.atomic import atomic_output
from ..io.checkpoint import DataInfo, read_checkpoint
from ..models.agcn import ModelConfig
from ..skeleton.layouts import resolve_layout
from .config import TrainConfig

RUN_FILES = ("config.json", "metrics.jsonl", "last.pt", "best.pt")


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
    # A key missing from the checkpoint is a field added since that run began: the run had its default.
    saved = {**_defaults(TrainConfig), **ckpt.get("train_config", {})}
    diff = [
        f"{k} {v!r} (checkpoint: {saved.get(k)!r})" for k, v in config.items() if k not in free and saved.get(k) != v
    ]
    stored = {**_defaults(DataInfo), **_builtin_spec(ckpt.get("data", {}))}
    diff += [f"data {k} {v!r} (checkpoint: {stored.get(k)!r})" for k, v in asdict(data).items() if stored.get(k) != v]
    # e.g. num_classes taken from a data file with another count
    built = {**_defaults(ModelConfig), **_builtin_spec(ckpt.get("model_config", {}))}
    diff += [f"model {k} {v!r} (checkpoint: {built.get(k)!r})" for k, v in model.items() if built.get(k) != v]
    if diff:
        raise AgcnError(
            f"{path}: --resume with a different config: {'; '.join(diff)}. Drop those options to "
            "continue this run, or start a new one with another --out"
        )


def _defaults(cls) -> dict[str, Any]:
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def _builtin_spec(values: dict[str, Any]) -> dict[str, Any]:
    """Checkpoints written before layouts were stored name a built-in layout: fill in its spec."""
    if values.get("layout_spec") or "layout" not in values:
        return values
    return {**values, "layout_spec": resolve_layout(str(values["layout"])).spec()}


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

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def epoch_line(row: dict[str, Any], epochs: int, best: dict[str, Any]) -> str:
    line = (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.1f}%  "
        f"lr {row['lr']:.4g}  {row['samples_per_s']:.1f} samples/s  data-wait {row['data_wait_s']:.2f} s"
    )
    if "val_top1" in row:
        line += f"  val top1 {row['val_top1']:.1f}% top5 {row['val_top5']:.1f}%"
        line += f" (best {best['top1']:.1f}% @{best['epoch']})"
    return line + f"  {row['epoch_s']:.1f} s"
