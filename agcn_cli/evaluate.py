"""`agcn eval`: multi-clip testing of a checkpoint on a split file, metrics, score files.

Testing follows MMAction2's skeleton recipe: each sample gives `clips` clips drawn by
`UniformSampleFrames` in test mode (fixed seed 255 per sample, `sampling.py`); all clips of a
batch of samples go through the model together, `(N, K, C, T, V, M) -> (N*K, C, T, V, M)`, and
the class probabilities are the mean over clips of the softmax (GCNHead's
`average_clips="prob"`). The mean over clips of the logits is kept as well, for fusing logits.

Score files (`data_specs/scores.md`) hold both, keyed by sample name; `write_mmaction_dump`
writes the pickled list that MMAction2 1.x's `tools/test.py --dump` writes.
"""

import json
import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn as nn

from . import __version__
from .checkpoint import DataInfo, is_agcn_checkpoint, load_model
from .data import NUM_PERSONS, BatchLoader, SkeletonDataset
from .errors import AgcnError
from .h5io import atomic_output, check_split_file
from .layouts import get_layout
from .model import ModelConfig
from .specs import spec_path
from .streams import STREAMS

SCORES_FORMAT = "agcn-scores"
SCORES_VERSION = 1
SCORE_KINDS = ("prob", "logit")
DEVICES = ("auto", "cpu", "cuda")
NTU_CLASSES_FILE = "ntu120_classes.txt"  # A001..A120, one name per line; NTU60 is the first 60
TOP_K = 5

Note = Callable[[str], None]


# ---- scores -----------------------------------------------------------------------------------


@dataclass
class Scores:
    """Per-sample scores of one stream (or of a fusion), in sample order.

    `prob` and `logit` are (N, num_classes) float32: the clip-averaged softmax and logits.
    `labels` (N,) int64 are 0-based classes. `attrs` are the file's attributes (scores.md).
    """

    names: list[str]
    labels: np.ndarray
    prob: np.ndarray
    logit: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_classes(self) -> int:
        return int(self.prob.shape[1])

    def kind(self, kind: str) -> np.ndarray:
        """The `prob` or `logit` scores."""
        if kind not in SCORE_KINDS:
            raise AgcnError(f"unknown score kind {kind!r}; choose one of: {', '.join(SCORE_KINDS)}")
        return self.prob if kind == "prob" else self.logit


def write_scores(path: Path, scores: Scores) -> None:
    """Write a score file atomically (data_specs/scores.md)."""
    path = Path(path)
    n, k = scores.prob.shape
    if scores.logit.shape != (n, k) or len(scores.names) != n or len(scores.labels) != n:
        raise AgcnError(f"{path}: scores of inconsistent shapes, not written")
    attrs = {**_h5_attrs(scores.attrs), "format": SCORES_FORMAT, "schema_version": SCORES_VERSION,
             "created_by": f"agcn {__version__}", "num_classes": k, "num_samples": n}  # fmt: skip
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                f.attrs[key] = value
            f.create_dataset("name", data=list(scores.names), dtype=h5py.string_dtype())
            f.create_dataset("label", data=np.asarray(scores.labels, dtype=np.int32))
            f.create_dataset("prob", data=np.asarray(scores.prob, dtype=np.float32))
            f.create_dataset("logit", data=np.asarray(scores.logit, dtype=np.float32))


def read_scores(path: Path) -> Scores:
    """A score file, validated; AgcnError naming the file otherwise."""
    path = Path(path)
    hint = f"Make one with: agcn eval CHECKPOINT TEST.h5 --out {path.name}"
    if path.suffix in (".pkl", ".pickle"):
        hint = "MMAction2 dumps hold no sample names to align by; fuse agcn score files (agcn eval --out FILE.h5)"
    if not path.is_file():
        raise AgcnError(f"{path}: no such score file. {hint}")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            if attrs.get("format") != SCORES_FORMAT:
                raise AgcnError(f"{path}: not an agcn score file (format attribute {attrs.get('format')!r}). {hint}")
            if attrs.get("schema_version") != SCORES_VERSION:
                raise AgcnError(
                    f"{path}: score schema version {attrs.get('schema_version')} is not supported "
                    f"(expected {SCORES_VERSION}). {hint}"
                )
            missing = [d for d in ("name", "label", "prob", "logit") if d not in f]
            if missing:
                raise AgcnError(f"{path}: incomplete score file, missing {', '.join(missing)}. {hint}")
            names = list(f["name"].asstr()[:])
            labels = f["label"][:].astype(np.int64)
            prob = f["prob"][:].astype(np.float32)
            logit = f["logit"][:].astype(np.float32)
    except OSError as e:
        raise AgcnError(f"{path}: not a readable HDF5 score file ({e}). {hint}") from None
    n = len(names)
    if labels.shape != (n,) or prob.ndim != 2 or prob.shape[0] != n or logit.shape != prob.shape:
        raise AgcnError(
            f"{path}: score file datasets disagree: {n} names, label {labels.shape}, prob {prob.shape}, "
            f"logit {logit.shape}. {hint}"
        )
    if "sources" in attrs and isinstance(attrs["sources"], str):
        attrs["sources"] = json.loads(attrs["sources"] or "[]")
    if "weights" in attrs:
        attrs["weights"] = [float(w) for w in np.atleast_1d(attrs["weights"])]
    return Scores(names, labels, prob, logit, attrs)


