"""`agcn predict`: class probabilities for the samples of any input agcn reads.

Inputs are read by `sources.samples`: raw `.skeleton` files with the recipe recorded in the
checkpoint (`DataInfo.recipe`), `.pkl` annotation files, Kinetics-Skeleton JSON and split files
as `agcn preprocess` converts them. An input in another layout than the checkpoint's is refused
before anything is classified. Each sample then takes the path of `agcn eval`: the views the
checkpoint is tested on (`scoring.checkpoint_views`), cut by the one clip path
(`skeleton.views.sample_views`: the stream the model was trained on, derived on the whole
sequence, then the fixed-seed test clips or the full window) and the mean over clips of the
softmax. Several checkpoints (e.g. joint and bone) are fused by the weighted mean of their
probabilities (`fusion.weighted_mean`).

Samples are read and scored `batch_size` at a time, so a large folder is never held in memory at
once. A sample or input that cannot be read comes out as a `SampleFailure` in its place; the
others are still classified.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..engine.device import resolve_device
from ..errors import AgcnError
from ..io.checkpoint import DataInfo
from ..models.agcn import AGCN, ModelConfig
from ..models.loading import load_model
from ..skeleton.layouts import Layout, resolve_layout
from ..skeleton.views import ViewSpec, sample_views
from ..skeleton.window import window_padding
from ..sources.ntu import benchmark_family
from ..sources.samples import (
    SPLIT_SUFFIXES,
    Input,
    LabelSpace,
    Sample,
    SampleFailure,
    SplitInput,
    check_layout,
    describe_layout,
    failure_from,
    open_input,
)
from .evaluate import Note
from .fusion import check_weights, weighted_mean
from .metrics import class_names
from .scoring import checkpoint_views, clip_scores


@dataclass
class Prediction:
    name: str  # the sample's name: file name stem, frame_dir, video id or split-file name
    source: Path  # the file it was read from
    frames: int  # frames of the sample
    top: list[tuple[int, str, float]]  # (0-based class, name, probability), best first
    label: int | None  # the true class in the checkpoint's classes, when the input says (NTU name, label, label_index)
    label_name: str | None  # its name


@dataclass
class LoadedModel:
    path: Path
    model: AGCN
    data: DataInfo


_Entry = tuple[Sample | SampleFailure, str, LabelSpace]  # a sample (or failure), its window padding, its label space

# Skeleton coordinates are metres (NTU, 3D) or pixels (2D keypoints): beyond this they are garbage
# (a finite 1e30 overflows inside the model, or saturates its softmax into a confident answer).
COORDINATE_LIMIT = 1e6


def load_checkpoints(paths: Sequence[Path], foreign_config: ModelConfig | None, foreign_data: DataInfo | None,
          note: Note) -> tuple[list[LoadedModel], Layout]:  # fmt: skip
    """The checkpoints and their common layout; AgcnError when they cannot be fused."""
    models = []
    for path in map(Path, paths):
        model, data, _ = load_model(path, foreign_config=foreign_config, foreign_data=foreign_data, note=note)
        models.append(LoadedModel(path, model, data))
    first = models[0]
    layout = resolve_layout(first.data.layout, first.data.layout_spec, source=str(first.path))
    for m in models:
        own = resolve_layout(m.data.layout, m.data.layout_spec, source=str(m.path))
        if m.model.config.layout != m.data.layout or not own.same_topology(layout):
            raise AgcnError(
                f"{m.path}: the model is for layout {describe_layout(own)}, {first.path} for {describe_layout(layout)}"
            )
        channels = ",".join(layout.channels)
        if m.model.config.in_channels != len(layout.channels) or (m.data.channels and m.data.channels != channels):
            raise AgcnError(
                f"{m.path}: the model takes {m.model.config.in_channels} channels ({m.data.channels}); "
                f"layout {layout.name} has {channels}"
            )
    counts = [m.model.config.num_classes for m in models]
    if len(set(counts)) > 1:
        raise AgcnError(
            f"the checkpoints have different class counts ({', '.join(map(str, counts))}); "
            "fuse models trained on the same classes"
        )
    return models, layout


def _open(inputs: Sequence[Path], names: Sequence[str] | None, models: list[LoadedModel], layout: Layout,
          note: Note) -> list[Input | SampleFailure]:  # fmt: skip
    """Each input opened, or the failure to open it; AgcnError for one in another layout."""
    recipes = {m.data.recipe for m in models}
    opened: list[Input | SampleFailure] = []
    for path in map(Path, inputs):
        try:
            inp = open_input(path, recipe=models[0].data.recipe, layout=layout, names=names)
        except AgcnError as e:
            opened.append(failure_from(str(path), e))
            continue
        check_layout(inp, layout, f"the checkpoint {models[0].path}")
        if inp.kind == "skeleton" and len(recipes) > 1:
            raise AgcnError(
                f"{path}: the checkpoints were trained on data of different recipes ({', '.join(sorted(recipes))}); "
                ".skeleton files are read with one"
            )
        if inp.recipe and recipes - {inp.recipe}:
            note(f"{path.name} follows the {inp.recipe} recipe, a checkpoint was trained on {', '.join(recipes)} data")
        opened.append(inp)
    splits = [i for i in opened if isinstance(i, SplitInput)]
    if names is not None:
        if not any(Path(p).suffix.lower() in SPLIT_SUFFIXES for p in inputs):
            raise AgcnError("--sample picks samples of split .h5 inputs, and none was given")
        if not splits:  # the .h5 inputs failed to open: their failures say why
            return opened
        known = {n for i in splits for n in i.names}
        where = ", ".join(str(i.path) for i in splits)
        opened[:0] = [SampleFailure(where, f"no sample named {n!r}") for n in dict.fromkeys(names) if n not in known]
    return opened


def _probabilities(
    models: list[LoadedModel], views: list[ViewSpec], batch: list[_Entry], k: int, dev: torch.device
) -> tuple[list[np.ndarray], list[Sample | SampleFailure]]:
    """Each checkpoint's (B, k) float32 probabilities of the samples of `batch`, zero for failures,
    and the batch's items, a sample whose views cannot be cut turned into a failure."""
    items = [item for item, _, _ in batch]
    probs = [np.zeros((len(items), k), np.float32) for _ in models]
    for m, spec, prob in zip(models, views, probs, strict=True):
        rows, x = [], []
        for i, (item, padding, _) in enumerate(batch):
            if not isinstance(items[i], Sample):
                continue
            try:
                x.append(sample_views(item.data, replace(spec, padding=padding), item.pad))  # (K, C, L, V, M)
            except AgcnError as e:
                items[i] = SampleFailure(f"{item.source}: {item.name}", str(e))
                continue
            rows.append(i)
        if x:
            prob[rows] = clip_scores(m.model, torch.from_numpy(np.stack(x)).to(dev))[0].cpu().numpy()
    return probs, items


