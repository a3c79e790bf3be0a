"""Accuracy metrics as MMAction2 defines them, the per-class table, confusion files, class names.

Top-k and mean class accuracy follow MMAction2's `mmaction/evaluation/functional/accuracy.py`
(`top_k_accuracy`, `mean_class_accuracy`), which its `AccMetric` applies to the clip-averaged
probabilities: top-k takes the k last columns of an ascending `np.argsort` (so exact ties rank
as numpy's sort leaves them), and mean class accuracy averages the per-class top-1 accuracy over
every class that occurs as a label *or* as a prediction, a predicted class without samples
counting as 0.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AgcnError
from ..io.atomic import atomic_output
from ..sources.ntu import benchmark_family
from ..specs import spec_path

NTU_CLASSES_FILE = "ntu120_classes.txt"  # A001..A120, one name per line; NTU60 is the first 60
TOP_K = 5


# ---- class names ------------------------------------------------------------------------------


@cache
def ntu_class_names() -> tuple[str, ...]:
    """The 120 NTU RGB+D 120 action names, A001 first (NTU60 is the first 60)."""
    names = tuple(s.strip() for s in spec_path(NTU_CLASSES_FILE).read_text().splitlines() if s.strip())
    if len(names) != 120:
        raise AgcnError(f"{spec_path(NTU_CLASSES_FILE)}: expected 120 class names, found {len(names)}")
    return names


def class_names(num_classes: int, benchmark: str = "", label_names: Sequence[str] = ()) -> list[str]:
    """Names for labels 0..num_classes-1: `label_names` (a --label-map) when given, NTU's for NTU
    data, else `class N` (N the label); labels beyond a shorter label map are `class N`."""
    if label_names:
        names = [str(n) for n in label_names][:num_classes]
        return names + [f"class {i}" for i in range(len(names), num_classes)]
    if benchmark_family(benchmark, num_classes) == "ntu" and num_classes <= 120:
        return list(ntu_class_names()[:num_classes])
    return [f"class {i}" for i in range(num_classes)]


# ---- metrics ----------------------------------------------------------------------------------


@dataclass
class ClassResult:
    label: int  # 0-based class
    name: str
    samples: int  # test samples of this class
    correct: int  # of them, predicted right (top-1)
    accuracy: float  # correct / samples
    confused_with: int | None  # the most frequent wrong prediction, None when there is none
    confused_count: int  # how often


@dataclass
class Metrics:
    samples: int
    top1: float
    top5: float  # top-k with k = min(5, num_classes)
    mean_class: float  # MMAction2's mean class accuracy (module docstring)
    per_class: list[ClassResult]  # classes with test samples, worst first
    confusion: np.ndarray  # (num_classes, num_classes) counts: row = true class, column = prediction

    def summary(self) -> dict[str, Any]:
        """JSON-friendly: the three accuracies, the sample count and the per-class table."""
        return {
            "samples": self.samples,
            "top1": self.top1,
            "top5": self.top5,
            "mean_class_accuracy": self.mean_class,
            "per_class": [asdict(c) for c in self.per_class],
        }


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of samples whose label is among the last k columns of an ascending argsort (MMAction2)."""
    if len(labels) == 0:
        return float("nan")
    labels = np.asarray(labels)
    if k == 1:  # the same result without sorting every row: only rows with a tied maximum need argsort
        pred = scores.argmax(axis=1)
        tied = (scores == scores.max(axis=1, keepdims=True)).sum(axis=1) > 1
        if tied.any():
            pred[tied] = np.argsort(scores[tied], axis=1)[:, -1]
        return float((pred == labels).mean())
    best = np.argsort(scores, axis=1)[:, -k:]  # (N, min(k, num_classes)); k > num_classes takes all
    return float((best == labels[:, None]).any(axis=1).mean())


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, row = true class, column = predicted class."""
    flat = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(pred, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def mean_class_accuracy(confusion: np.ndarray) -> float:
    """MMAction2's mean class accuracy from a confusion matrix of arg-max predictions: the mean of
    hits / samples over the classes that occur as a label or a prediction (0 for one without samples)."""
    samples, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    seen = (samples > 0) | (predicted > 0)
    if not seen.any():
        return float("nan")
    hits = np.diag(confusion)[seen]
    return float(np.mean(np.divide(hits, samples[seen], out=np.zeros(hits.shape), where=samples[seen] > 0)))


def compute_metrics(scores: np.ndarray, labels: np.ndarray, names: list[str] | None = None) -> Metrics:
    """Top-1, top-5, mean class accuracy and the per-class table of `scores` (N, num_classes).

    The three accuracies are MMAction2's (module docstring); the per-class table and the
    confusion matrix use the arg-max prediction, as its mean class accuracy does.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n, k = scores.shape
    names = names or [f"class {i}" for i in range(k)]
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise AgcnError(f"labels range {labels.min()}..{labels.max()} does not fit {k} classes")
    cm = confusion_matrix(scores.argmax(axis=1), labels, k)
    rows = []
    for c in np.flatnonzero(cm.sum(axis=1)):
        wrong = cm[c].copy()
        wrong[c] = 0
        other = int(wrong.argmax())
        total = int(cm[c].sum())
        rows.append(ClassResult(int(c), names[c], total, int(cm[c, c]), float(cm[c, c] / total),
                                other if wrong[other] else None, int(wrong[other])))  # fmt: skip
    rows.sort(key=lambda r: (r.accuracy, -r.samples, r.label))
    return Metrics(
        samples=n,
        top1=top_k_accuracy(scores, labels, 1),
        top5=top_k_accuracy(scores, labels, TOP_K),
        mean_class=mean_class_accuracy(cm),
        per_class=rows,
        confusion=cm,
    )


def write_confusion_csv(path: Path, confusion: np.ndarray, names: list[str]) -> None:
    """The confusion matrix as CSV: one row per true class (label, name, counts per predicted class)."""
    import csv

    k = confusion.shape[0]
    with atomic_output(Path(path)) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["true_label", "true_name", *[f"pred_{j}" for j in range(k)]])
            for i in range(k):
                w.writerow([i, names[i], *confusion[i].tolist()])


def write_confusion_png(path: Path, confusion: np.ndarray, names: list[str]) -> bool:
    """A row-normalised confusion image; False (nothing written) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    totals = confusion.sum(axis=1, keepdims=True)
    rate = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    k = confusion.shape[0]
    size = max(6.0, k * 0.18)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(k)
    ax.set_xticks(ticks, [str(i) for i in ticks], fontsize=6)
    ax.set_yticks(ticks, [f"{names[i]} ({i})" for i in ticks], fontsize=6)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.tight_layout()
    with atomic_output(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return True
