"""Multi-clip scoring: a model and test-mode clips in, clip-averaged softmax and logits out; the test
views a checkpoint asks for (`checkpoint_views`, for `agcn eval`'s `scoring_dataset` and `agcn predict`)."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..engine.data import BatchLoader, SkeletonDataset
from ..engine.device import autocast, tf32
from ..errors import AgcnError
from ..io.checkpoint import DataInfo
from ..skeleton.views import ViewSpec

DEFAULT_CLIPS = 10  # MMAction2's test clips per sample


def checkpoint_views(
    data: DataInfo, clips: int | None = None, clip_len: int | None = None, owner: str = ""
) -> ViewSpec:
    """The views a checkpoint is tested on, in its stream (the data's padding and layout left to
    the caller): a full-window checkpoint (`data.test_window > 0`, 2s-AGCN's recipe) one view of
    the whole window of `test_window` frames, as its reference tests (AgcnError for `clips` or
    `clip_len` given); others `clips` (default 10) uniformly sampled clips of `clip_len` frames
    (default: the training clip length). `owner`: the checkpoint `agcn predict` names in the error.
    """
    if data.test_window:
        given = [f"--clips {clips}"] * ((clips or 1) != 1) + [f"--clip-len {clip_len}"] * (clip_len is not None)
        if given and owner:  # agcn predict's words, which name the checkpoint of several
            raise AgcnError(
                f"{owner}: trained on the whole {data.test_window}-frame window (2s-AGCN recipe), it is tested "
                "on one view of it; drop --clips and --clip-len"
            )
        if given:
            raise AgcnError(
                f"the checkpoint was trained on the whole {data.test_window}-frame window (2s-AGCN recipe) and is "
                f"tested on one view of it; drop {' and '.join(given)}"
            )
        return ViewSpec(data.modality, window=data.test_window)
    return ViewSpec(data.modality, clip_len=clip_len or data.clip_len, num_clips=clips or DEFAULT_CLIPS)


def scoring_dataset(
    path: str | Path, data: DataInfo, clips: int | None = None, clip_len: int | None = None, attrs: dict | None = None
) -> SkeletonDataset:
    """The test-mode dataset a checkpoint is scored on, in its stream and its test views
    (`checkpoint_views`). `attrs`: the split file's, checked by the caller (None: checked here)."""
    spec = checkpoint_views(data, clips, clip_len)
    return SkeletonDataset(
        path, spec.stream, clip_len=spec.clip_len, num_clips=spec.num_clips, test_mode=True, window=spec.window,
        attrs=attrs,
    )  # fmt: skip


@torch.no_grad()
def clip_scores(model: nn.Module, clips: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip-averaged softmax and logits, each (N, num_classes) float32.

    `clips` is (N, K, C, T, V, M): all N*K clips go through the model in one batch, in
    float32 (TF32 off on CUDA) or with bfloat16 autocast.
    """
    N, K = clips.shape[:2]
    with tf32(False), autocast(clips.device, torch.bfloat16 if bf16 else None):
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
    """(prob, logit), each (N, num_classes) float32, for every sample of a test-mode dataset."""
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
