"""`agcn predict`: class probabilities for raw NTU `.skeleton` files.

Each file goes through what the checkpoint's training data went through: the preprocessing
recipe recorded in the checkpoint (`DataInfo.recipe`, `recipes.make_sample`), the stream it
was trained on (`streams.compute_stream` on the whole sequence), then the same multi-clip test
sampling and clip averaging as `agcn eval`. Several checkpoints (e.g. joint and bone) are fused
by a weighted mean of their probabilities.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..engine.device import resolve_device
from ..errors import AgcnError
from ..io.checkpoint import DataInfo
from ..models.agcn import AGCN, ModelConfig
from ..models.loading import load_model
from ..skeleton.layouts import get_layout
from ..skeleton.sampling import TEST_SEED, sample_test_clips
from ..skeleton.streams import compute_stream
from ..sources.ntu import SkeletonError, SkeletonFile, parse_name, parse_skeleton
from ..sources.ntu_convert import NTU_LAYOUT
from ..sources.recipes import check_recipe, make_sample
from .evaluate import Note
from .fusion import check_weights
from .metrics import class_names
from .scoring import clip_scores


@dataclass
class Prediction:
    file: Path
    frames: int  # frames in the file
    top: list[tuple[int, str, float]]  # (0-based class, name, probability), best first
    action: int | None  # the true NTU action id when the file name follows the NTU convention


def sample_clips(sk: SkeletonFile, data: DataInfo, clip_len: int, num_clips: int) -> np.ndarray:
    """(num_clips, C, clip_len, V, M) float32 test clips of one parsed file, as the checkpoint saw its data."""
    layout = get_layout(NTU_LAYOUT)
    sample, _ = make_sample(sk, check_recipe(data.recipe), layout.normalize)  # (M, T, V, C)
    x = compute_stream(sample.transpose(3, 1, 2, 0), data.modality, layout)  # (C, T, V, M)
    idx = sample_test_clips(x.shape[1], clip_len, num_clips=num_clips, seed=TEST_SEED)
    return np.ascontiguousarray(x[:, idx].swapaxes(0, 1), dtype=np.float32)  # (K, C, L, V, M)


def _load(path: Path, foreign_config: ModelConfig | None, foreign_data: DataInfo | None,
          note: Note) -> tuple[AGCN, DataInfo]:  # fmt: skip
    model, data, _ = load_model(path, foreign_config=foreign_config, foreign_data=foreign_data, note=note)
    if model.config.layout != NTU_LAYOUT or data.layout != NTU_LAYOUT:
        raise AgcnError(
            f"{path}: the model is for layout {model.config.layout!r}; .skeleton files hold the {NTU_LAYOUT} Kinect "
            f"layout, so predict needs a checkpoint trained on {NTU_LAYOUT} data"
        )
    return model, data


def predict(
    checkpoints: list[Path],
    files: list[Path],
    *,
    weights: list[float] | None = None,
    clips: int = 10,
    clip_len: int | None = None,
    top: int = 5,
    batch_size: int = 16,
    device: str = "auto",
    foreign_config: ModelConfig | None = None,
    foreign_data: DataInfo | None = None,
    note: Note | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Prediction]:
    """Top-`top` classes of each `.skeleton` file, from one checkpoint or the weighted fusion of several."""
    note = note or (lambda _: None)
    if not checkpoints or not files:
        raise AgcnError("predict needs at least one checkpoint and one .skeleton file")
    if clips < 1 or top < 1 or batch_size < 1 or (clip_len is not None and clip_len < 1):
        raise AgcnError("--clips, --clip-len, --top and --batch-size must be at least 1")
    weights = [1.0] * len(checkpoints) if weights is None else check_weights(weights, checkpoints, noun="checkpoints")
    dev = resolve_device(device)
    models = [_load(Path(p), foreign_config, foreign_data, note) for p in checkpoints]
    num_classes = {m.config.num_classes for m, _ in models}
    if len(num_classes) > 1:
        raise AgcnError(
            f"the checkpoints have different class counts ({', '.join(str(m.config.num_classes) for m, _ in models)}); "
            "fuse models trained on the same classes"
        )
    parsed = []
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise AgcnError(f"{path}: no such .skeleton file")
        parsed.append(parse_skeleton(path))  # SkeletonError names the file and line
    k = num_classes.pop()
    fused = np.zeros((len(files), k), np.float64)
    w = np.asarray(weights, np.float64) / np.sum(weights)
    for (model, data), wi in zip(models, w, strict=True):
        model.eval().to(dev)
        length = clip_len or data.clip_len
        for start in range(0, len(files), batch_size):
            batch = []
            for i in range(start, min(start + batch_size, len(files))):
                try:
                    x = sample_clips(parsed[i], data, length, clips)  # (K, C, L, V, M)
                except SkeletonError as e:
                    raise AgcnError(f"{files[i]}: {e}") from None
                batch.append(x)
            prob, _ = clip_scores(model, torch.from_numpy(np.stack(batch)).to(dev))  # (B, num_classes)
            fused[start : start + len(batch)] += wi * prob.cpu().numpy()
            if progress:
                progress(len(batch))
    names = class_names(k, models[0][1].benchmark)
    out = []
    for i, path in enumerate(files):
        best = np.argsort(-fused[i], kind="stable")[: min(top, k)]
        try:
            action = parse_name(Path(path).name).action
        except SkeletonError:
            action = None
        ranked = [(int(c), names[c], float(fused[i, c])) for c in best]
        out.append(Prediction(Path(path), parsed[i].num_frames, ranked, action))
    return out