def predict(
    checkpoints: Sequence[Path],
    inputs: Sequence[Path],
    *,
    samples: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    clips: int | None = None,
    clip_len: int | None = None,
    top: int = 5,
    batch_size: int = 16,
    device: str = "auto",
    foreign_config: ModelConfig | None = None,
    foreign_data: DataInfo | None = None,
    note: Note | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Prediction | SampleFailure]:
    """The top-`top` classes of every sample of `inputs`, from one checkpoint or the weighted
    fusion of several, in input order; a failure in place of each sample that cannot be read.

    `samples`: names picked from split-file inputs (None: all). `clips`, `clip_len`: as `agcn
    eval` (None: 10 clips of the training clip length; one view for a full-window checkpoint). A
    generator: the checks (and any AgcnError) come with the first item, before any sample is
    classified.
    """
    note = note or (lambda _: None)
    if not checkpoints or not inputs:
        raise AgcnError("predict needs at least one checkpoint and one input")
    if (clips is not None and clips < 1) or top < 1 or batch_size < 1 or (clip_len is not None and clip_len < 1):
        raise AgcnError("--clips, --clip-len, --top and --batch-size must be at least 1")
    weights = [1.0] * len(checkpoints) if weights is None else check_weights(weights, checkpoints, noun="checkpoints")
    models, layout = load_checkpoints(checkpoints, foreign_config, foreign_data, note)
    views = [replace(checkpoint_views(m.data, clips, clip_len, owner=str(m.path)), layout=layout) for m in models]
    opened = _open(inputs, samples, models, layout, note)
    dev = resolve_device(device)
    for m in models:
        m.model.eval().to(dev)
    k = models[0].model.config.num_classes
    names = class_names(k, models[0].data.benchmark, label_names=models[0].data.label_names)

    ours = LabelSpace(benchmark_family(models[0].data.benchmark, k), k, tuple(models[0].data.label_names))
    for batch in _batches(opened, batch_size):
        probs, items = _probabilities(models, views, batch, k, dev)
        fused = weighted_mean(probs, weights)  # (B, num_classes) float64
        yield from _ranked(items, batch, fused, names, top, ours)
        if progress:
            progress(sum(isinstance(item, Sample) for item in items))


def _batches(opened: list[Input | SampleFailure], batch_size: int) -> Iterator[list[_Entry]]:
    """The inputs' samples (and failures) in order, `batch_size` samples a batch (failures ride
    along), each with its window padding and its input's label space; the last batch may be empty."""
    batch: list[_Entry] = []
    filled = 0
    for entry in opened:
        if isinstance(entry, SampleFailure):
            batch.append((entry, "", LabelSpace()))
            continue
        padding = window_padding({"source": entry.source, "recipe": entry.recipe})
        for item in entry.samples():
            batch.append((item, padding, entry.label_space))
            filled += isinstance(item, Sample)
            if filled == batch_size:
                yield batch
                batch, filled = [], 0
    yield batch


def _ranked(
    items: list[Sample | SampleFailure], batch: list[_Entry], fused: np.ndarray, names: list[str], top: int,
    ours: LabelSpace,
) -> Iterator[Prediction | SampleFailure]:  # fmt: skip
    """Predictions for the samples of a batch from their fused probabilities (B, num_classes),
    failures passed through, in order. A label is the truth only in the checkpoint's label space."""
    k = fused.shape[1]
    for i, item in enumerate(items):
        if isinstance(item, SampleFailure):
            yield item
            continue
        largest = float(np.abs(item.data).max()) if item.data.size else 0.0
        if largest > COORDINATE_LIMIT or not np.isfinite(fused[i]).all():
            yield SampleFailure(
                f"{item.source}: {item.name}",
                f"largest |coordinate| {largest:.3g} is beyond {COORDINATE_LIMIT:.0e}, or makes the model's scores "
                "non-finite: not a skeleton in metres or pixels; check how the sample was made",
            )
            continue
        best = np.argsort(-fused[i], kind="stable")[: min(top, k)]
        ranked = [(int(c), names[c], float(fused[i, c])) for c in best]
        truth = item.label if item.label is not None and item.label < k and not batch[i][2].differs(ours) else None
        label_name = None if truth is None else names[truth]
        yield Prediction(item.name, item.source, item.data.shape[1], ranked, truth, label_name)
