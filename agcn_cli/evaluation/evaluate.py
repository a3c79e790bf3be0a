"""`agcn eval`: multi-clip testing of a checkpoint on a split file.

Testing follows MMAction2's skeleton recipe: each sample gives `clips` clips drawn by
`UniformSampleFrames` in test mode (fixed seed 255 per sample, `skeleton.sampling.sample_test_clips`); all clips of a
batch of samples go through the model together, `(N, K, C, T, V, M) -> (N*K, C, T, V, M)`, and
the class probabilities are the mean over clips of the softmax (GCNHead's
`average_clips="prob"`). The mean over clips of the logits is kept as well, for fusing logits.
The scoring itself is `scoring.py`, metrics `metrics.py`, score files (`data_specs/scores.md`) `io/scores.py`.
A checkpoint trained on 2s-AGCN's full window (`DataInfo.test_window > 0`) is tested as that
reference tests: one view of each sample's whole window, padded to `test_window` frames
(`scoring.scoring_dataset`). `evaluate` writes what `EvalOutputs` asks for: the score file, an
MMAction2 dump, the confusion matrix. (`agcn eval`'s entry, which also takes run folders, is
`runs.evaluate_path`.)
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..engine.device import resolve_device
from ..errors import AgcnError
from ..io.atomic import refuse_existing
from ..io.checkpoint import DataInfo, is_torch_file
from ..io.scores import Scores, score_attrs, write_mmaction_dump, write_scores
from ..io.splitfile import check_split_file, read_meta, split_label_names, split_layout, stored_streams
from ..models.agcn import ModelConfig
from ..models.loading import load_model
from ..skeleton.persons import NUM_PERSONS
from .metrics import Metrics, class_names, compute_metrics, write_confusion_csv, write_confusion_png
from .scoring import score_dataset, scoring_dataset

Note = Callable[[str], None]


# ---- agcn eval --------------------------------------------------------------------------------


def check_argument_order(checkpoint: Path, test_file: Path) -> None:
    """`agcn eval TEST.h5 CKPT.pt`, the arguments swapped (an HDF5 file first, a checkpoint or a
    run folder second): an AgcnError saying so, before either is read as the other."""
    checkpoint, test_file = Path(checkpoint), Path(test_file)
    if not (checkpoint.is_file() and h5py.is_hdf5(checkpoint)):
        return
    if test_file.is_dir():
        what = "a run folder"
    elif is_torch_file(test_file):
        what = "a checkpoint"
    else:
        return
    raise AgcnError(
        f"agcn eval: {checkpoint} is an HDF5 (split) file and {test_file} {what}; the checkpoint comes first: "
        f"agcn eval {test_file} {checkpoint}"
    )


def check_test_file(path: Path, attrs: dict[str, Any], config: ModelConfig, data: DataInfo) -> list[str]:
    """Refuse a split file the model cannot score; return notes on what is unusual but fine."""
    path = Path(path)
    if attrs["layout"] != config.layout:
        raise AgcnError(
            f"{path}: skeleton layout {attrs['layout']!r}, but the checkpoint's model is for {config.layout!r}; "
            f"evaluate on data preprocessed for {config.layout}"
        )
    layout = split_layout(attrs, path)
    if not layout.same_topology(config.skeleton()):
        raise AgcnError(
            f"{path}: skeleton layout {layout.name!r} of this file differs from the checkpoint's layout "
            f"{config.layout!r} of the same name (joints, graphs, bones or normalisation); evaluate on data "
            "preprocessed with the checkpoint's layout file"
        )
    channels = str(attrs.get("channels", ",".join(layout.channels)))
    if len(channels.split(",")) != config.in_channels or (data.channels and channels != data.channels):
        raise AgcnError(
            f"{path}: channels {channels!r}, but the checkpoint was trained on {data.channels!r} "
            f"({config.in_channels} channels)"
        )
    if config.num_persons != NUM_PERSONS:
        raise AgcnError(f"the checkpoint's model takes {config.num_persons} persons; agcn data has {NUM_PERSONS}")
    labels = read_meta(path, ("label",), check=False)["label"]
    stored = data.modality in stored_streams(path)
    if len(labels) == 0:
        raise AgcnError(f"{path}: no samples to evaluate")
    if labels.min() < 0 or labels.max() >= config.num_classes:
        raise AgcnError(
            f"{path}: labels reach class {int(labels.max())} (action A{int(labels.max()) + 1:03d}), but the model has "
            f"{config.num_classes} classes; evaluate with a checkpoint trained for {attrs['num_classes']} classes"
        )
    notes = []
    if not stored:
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
    clips: int | None = None  # test clips per sample; None: 10 (MMAction2), 1 view for a full-window checkpoint
    clip_len: int | None = None  # frames per clip; None: the checkpoint's training clip length
    batch_size: int = 16  # samples per forward pass, each with `clips` clips
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = False  # bfloat16 autocast on CUDA
    foreign_config: ModelConfig | None = None  # for weights without agcn metadata (see models.loading.foreign_facts)
    foreign_data: DataInfo | None = None


@dataclass(frozen=True)
class EvalOutputs:
    """The files `evaluate` writes once it has scored (None: not written)."""

    scores: Path | None = None  # the score file (HDF5) agcn fuse reads; of a multi-stream run, a folder of them
    confusion: Path | None = None  # the confusion matrix as CSV, and a PNG beside it where matplotlib is installed
    mmaction_dump: Path | None = None  # MMAction2 1.x's test.py --dump pickle (.pkl)
    overwrite: bool = False  # replace files that exist

    def check(self) -> None:
        """Refuse, before anything is scored, names of the wrong kind and files that exist (unless overwrite)."""
        if self.mmaction_dump is not None and self.mmaction_dump.suffix not in (".pkl", ".pickle"):
            raise AgcnError(f"--mmaction-dump {self.mmaction_dump}: MMAction2 dumps are .pkl or .pickle files")
        if self.confusion is not None and self.confusion.suffix.lower() != ".csv":
            raise AgcnError(f"--confusion {self.confusion}: expected a .csv file name")
        refuse_existing([self.scores, self.confusion, self.mmaction_dump], self.overwrite)

    def files(self) -> list[Path]:
        """The files asked for, in the order `agcn eval` names them."""
        return [p for p in (self.scores, self.mmaction_dump, self.confusion) if p is not None]


@dataclass
class EvalResult:
    scores: Scores
    metrics: Metrics
    class_names: list[str]
    device: str
    checkpoint: Path  # the checkpoint tested (config.checkpoint)


def evaluate(
    config: EvalConfig,
    progress: Callable[[int], None] | None = None,
    note: Note | None = None,
    attrs: dict[str, Any] | None = None,
    outputs: EvalOutputs | None = None,
) -> EvalResult:
    """Score every sample of `config.test_file` with multi-clip testing; metrics and scores.

    `note(text)` receives remarks (a stream derived on the fly, a recipe mismatch...) before
    the scoring starts; `progress(n)` is called as samples are scored. `attrs`: the test file's
    attributes where the caller has checked it (`check_split_file`, once per command; None:
    checked here). `outputs`: the files to write once scored (checked by the caller beforehand,
    `EvalOutputs.check`).
    """
    note = note or (lambda _: None)
    counts = (config.clips, config.clip_len, config.batch_size)  # None: the checkpoint's (clips, clip length)
    if any(n is not None and n < 1 for n in counts):
        raise AgcnError(f"clips, clip length and batch size must be at least 1, got {config.clips}, "
                        f"{config.clip_len} and {config.batch_size}")  # fmt: skip
    test_file = Path(config.test_file)
    attrs = check_split_file(test_file) if attrs is None else attrs
    device = resolve_device(config.device)
    model, data, _ = load_model(
        config.checkpoint, foreign_config=config.foreign_config, foreign_data=config.foreign_data, note=note
    )
    for text in check_test_file(test_file, attrs, model.config, data):
        note(text)
    bf16 = config.bf16 and device.type == "cuda"
    if config.bf16 and not bf16:
        note("--bf16 applies on CUDA only; running in float32")
    dataset = scoring_dataset(test_file, data, config.clips, config.clip_len, attrs)
    clip_len = dataset.window or dataset.clip_len  # frames per view
    # NaN or infinite frames: refused by SkeletonDataset when it loads them (engine/data.py)
    prob, logit = score_dataset(
        model, dataset, batch_size=config.batch_size, device=device, bf16=bf16, progress=progress
    )
    bad = ~(np.isfinite(prob).all(axis=1) & np.isfinite(logit).all(axis=1))
    if bad.any():
        raise AgcnError(
            f"{test_file}: the model's scores for sample {dataset.names[int(np.argmax(bad))]!r} are NaN or infinite "
            f"({int(bad.sum())} such samples); the checkpoint {config.checkpoint} may hold non-finite weights"
        )
    label_names = data.label_names or split_label_names(attrs, test_file)
    names = class_names(model.config.num_classes, str(attrs.get("benchmark", "")) or data.benchmark, label_names)
    facts = {key: str(attrs.get(key, "")) for key in ("benchmark", "split", "recipe")}
    scores = Scores(names=list(dataset.names), labels=dataset.labels.copy(), prob=prob, logit=logit, attrs=score_attrs(
        data.modality, dataset.num_clips, clip_len, checkpoint=str(Path(config.checkpoint).resolve()),
        test_file=str(test_file.resolve()), layout=model.config.layout, **facts, label_names=names,
    ))  # fmt: skip
    result = EvalResult(
        scores, compute_metrics(prob, scores.labels, names), names, str(device), Path(config.checkpoint)
    )
    if outputs is not None:
        _write_outputs(result, outputs, note)
    return result


def _write_outputs(result: EvalResult, outputs: EvalOutputs, note: Note) -> None:
    """The score file, the MMAction2 dump and the confusion matrix (CSV, PNG) `outputs` names."""
    if outputs.scores is not None:
        write_scores(outputs.scores, result.scores)
    if outputs.mmaction_dump is not None:
        write_mmaction_dump(outputs.mmaction_dump, result.scores)
    if outputs.confusion is not None:
        write_confusion_csv(outputs.confusion, result.metrics.confusion, result.class_names)
        if not write_confusion_png(outputs.confusion.with_suffix(".png"), result.metrics.confusion, result.class_names):
            note("matplotlib is not installed: wrote the CSV only (pip install matplotlib for the PNG)")
