"""The run folder of `agcn train`: its checks, the resume checks, the logs and the epoch line.

RUN_DIR holds `config.json` (the resolved TrainConfig, plus records that are not options:
`environment` and `resumes`, see engine/record.py, and for a fine-tuning run `init_source`, the
record of `--init-from`'s file, see engine/run.py), `metrics.jsonl` (one JSON object per epoch;
keys and units in data_specs/outputs.md), `train.log` (the lines the terminal showed, without
progress bars; a resumed run appends to it), `last.pt` and `best.pt` (agcn checkpoints, see
io/checkpoint.py) and, when tensorboard is installed, `tb/`. Only rank 0 writes here.

Rank 0 holds RUN_DIR's lock (`.NAME.lock` beside it, io/atomic.locked) for the whole run, so a
second `agcn train` into it is refused at once. `--overwrite` moves the old run into
`RUN_DIR/.replaced-run/` and deletes it only when the new run writes its first `last.pt`; a new
run that ends (or is killed) before that gets the old run back (`hold_run_dir`).

Several streams trained together share one RUN_DIR: its config.json (the shared config) and a run
folder as above per stream, RUN_DIR/STREAM (`stream_config`); RUN_DIR has a lock of its own and
refuses to hold a single-stream run's files beside them (`hold_streams_dir`).

Accuracies are fractions in [0, 1] in every file (data_specs/outputs.md); only the lines for
people show percent.
"""

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path
from typing import Any, TextIO

from ..errors import AgcnError
from ..io.atomic import atomic_output, locked
from ..io.checkpoint import DataInfo, read_checkpoint
from ..models.agcn import ModelConfig
from ..skeleton.layouts import resolve_layout
from ..skeleton.streams import STREAMS
from .config import TrainConfig

RUN_FILES = ("config.json", "metrics.jsonl", "last.pt", "best.pt")
TRAIN_LOG = "train.log"  # not in RUN_FILES: a log alone (a run that failed at once) is no run to refuse
REPLACED = ".replaced-run"  # inside RUN_DIR: the run --overwrite replaces, until the new one has a last.pt
# accuracy keys of a metrics row; runs begun before 2026-12-01 wrote them in percent
ACCURACY_KEYS = ("train_acc", "val_top1", "val_top5")


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """The refusals of `prepare_run_dir` that change nothing: made before the data load, which
    takes a while on a full split, and again by `prepare_run_dir`."""
    try:
        has_last = (out / "last.pt").is_file()
        present = [name for name in RUN_FILES if (out / name).exists()]
        if present and _saved_nothing(out):  # a run that failed before its first checkpoint: replaced
            present = []
    except OSError as e:  # e.g. a folder on the path that cannot be entered
        raise AgcnError(f"{out}: cannot read the run folder ({e.strerror or e}); choose another --out") from None
    if resume and not has_last:
        raise AgcnError(f"{out}: no last.pt to resume from; start the run without --resume")
    if present and not resume and not overwrite:
        raise AgcnError(
            f"{out}: already holds a run ({', '.join(present)}); continue it with --resume, "
            "replace it with --overwrite, or choose another --out"
        )


def _saved_nothing(out: Path) -> bool:
    """RUN_DIR holds a run that ended before its first checkpoint (a failed start): config.json and
    train.log, perhaps an empty metrics.jsonl, no last.pt or best.pt. Nothing there can be resumed
    or lost, so a new run takes the folder (moving those files aside as --overwrite does)."""
    if (out / "last.pt").exists() or (out / "best.pt").exists():
        return False
    metrics = out / "metrics.jsonl"
    return not metrics.exists() or (metrics.is_file() and not metrics.read_text(errors="replace").strip())


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
    _move_aside(out)
    return None


