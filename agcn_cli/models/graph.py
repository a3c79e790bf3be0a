"""The skeleton graph as the references build it: three normalised adjacency subsets."""

import numpy as np
import torch

from ..skeleton.layouts import Layout, get_layout


def adjacency(layout: str | Layout, graph: str | None = None) -> torch.Tensor:
    """(3, V, V) float32: identity, normalised inward, normalised outward.

    `x @ A[k]` aggregates over the first joint axis: `A[k, i, j]` weights joint i's
    features in joint j's output. Each column is divided by its sum (the in-degree of j),
    empty columns stay zero, as in both references' `normalize_digraph`. `layout`: a Layout, or
    a built-in layout's name.
    """
    spec = get_layout(layout) if isinstance(layout, str) else layout
    v = spec.num_joints
    inward = np.array(spec.edges(graph), dtype=np.int64).reshape(-1, 2)  # (child, parent)
    subsets = np.zeros((3, v, v))
    subsets[0] = np.eye(v)
    subsets[1, inward[:, 1], inward[:, 0]] = 1  # "inward" as the references store it: A[parent, child]
    subsets[2, inward[:, 0], inward[:, 1]] = 1  # "outward": A[child, parent]
    degree = subsets.sum(axis=1, keepdims=True)  # (3, 1, V) column sums
    subsets = np.divide(subsets, degree, out=np.zeros_like(subsets), where=degree > 0)
    return torch.from_numpy(subsets.astype(np.float32))
