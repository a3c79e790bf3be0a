"""`agcn predict`: class probabilities for the samples of any input agcn reads.

Inputs are read by `sources.samples`: raw `.skeleton` files with the recipe recorded in the
checkpoint (`DataInfo.recipe`), `.pkl` annotation files, Kinetics-Skeleton JSON and split files
as `agcn preprocess` converts them. An input in another layout than the checkpoint's is refused
before anything is classified. Each sample then takes the path of `agcn eval`: the stream the
model was trained on (`streams.compute_stream` on the whole sequence), the same fixed-seed
multi-clip test sampling and the mean over clips of the softmax. Several checkpoints (e.g. joint
and bone) are fused by a weighted mean of their probabilities.

Samples are read and scored `batch_size` at a time, so a large folder is never held in memory at
once. A sample or input that cannot be read comes out as a `SampleFailure` in its place; the
others are still classified.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..engine.data import motion_of_window, repeat_persons, window_padding, window_periods
from ..engine.device import resolve_device
from ..errors import AgcnError
from ..io.checkpoint import DataInfo
from ..models.agcn import AGCN, ModelConfig
from ..models.loading import load_model
from ..skeleton.layouts import Layout, resolve_layout
from ..skeleton.normalize import WindowPad
from ..skeleton.persons import fit_persons
from ..skeleton.sampling import TEST_SEED, sample_test_clips
from ..skeleton.streams import compute_stream, window_motion
from ..sources.samples import (
    SPLIT_SUFFIXES,
    Input,
    LabelSpace,
    Sample,
    SampleFailure,
    SplitInput,
    benchmark_family,
    check_layout,
    describe_layout,
    failure_from,
    open_input,
)
from .evaluate import Note
from .fusion import check_weights
from .metrics import class_names
from .scoring import DEFAULT_CLIPS, clip_scores


@dataclass
class Prediction:
    name: str  # the sample's name: file name stem, frame_dir, video id or split-file name
    source: Path  # the file it was read from
    frames: int  # frames of the sample
    top: list[tuple[int, str, float]]  # (0-based class, name, probability), best first
    label: int | None  # the true class in the checkpoint's classes, when the input says (NTU name, label, label_index)
    label_name: str | None  # its name


@dataclass
class _Model:
    path: Path
    model: AGCN
    data: DataInfo


# Skeleton coordinates are metres (NTU, 3D) or pixels (2D keypoints): beyond this they are garbage
# (a finite 1e30 overflows inside the model, or saturates its softmax into a confident answer).
COORDINATE_LIMIT = 1e6


def sample_clips(
    sample: np.ndarray, data: DataInfo, layout: Layout, clip_len: int, num_clips: int, padding: str = "loop",
    pad: WindowPad | None = None,
) -> np.ndarray:  # fmt: skip
    """(K, C, L, V, M) float32 test views of one (M, T, V, C) sample in the checkpoint's stream, as
    `agcn eval` cuts them: `num_clips` clips of `clip_len` frames, or, for a full-window checkpoint
    (`data.test_window`), the one view of the whole window, continued past the sample's frames as
    `padding` says (`engine.data.window_padding`), each person with its own period given the
    2s-agcn sample's `pad` (`engine.data.repeat_persons`), its motion that of the padded window
    where `engine.data.motion_of_window` says."""
    differenced = bool(data.test_window) and motion_of_window(padding, data.modality)
    base = "joint" if differenced else data.modality  # the stream the window is built of
    x = compute_stream(sample.transpose(3, 1, 2, 0), base, layout)  # (C, T, V, M)
    t = x.shape[1]
    if data.test_window:
        own = pad is not None and padding == "2s-agcn"
        periods = fit_persons(pad.periods)[None] if own else None  # (1, M)
        period = int(periods[0, 0]) if own else int(window_periods(x, np.zeros(1, np.int64), np.array([t]), padding)[0])
        pos = np.arange(data.test_window)
        idx = np.where(pos < t, pos, pos % period if period else -1)  # (L,), -1: a zero frame
        view = x[:, np.maximum(idx, 0)]  # (C, L, V, M)
        view[:, idx < 0] = 0
        if own:
            centre = pad.centre if base == "joint" and len(x) == 3 else None
            repeat_persons(view[None], x, centre, np.zeros(1, np.int64), np.array([t]), periods, pos[None])
        if differenced:
            view = window_motion(view, data.modality, layout)  # the window's last frame zero
        return np.ascontiguousarray(view[None], dtype=np.float32)  # (1, C, L, V, M)
    idx = sample_test_clips(t, clip_len, num_clips=num_clips, seed=TEST_SEED)  # (K, L)
    return np.ascontiguousarray(x[:, idx].swapaxes(0, 1), dtype=np.float32)  # (K, C, L, V, M)


def _load(paths: Sequence[Path], foreign_config: ModelConfig | None, foreign_data: DataInfo | None,
          note: Note) -> tuple[list[_Model], Layout]:  # fmt: skip
    """The checkpoints and their common layout; AgcnError when they cannot be fused."""
    models = []
    for path in map(Path, paths):
        model, data, _ = load_model(path, foreign_config=foreign_config, foreign_data=foreign_data, note=note)
        models.append(_Model(path, model, data))
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


def _open(inputs: Sequence[Path], names: Sequence[str] | None, models: list[_Model], layout: Layout,
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
    if (clips or 1) < 1 or top < 1 or batch_size < 1 or (clip_len is not None and clip_len < 1):
        raise AgcnError("--clips, --clip-len, --top and --batch-size must be at least 1")
    weights = [1.0] * len(checkpoints) if weights is None else check_weights(weights, checkpoints, noun="checkpoints")
    models, layout = _load(checkpoints, foreign_config, foreign_data, note)
    for m in models:
        if m.data.test_window and ((clips or 1) != 1 or clip_len is not None):
            raise AgcnError(
                f"{m.path}: trained on the whole {m.data.test_window}-frame window (2s-AGCN recipe), it is tested "
                "on one view of it; drop --clips and --clip-len"
            )
    opened = _open(inputs, samples, models, layout, note)
    dev = resolve_device(device)
    for m in models:
        m.model.eval().to(dev)
    k = models[0].model.config.num_classes
    names = class_names(k, models[0].data.benchmark, label_names=models[0].data.label_names)
    w = np.asarray(weights, np.float64) / np.sum(weights)

    ours = LabelSpace(benchmark_family(models[0].data.benchmark, k), k, tuple(models[0].data.label_names))

    def score(batch: list[tuple[Sample | SampleFailure, str, LabelSpace]]) -> Iterator[Prediction | SampleFailure]:
        """Predictions for the samples of `batch` ((item, window padding, its input's label space)),
        failures passed through, in order. A label is the truth only in the checkpoint's label space."""
        items = [item for item, _, _ in batch]
        fused = np.zeros((len(items), k), np.float64)
        for m, wm in zip(models, w, strict=True):
            rows, x = [], []
            for i, (item, padding, _) in enumerate(batch):
                if isinstance(items[i], Sample):
                    try:
                        views = sample_clips(  # (K, C, L, V, M)
                            item.data, m.data, layout, clip_len or m.data.clip_len, clips or DEFAULT_CLIPS, padding,
                            item.pad,
                        )  # fmt: skip
                    except AgcnError as e:
                        items[i] = SampleFailure(f"{item.source}: {item.name}", str(e))
                        continue
                    x.append(views)
                    rows.append(i)
            if x:
                prob, _ = clip_scores(m.model, torch.from_numpy(np.stack(x)).to(dev))  # (B, num_classes)
                fused[rows] += wm * prob.cpu().numpy()
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
        if progress:
            progress(sum(isinstance(item, Sample) for item in items))

    batch: list[tuple[Sample | SampleFailure, str, LabelSpace]] = []
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
                yield from score(batch)
                batch, filled = [], 0
    yield from score(batch)
