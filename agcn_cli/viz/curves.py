"""Plots of runs and scores for `agcn plot`: training curves from run folders' `metrics.jsonl`,
per-class accuracy bars from score files.

`metrics.jsonl` holds one JSON object per epoch (engine/rundir.py, engine/fit.py): `epoch`,
`train_loss`, `train_acc`, `lr`, and on validation epochs `val_top1`, `val_top5`, `val_loss`.
Accuracies are drawn in percent; `percent_scale` is the one place that knows their stored unit.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AgcnError
from .figure import PALETTE, new_figure

CURVES_PX = (1200, 800)  # the 2 x 2 panels of `plot_runs`
# engine/rundir.ACCURACY_KEYS, not imported from there: that module pulls in torch
_ACCURACY_KEYS = ("train_acc", "val_top1", "val_top5")
# (panel title, y label, [(metrics key, line style)])
PANELS = (
    ("loss", "loss", [("train_loss", "-"), ("val_loss", "--")]),
    ("train accuracy", "%", [("train_acc", "-")]),
    ("validation top-1 (solid, o), top-5 (dashed, ^)", "%", [("val_top1", "-"), ("val_top5", "--")]),
    ("learning rate", "lr", [("lr", "-")]),
)


def percent_scale(rows: list[dict[str, Any]]) -> float:
    """The factor that turns a run's stored accuracies into percent: 100 for fractions in [0, 1]
    (data_specs/outputs.md), 1 for runs begun before 2026-12-01, which wrote percent (a value
    above 1 shows it). The one place that knows the unit."""
    values = [float(r[k]) for r in rows for k in _ACCURACY_KEYS if r.get(k) is not None]
    return 1.0 if values and max(values) > 1 else 100.0


def metric_values(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Epochs and values of `key` in the rows that have it; accuracies in percent."""
    scale = percent_scale(rows) if key in _ACCURACY_KEYS else 1.0
    kept = [r for r in rows if r.get(key) is not None]
    return [int(r["epoch"]) for r in kept], [float(r[key]) * scale for r in kept]


