"""Score files: per-sample clip-averaged scores of one stream or a fusion, keyed by sample name.

`data_specs/scores.md` is the schema. `agcn eval --out` writes them, `agcn fuse` reads, aligns
and writes them; `write_mmaction_dump` writes the pickled list of MMAction2 1.x's
`tools/test.py --dump` for its own tools.
"""

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from ..errors import AgcnError
from .atomic import atomic_output
from .splitfile import hdf5_error_reason

SCORES_FORMAT = "agcn-scores"
SCORES_VERSION = 1
SCORE_KINDS = ("prob", "logit")


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

    @property
    def label_names(self) -> tuple[str, ...]:
        """The class names stored with the scores (attribute `label_names`); () in older files."""
        return tuple(self.attrs.get("label_names") or ())

    def kind(self, kind: str) -> np.ndarray:
        """The `prob` or `logit` scores."""
        if kind not in SCORE_KINDS:
            raise AgcnError(f"unknown score kind {kind!r}; choose one of: {', '.join(SCORE_KINDS)}")
        return self.prob if kind == "prob" else self.logit


def score_attrs(
    modality: str,
    clips: Any,
    clip_len: Any,
    *,
    checkpoint: str = "",
    test_file: str = "",
    layout: str = "",
    benchmark: str = "",
    split: str = "",
    recipe: str = "",
    fused_by: str = "",
    sources: Sequence[str] = (),
    weights: Sequence[float] = (),
    label_names: Sequence[str] = (),
) -> dict[str, Any]:
    """The attributes of a score file (data_specs/scores.md), in the order they are written: of one
    stream's scores (`agcn eval`: its checkpoint) or of a fusion (`agcn fuse`: `fused_by`, the
    `sources` and their `weights`); `label_names` where there are class names."""
    attrs = {
        "modality": modality, "clips": clips, "clip_len": clip_len, "checkpoint": checkpoint, "test_file": test_file,
        "layout": layout, "benchmark": benchmark, "split": split, "recipe": recipe, "fused_by": fused_by,
        "sources": list(sources), "weights": [float(w) for w in weights],
    }  # fmt: skip
    if label_names:
        attrs["label_names"] = list(label_names)
    return attrs


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
            if h5py.check_string_dtype(f["name"].dtype) is None:
                raise AgcnError(f"{path}: 'name' holds {f['name'].dtype} values, not sample names (strings). {hint}")
            names = list(f["name"].asstr()[:])
            labels = f["label"][:].astype(np.int64)
            prob = f["prob"][:].astype(np.float32)
            logit = f["logit"][:].astype(np.float32)
    except OSError as e:
        raise AgcnError(f"{path}: not a readable HDF5 score file ({hdf5_error_reason(e)}). {hint}") from None
    n = len(names)
    if labels.shape != (n,) or prob.ndim != 2 or prob.shape[0] != n or logit.shape != prob.shape:
        raise AgcnError(
            f"{path}: score file datasets disagree: {n} names, label {labels.shape}, prob {prob.shape}, "
            f"logit {logit.shape}. {hint}"
        )
    for kind, values in (("prob", prob), ("logit", logit)):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise AgcnError(
                f"{path}: {kind} scores of sample {names[int(np.argmax(bad))]!r} are NaN or infinite "
                f"({int(bad.sum())} such samples); score the test file again with agcn eval"
            )
    if "sources" in attrs and isinstance(attrs["sources"], str):
        attrs["sources"] = json.loads(attrs["sources"] or "[]")
    if "weights" in attrs:
        attrs["weights"] = [float(w) for w in np.atleast_1d(attrs["weights"])]
    if "label_names" in attrs:
        try:
            label_names = json.loads(attrs["label_names"] or "[]")
        except (TypeError, json.JSONDecodeError):
            label_names = None
        if not isinstance(label_names, list) or not all(isinstance(n, str) for n in label_names):
            raise AgcnError(f"{path}: attribute label_names is not a JSON list of class names. {hint}")
        attrs["label_names"] = label_names
    return Scores(names, labels, prob, logit, attrs)


def _h5_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as HDF5 stores them: lists of paths and class names as JSON text, weights as a float array."""
    out = dict(attrs)
    if "sources" in out:
        out["sources"] = json.dumps([str(s) for s in out["sources"]])
    if "weights" in out:
        out["weights"] = np.asarray(out["weights"], dtype=np.float64)
    if "label_names" in out:
        out["label_names"] = json.dumps([str(n) for n in out["label_names"]])
    return out


def write_mmaction_dump(path: Path, scores: Scores) -> None:
    """MMAction2 1.x's `tools/test.py --dump` format: a pickled list, one dict per sample.

    Each dict holds `pred_score` (float32 tensor (num_classes,), the clip-averaged softmax),
    `pred_label` and `gt_label` (int64 tensors of shape (1,)), `num_classes`, and the sample
    name as `frame_dir` (the key MMAction2's PoseDataset uses). Unpickling needs torch.
    """
    import torch  # only this writer needs it; fuse and read_scores stay torch-free

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