def _h5_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as HDF5 stores them: lists of paths as JSON text, weights as a float array."""
    out = dict(attrs)
    if "sources" in out:
        out["sources"] = json.dumps([str(s) for s in out["sources"]])
    if "weights" in out:
        out["weights"] = np.asarray(out["weights"], dtype=np.float64)
    return out


def write_mmaction_dump(path: Path, scores: Scores) -> None:
    """MMAction2 1.x's `tools/test.py --dump` format: a pickled list, one dict per sample.

    Each dict holds `pred_score` (float32 tensor (num_classes,), the clip-averaged softmax),
    `pred_label` and `gt_label` (int64 tensors of shape (1,)), `num_classes`, and the sample
    name as `frame_dir` (the key MMAction2's PoseDataset uses). Unpickling needs torch.
    """
    pred = scores.prob.argmax(axis=1)
    records = [
        {
            "pred_score": torch.from_numpy(np.array(scores.prob[i], dtype=np.float32)),
            "pred_label": torch.tensor([int(pred[i])], dtype=torch.int64),
            "gt_label": torch.tensor([int(scores.labels[i])], dtype=torch.int64),
            "num_classes": scores.num_classes,
            "frame_dir": name,
        }
        for i, name in enumerate(scores.names)
    ]
    with atomic_output(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(records, f, protocol=pickle.HIGHEST_PROTOCOL)


# ---- class names ------------------------------------------------------------------------------


@cache
def ntu_class_names() -> tuple[str, ...]:
    """The 120 NTU RGB+D 120 action names, A001 first (NTU60 is the first 60)."""
    names = tuple(s.strip() for s in spec_path(NTU_CLASSES_FILE).read_text().splitlines() if s.strip())
    if len(names) != 120:
        raise AgcnError(f"{spec_path(NTU_CLASSES_FILE)}: expected 120 class names, found {len(names)}")
    return names


def class_names(num_classes: int, benchmark: str = "") -> list[str]:
    """Names for labels 0..num_classes-1: NTU's for NTU data, else `class N` (N the label)."""
    ntu = benchmark.startswith("ntu") or (not benchmark and num_classes in (60, 120))
    if ntu and num_classes <= 120:
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
    mean_class: float  # mean over the classes present of their top-1 accuracy
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
    """Share of samples whose label is among the k best scores (ties: the lower class first)."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (N, k)
    return float((best == np.asarray(labels)[:, None]).any(axis=1).mean())


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, row = true class, column = predicted class."""
    flat = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(pred, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def compute_metrics(scores: np.ndarray, labels: np.ndarray, names: list[str] | None = None) -> Metrics:
    """Top-1, top-5, mean class accuracy and the per-class table of `scores` (N, num_classes).

    Mean class accuracy averages the classes that have test samples. MMAction2's function
    also counts a class that is predicted but absent from the labels, as 0; on a full NTU test
    split every class is present and the two agree.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n, k = scores.shape
    names = names or [f"class {i}" for i in range(k)]
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise AgcnError(f"labels range {labels.min()}..{labels.max()} does not fit {k} classes")
    pred = scores.argmax(axis=1)
    cm = confusion_matrix(pred, labels, k)
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
        top1=float((pred == labels).mean()) if n else float("nan"),
        top5=top_k_accuracy(scores, labels, TOP_K),
        mean_class=float(np.mean([r.accuracy for r in rows])) if rows else float("nan"),
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


# ---- multi-clip scoring -----------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when available), `cpu` or `cuda`."""
    if name not in DEVICES:
        raise AgcnError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AgcnError("--device cuda: no CUDA device is available here; use --device cpu")
    return torch.device(name)


@torch.no_grad()
def clip_scores(model: nn.Module, clips: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip-averaged softmax and logits, each (N, num_classes) float32.

    `clips` is (N, K, C, T, V, M): all N*K clips go through the model in one batch.
    """
    N, K = clips.shape[:2]
    with torch.autocast(clips.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(clips.reshape(N * K, *clips.shape[2:]))  # (N*K, num_classes)
    logits = logits.float().view(N, K, -1)  # (N, K, num_classes)
    return logits.softmax(dim=-1).mean(dim=1), logits.mean(dim=1)


def score_dataset(
    model: nn.Module,
    dataset: SkeletonDataset,
    *,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(prob, logit), each (N, num_classes) float32, for every sample of an in-memory test-mode dataset."""
    if not dataset.test_mode:
        raise AgcnError("scoring needs a test-mode dataset: SkeletonDataset(..., test_mode=True)")
    device = torch.device(device)
    model = model.eval().to(device)
    probs: np.ndarray | None = None
    logits: np.ndarray | None = None
    for x, _, idx in BatchLoader(dataset, batch_size, shuffle=False):
        if x.ndim == 5:  # one clip: the loader gives (N, C, T, V, M)
            x = x[:, None]  # (N, 1, C, T, V, M)
        p, lg = clip_scores(model, x.to(device, non_blocking=True), bf16=bf16)
        if probs is None or logits is None:
            probs = np.empty((len(dataset), p.shape[1]), np.float32)
            logits = np.empty_like(probs)
        probs[idx.numpy()] = p.cpu().numpy()
        logits[idx.numpy()] = lg.cpu().numpy()
        if progress:
            progress(len(idx))
    if probs is None or logits is None:
        raise AgcnError(f"{dataset.path}: no samples to score")
    return probs, logits


# ---- agcn eval --------------------------------------------------------------------------------


def foreign_facts(
    *,
    num_classes: int | None = None,
    layout: str | None = None,
    modality: str | None = None,
    in_channels: int | None = None,
    recipe: str | None = None,
    clip_len: int | None = None,
    defaults: dict[str, Any] | None = None,
) -> tuple[ModelConfig, DataInfo] | tuple[None, None]:
    """ModelConfig + DataInfo for weights without agcn metadata, from the facts given.

    None when no fact is given (the checkpoint must then describe itself). Facts left out
    come from `defaults` (a split file's attributes: num_classes, layout, recipe,
    benchmark), else layout ntu25, modality joint, the layout's channel count.
    """
    if all(v is None for v in (num_classes, layout, modality, in_channels)):
        return None, None
    defaults = defaults or {}
    layout = layout or defaults.get("layout") or "ntu25"
    lay = get_layout(layout)
    modality = modality or "joint"
    if modality not in STREAMS:
        raise AgcnError(f"--modality: unknown stream {modality!r}; choose one of: {', '.join(STREAMS)}")
    num_classes = num_classes or defaults.get("num_classes")
    if num_classes is None:
        raise AgcnError("weights without agcn metadata need --num-classes (the classifier size, e.g. 60 or 120)")
    in_channels = in_channels or len(lay.channels)
    config = ModelConfig(layout=layout, num_classes=int(num_classes), in_channels=in_channels, num_persons=NUM_PERSONS)
    config.check()
    data = DataInfo(
        modality=modality,
        layout=layout,
        recipe=recipe or defaults.get("recipe") or DataInfo.recipe,
        benchmark=str(defaults.get("benchmark", "")),
        channels=",".join(lay.channels),
        clip_len=clip_len or DataInfo.clip_len,
    )
    return config, data


def check_test_file(path: Path, attrs: dict[str, Any], config: ModelConfig, data: DataInfo) -> list[str]:
    """Refuse a split file the model cannot score; return notes on what is unusual but fine."""
    path = Path(path)
    if attrs["layout"] != config.layout:
        raise AgcnError(
            f"{path}: skeleton layout {attrs['layout']!r}, but the checkpoint's model is for {config.layout!r}; "
            f"evaluate on data preprocessed for {config.layout}"
        )
    channels = str(attrs.get("channels", ",".join(get_layout(attrs["layout"]).channels)))
    if len(channels.split(",")) != config.in_channels or (data.channels and channels != data.channels):
        raise AgcnError(
            f"{path}: channels {channels!r}, but the checkpoint was trained on {data.channels!r} "
            f"({config.in_channels} channels)"
        )
    if data.modality not in STREAMS:
        raise AgcnError(f"checkpoint stream {data.modality!r} is unknown; expected one of: {', '.join(STREAMS)}")
    if config.num_persons != NUM_PERSONS:
        raise AgcnError(f"the checkpoint's model takes {config.num_persons} persons; agcn data has {NUM_PERSONS}")
    with h5py.File(path, "r") as f:
        labels = f["label"][:]
        stored = data.modality in f
    if len(labels) == 0:
        raise AgcnError(f"{path}: no samples to evaluate")
    if labels.min() < 0 or labels.max() >= config.num_classes:
        raise AgcnError(
            f"{path}: labels reach class {int(labels.max())} (action A{int(labels.max()) + 1:03d}), but the model has "
            f"{config.num_classes} classes; evaluate with a checkpoint trained for {attrs['num_classes']} classes"
        )
    notes = []
    if not attrs["normalized"]:
        notes.append(
            f"{path.name} holds joints not yet pre-normalised; normalising them (and deriving streams) on load"
        )
    elif not stored:
        notes.append(f"{path.name}: stream {data.modality!r} is not stored in the file; deriving it from the joints")
    if data.recipe and attrs.get("recipe") and attrs["recipe"] != data.recipe:
        notes.append(
            f"{path.name} was preprocessed with recipe {attrs['recipe']!r}, the checkpoint was trained on "
            f"{data.recipe!r} data: accuracy will suffer (agcn preprocess --recipe {data.recipe})"
        )
    if data.benchmark and attrs.get("benchmark") and attrs["benchmark"] != data.benchmark:
        notes.append(f"{path.name} belongs to {attrs['benchmark']}, the checkpoint was trained on {data.benchmark}")
    if attrs.get("split") == "train":
        notes.append(f"{path.name} is a training split: these numbers do not measure generalisation")
    return notes


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: Path  # an agcn checkpoint, or foreign weights with foreign_config/foreign_data
    test_file: Path  # a split file written by agcn preprocess
    clips: int = 10  # test clips per sample (MMAction2: 10)
    clip_len: int | None = None  # frames per clip; None: the checkpoint's training clip length
    batch_size: int = 16  # samples per forward pass, each with `clips` clips
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = False  # bfloat16 autocast on CUDA
    foreign_config: ModelConfig | None = None  # for weights without agcn metadata (see foreign_facts)
    foreign_data: DataInfo | None = None


@dataclass
class EvalResult:
    scores: Scores
    metrics: Metrics
    class_names: list[str]
    device: str


def evaluate(config: EvalConfig, progress: Callable[[int], None] | None = None, note: Note | None = None) -> EvalResult:
    """Score every sample of `config.test_file` with multi-clip testing; metrics and scores.

    `note(text)` receives remarks (a stream derived on the fly, a recipe mismatch...) before
    the scoring starts; `progress(n)` is called as samples are scored.
    """
    note = note or (lambda _: None)
    if config.clips < 1 or (config.clip_len is not None and config.clip_len < 1) or config.batch_size < 1:
        raise AgcnError(f"clips, clip length and batch size must be at least 1, got {config.clips}, "
                        f"{config.clip_len} and {config.batch_size}")  # fmt: skip
    test_file = Path(config.test_file)
    attrs = check_split_file(test_file)
    device = resolve_device(config.device)
    model, data, ckpt = load_model(
        config.checkpoint, foreign_config=config.foreign_config, foreign_data=config.foreign_data
    )
    if is_agcn_checkpoint(ckpt) and config.foreign_config is not None:
        note(f"{Path(config.checkpoint).name} describes itself; the facts given for foreign weights are ignored")
    for text in check_test_file(test_file, attrs, model.config, data):
        note(text)
    bf16 = config.bf16 and device.type == "cuda"
    if config.bf16 and not bf16:
        note("--bf16 applies on CUDA only; running in float32")
    clip_len = config.clip_len or data.clip_len
    dataset = SkeletonDataset(
        test_file, data.modality, clip_len=clip_len, num_clips=config.clips, test_mode=True, in_memory=True
    )
    prob, logit = score_dataset(
        model, dataset, batch_size=config.batch_size, device=device, bf16=bf16, progress=progress
    )
    names = class_names(model.config.num_classes, str(attrs.get("benchmark", "")) or data.benchmark)
    scores = Scores(
        names=list(dataset.names),
        labels=dataset.labels.copy(),
        prob=prob,
        logit=logit,
        attrs={
            "modality": data.modality,
            "clips": config.clips,
            "clip_len": clip_len,
            "checkpoint": str(Path(config.checkpoint).resolve()),
            "test_file": str(test_file.resolve()),
            "layout": model.config.layout,
            "benchmark": str(attrs.get("benchmark", "")),
            "split": str(attrs.get("split", "")),
            "recipe": str(attrs.get("recipe", "")),
            "fused_by": "",
            "sources": [],
            "weights": [],
        },
    )
    return EvalResult(scores, compute_metrics(prob, scores.labels, names), names, str(device))