def read_metrics(run_dir: Path, note: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """The rows of RUN_DIR/metrics.jsonl. A last line cut short (a run killed while writing it) is
    skipped with a note; any other unreadable line is an AgcnError."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not run_dir.is_dir():
        raise AgcnError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise AgcnError(f"{run_dir}: no metrics.jsonl; give a run folder of agcn train that has finished an epoch")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AgcnError(f"{path}: cannot read ({e})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
                raise ValueError
        except ValueError:
            if n == len(lines):
                note(f"{path}: skipped line {n}, cut short (the run was stopped while writing it)")
                continue
            raise AgcnError(f"{path}: line {n} is not a metrics row (a JSON object with an epoch)") from None
        rows.append(row)
    if not rows:
        raise AgcnError(f"{path}: no epoch recorded yet")
    return rows


def run_labels(run_dirs: list[Path]) -> list[str]:
    """`FOLDER (modality)` per run: FOLDER the shortest end of its path that no other run's path
    ends with (runs/a/joint and runs/b/joint: `a/joint`, `b/joint`), the modality from
    RUN_DIR/config.json when it is readable and not the folder's name."""
    paths = [Path(d).resolve().parts for d in run_dirs]
    labels = []
    for i, parts in enumerate(paths):
        others = [p for j, p in enumerate(paths) if j != i and p != parts]
        k = next((k for k in range(1, len(parts)) if all(p[-k:] != parts[-k:] for p in others)), len(parts))
        name = "/".join(parts[-k:]).lstrip("/")
        try:
            modality = json.loads((Path(run_dirs[i]) / "config.json").read_text()).get("modality", "")
        except (OSError, ValueError, AttributeError):
            modality = ""
        labels.append(f"{name} ({modality})" if modality and modality != parts[-1] else name)
    return labels


def plot_runs(run_dirs: list[Path], note: Callable[[str], None] = lambda _: None) -> Any:
    """A 2 x 2 figure of loss, train accuracy, validation top-1/top-5 and lr per epoch, the runs
    overlaid. Each line's gid is `RUN_INDEX:KEY` (its metrics key), for reading the values back."""
    from matplotlib.ticker import MaxNLocator

    runs = list(zip(run_labels(run_dirs), [read_metrics(d, note) for d in run_dirs], strict=True))
    fig = new_figure(*CURVES_PX)
    axes = [fig.add_subplot(2, 2, k + 1) for k in range(len(PANELS))]
    for (title, unit, keys), ax in zip(PANELS, axes, strict=True):
        for r, (label, rows) in enumerate(runs):
            colour = PALETTE[r % len(PALETTE)]
            for key, style in keys:
                x, y = metric_values(rows, key)
                if not x:
                    continue
                sparse = len(x) < len(rows)  # e.g. validation every few epochs: mark the points
                line_label = label if style == "-" or len(keys) == 1 else None
                marker = ("o" if style == "-" else "^") if sparse else None  # lone points: solid o, dashed ^
                (line,) = ax.plot(x, y, style, color=colour, marker=marker, ms=4, label=line_label)
                line.set_gid(f"{r}:{key}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    axes[0].set_title("loss: train (solid), validation (dashed, ^)", fontsize=10)
    epochs = [row["epoch"] for _, rows in runs for row in rows if isinstance(row.get("epoch"), int | float)]
    if epochs:  # one epoch axis for all panels, also where validation has a single point
        for ax in axes:
            ax.set_xlim(min(epochs) - 0.25, max(epochs) + 0.25)
    if any(ax.lines for ax in axes[3:]):
        axes[3].set_yscale("log")
    fig.tight_layout()
    return fig


def class_accuracy(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class top-1 accuracy in percent (NaN for a class without samples) and sample counts."""
    k = scores.shape[1]
    labels = np.asarray(labels, dtype=np.int64)
    hits = np.bincount(labels[scores.argmax(axis=1) == labels], minlength=k)[:k]
    counts = np.bincount(labels, minlength=k)[:k]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, 100 * hits / np.maximum(counts, 1), np.nan), counts


def plot_class_accuracy(score_files: list[Path]) -> Any:
    """Horizontal bars of per-class top-1 accuracy with the class names, one colour per score file."""
    from ..evaluation.metrics import class_names
    from ..io.scores import read_scores

    files = [(Path(p), read_scores(Path(p))) for p in score_files]
    k = files[0][1].num_classes
    for path, s in files[1:]:
        if s.num_classes != k:
            raise AgcnError(f"{path}: {s.num_classes} classes, but {files[0][0]} has {k}")
    first = files[0][1]
    names = class_names(k, str(first.attrs.get("benchmark", "")), first.label_names)
    height = 0.8 / len(files)
    fig = new_figure(1000, max(400, 80 + k * (14 + 8 * len(files))))
    ax = fig.add_subplot(1, 1, 1)
    for f, (path, s) in enumerate(files):
        acc, _ = class_accuracy(s.labels, s.prob)
        modality = s.attrs.get("modality", "")
        label = f"{path.name} ({modality})" if modality else path.name
        bars = ax.barh(np.arange(k) + f * height, np.nan_to_num(acc), height, color=PALETTE[f % len(PALETTE)],
                       label=f"{label}: top-1 {100 * np.mean(s.prob.argmax(1) == s.labels):.1f}%")  # fmt: skip
        for bar in bars:
            bar.set_gid(str(f))  # the score file's index, for reading the values back
    ax.set_yticks(np.arange(k) + height * (len(files) - 1) / 2)
    ax.set_yticklabels([f"{i} {n}" if n != f"class {i}" else n for i, n in enumerate(names)], fontsize=7)
    ax.invert_yaxis()  # class 0 on top
    ax.set_xlim(0, 100)
    ax.set_xlabel("top-1 accuracy per class (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