@contextmanager
def hold_run_dir(out: Path) -> Iterator[None]:
    """RUN_DIR for one run (rank 0, from before `check_run_dir` to the end): its lock, held
    throughout, refused at once when another `agcn train` holds it; the run a --overwrite moved
    aside is restored if this run (or one killed before it) wrote no last.pt, else deleted."""
    try:
        out.resolve().parent.mkdir(parents=True, exist_ok=True)  # the lock file lies beside RUN_DIR
    except OSError as e:
        raise AgcnError(f"{out}: cannot write the run folder ({e.strerror or e}); choose another --out") from None
    with locked(out, wait=False, holder="agcn train", hint="wait for it to end, or choose another --out"):
        _settle_replaced(out)  # a run killed before its first last.pt gave the old run back too
        try:
            yield
        finally:
            _settle_replaced(out)


def stream_config(config: TrainConfig, stream: str) -> TrainConfig:
    """The single-stream run of `stream` inside a multi-stream RUN_DIR: RUN_DIR/STREAM. Resuming, a
    stream that has no last.pt yet (killed before its first epoch ended) starts afresh, replacing
    what it had begun."""
    out = Path(config.out) / stream
    begun = (out / "last.pt").is_file()
    resume = config.resume and begun
    overwrite = config.overwrite or (config.resume and not begun)
    return replace(config, modality=stream, out=str(out), resume=resume, overwrite=overwrite)


def hold_streams_dir(parent: Path) -> AbstractContextManager[None]:
    """A multi-stream RUN_DIR's lock (`hold_run_dir`); refused when RUN_DIR holds a single-stream run
    (its files would mix with the streams')."""
    single = [name for name in RUN_FILES if name != "config.json" and (parent / name).exists()]
    try:
        saved = json.loads((parent / "config.json").read_text()) if (parent / "config.json").is_file() else {}
    except (OSError, ValueError):
        saved = {"modality": "?"}
    if single or (isinstance(saved, dict) and saved.get("modality", "all") in STREAMS + ("?",)):
        raise AgcnError(
            f"{parent}: holds a single-stream run ({', '.join(single) or 'config.json'}); "
            "give the streams another --out"
        )
    return hold_run_dir(parent)


def drop_replaced(out: Path) -> None:
    """Delete the run --overwrite moved aside: call once this run's last.pt is written."""
    if (out / REPLACED).exists():
        shutil.rmtree(out / REPLACED, ignore_errors=True)


def _run_entries(out: Path) -> list[str]:
    return [name for name in (*RUN_FILES, TRAIN_LOG, "tb") if (out / name).exists()]


def _move_aside(out: Path) -> None:
    """--overwrite: move the run in RUN_DIR into RUN_DIR/.replaced-run (renames, nothing copied)."""
    entries = _run_entries(out)
    if not entries:
        return
    backup = out / REPLACED
    if backup.exists():  # one `_settle_replaced` could not put back
        raise AgcnError(f"{backup}: holds an earlier run that could not be put back; move it out of {out}")
    try:
        backup.mkdir()
        for name in entries:
            os.replace(out / name, backup / name)
    except OSError as e:
        _put_back(out)  # what was moved so far
        raise AgcnError(f"{out}: cannot move the old run aside ({e.strerror or e}); choose another --out") from None


def _settle_replaced(out: Path) -> None:
    """A run moved aside by --overwrite: deleted when the new run has a last.pt, else put back."""
    backup = out / REPLACED
    if not backup.is_dir():
        return
    if (out / "last.pt").is_file():
        drop_replaced(out)
        return
    _put_back(out)


