"""Multi-clip scoring: a model and test-mode clips in, clip-averaged softmax and logits out."""

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn

from ..engine.data import BatchLoader, SkeletonDataset
from ..engine.device import autocast, tf32
from ..errors import AgcnError


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