def _put_back(out: Path) -> None:
    """Move the files in RUN_DIR/.replaced-run back over the new run's. Only renames: a failure
    halfway leaves each old file in one of the two places, and the next run goes on from there."""
    backup = out / REPLACED
    try:
        for entry in backup.iterdir():
            if (out / entry.name).is_dir():  # tb/: a rename does not replace a folder that holds files
                shutil.rmtree(out / entry.name)
            os.replace(entry, out / entry.name)
        backup.rmdir()
    except OSError:  # left as it is: the next run in RUN_DIR tries again
        pass


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
    """metrics.jsonl (one object per epoch) and, if installed, TensorBoard scalars.

    `percent`: a resumed run whose rows so far hold percent (begun before accuracies became
    fractions); they are rewritten as fractions, so one file keeps one unit. `log` gets the note
    that tensorboard is missing when `tensorboard` asks for it.
    """

    def __init__(
        self,
        run_dir: Path,
        resume_epoch: int | None,
        tensorboard: bool,
        percent: bool = False,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.path = run_dir / "metrics.jsonl"
        if resume_epoch is not None and self.path.is_file():
            # keep the epochs last.pt holds: a run may stop between writing a row and last.pt
            rows = [_as_fractions(r) if percent else r for r in _rows(self.path) if r["epoch"] <= resume_epoch]
            with atomic_output(self.path) as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional: tensorboard is not a dependency
                log(f"note: tensorboard is not installed, so no {run_dir / 'tb'} is written; "
                    "pip install 'agcn[tb]' for it, or pass --no-tensorboard")  # fmt: skip
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


def _rows(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's rows; a torn last line (a run killed while writing it) is left out."""
    lines = [r for r in path.read_text().splitlines() if r.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i < len(lines) - 1:
                raise AgcnError(f"{path}: line {i + 1} is not JSON; move the file away to resume") from None
    return rows


def _as_fractions(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v / 100 if k in ACCURACY_KEYS else v for k, v in row.items()}


def epoch_line(row: dict[str, Any], epochs: int, best: dict[str, Any]) -> str:
    """The line after each epoch; accuracies (fractions in `row`) shown in percent."""
    line = (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  acc {100 * row['train_acc']:.1f}%  "
        f"lr {row['lr']:.4g}  {row['samples_per_s']:.1f} samples/s  data-wait {row['data_wait_s']:.2f} s"
    )
    if "val_top1" in row:
        line += f"  val top1 {100 * row['val_top1']:.1f}% top5 {100 * row['val_top5']:.1f}%"
        line += f" (best {100 * best['top1']:.1f}% @{best['epoch']})"
    return line + f"  {row['epoch_s']:.1f} s"


def summary_line(summary: dict[str, Any]) -> str:
    """The last line of a run (`fit`'s summary): what `agcn train` prints on stdout and train.log ends with."""
    if summary["best_epoch"]:
        return (
            f"{summary['run_dir']}: {summary['epoch']} epochs, best val top-1 {100 * summary['best_top1']:.2f}% "
            f"at epoch {summary['best_epoch']} (best.pt, last.pt)"
        )
    return f"{summary['run_dir']}: {summary['epoch']} epochs (last.pt)"


class RunLog:
    """RUN_DIR/train.log: each line goes to `log` (the terminal) and to the file, flushed at once,
    so a killed run keeps what it printed. Lines logged before the run folder is ready (the data
    notes) wait in memory until `open`; a resumed run appends. `log=None`: a rank that is not
    rank 0, which prints and writes nothing."""

    def __init__(self, log: Callable[[str], None] | None) -> None:
        self.log = log
        self.pending: list[str] = []
        self.file: TextIO | None = None

    def __call__(self, line: str) -> None:
        if self.log is not None:
            self.log(line)
            self.record(line)

    def record(self, line: str) -> None:
        """Write `line` to train.log only (e.g. the summary and error lines the command line prints)."""
        if self.log is None:
            return
        if self.file is None:
            self.pending.append(line)
            return
        self.file.write(line + "\n")
        self.file.flush()

    def open(self, run_dir: Path) -> None:
        """Start writing RUN_DIR/train.log (after `prepare_run_dir`, which moves a replaced run's aside)."""
        if self.log is None or self.file is not None:
            return
        self.file = open(run_dir / TRAIN_LOG, "a", encoding="utf-8")
        pending, self.pending = self.pending, []
        for line in pending:
            self.record(line)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
