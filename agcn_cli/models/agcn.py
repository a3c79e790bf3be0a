"""The AGCN model, as the paper draws it, in two variants: its units, blocks and the whole network.

- `"2s-agcn"`: the CVPR 2019 model (lshiwjx/2s-AGCN `model/agcn.py`). Each graph unit uses
  the fixed graph `A` (a buffer) + a learned offset `PA` (init 1e-6) + a data-dependent
  `C = softmax(theta^T phi / (inter*T))` normalised over dim -2. fc normal(0, sqrt(2/K)).
- `"mmaction2"`: MMAction2's "2s-agcn" configs, `AAGCN(gcn_attention=False)` (the later
  TIP unit): each graph unit learns `A` itself (a Parameter initialised to the normalised
  graph) and adds `alpha * tanh(theta^T phi / (inter*T))`, `alpha` a scalar initialised
  to 0. fc normal(0, 0.01), bias 0 (GCNHead).

Same function and the same parameters as the references (3,469,510 and 3,469,520 for 60
classes, 3 channels, 25 joints), laid out for speed: the three subsets' theta/phi
embeddings are one conv, the graph aggregation is one einsum over all subsets and the
three per-subset output convs are one conv over the stacked subsets (their three biases
are kept, summed in forward, so the parameter count and SGD weight-decay dynamics match).
The graph is `graph.py`; `foreign.py` maps the references' checkpoints onto this layout.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import AgcnError
from ..skeleton.layouts import Layout, resolve_layout
from .choices import VARIANTS
from .graph import adjacency

# (out_channels, temporal stride) of the ten blocks; the first has no residual
STAGES = ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1))
TEMPORAL_KERNEL = 9
EMBED_RATIO = 4  # theta/phi channels = out_channels // 4 in both references


@dataclass(frozen=True)
class ModelConfig:
    layout: str = "ntu25"  # skeleton layout (agcn_cli.skeleton.layouts): joint count and graph edges
    num_classes: int = 60  # classifier outputs
    in_channels: int = 3  # channels per joint: x, y, z (3D) or x, y, score (2D)
    num_persons: int = 2  # M; the data BatchNorm normalises each of M*V*C features separately
    variant: str = "mmaction2"  # "2s-agcn" (CVPR original) or "mmaction2" (AAGCN unit, attention off)
    graph: str | None = None  # the layout's graph variant; None: the one named like `variant`, else the first
    dropout: float = 0.0  # before the classifier (GCNHead's option; 0 in both references)
    layout_spec: str = ""  # the layout's canonical JSON (Layout.spec()); "": the built-in layout `layout`

    def skeleton(self) -> Layout:
        """The layout: from `layout_spec` when stored, else the built-in of that name."""
        return resolve_layout(self.layout, self.layout_spec)

    def graph_name(self) -> str:
        layout = self.skeleton()
        if self.graph is not None:
            layout.edges(self.graph)  # raises with the allowed names
            return self.graph
        return self.variant if self.variant in layout.graphs else next(iter(layout.graphs))

    def check(self) -> None:
        if self.variant not in VARIANTS:
            raise AgcnError(f"unknown model variant {self.variant!r}; choose one of: {', '.join(VARIANTS)}")
        for name in ("num_classes", "in_channels", "num_persons"):
            if getattr(self, name) < 1:
                raise AgcnError(f"model {name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise AgcnError(f"model dropout must be in [0, 1), got {self.dropout}")
        self.graph_name()


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """1x1 conv `(N, C_in, T, V)` -> `(N, C_out, T, V)` as one GEMM per sample.

    On CPU, forward + backward, this is faster than the NCHW 1x1 convolution at 64 channels and
    as fast at 128-256 (BENCHMARKS.md, "The AGCN model"), and needs no memory-format change, so
    the temporal convs keep their fast NCHW path.
    """
    N, C, T, V = x.shape
    w = weight.reshape(weight.shape[0], C)  # (C_out, C_in)
    x3 = x.reshape(N, C, T * V)
    if bias is None:
        y = torch.bmm(w.expand(N, -1, -1), x3)
    else:
        y = torch.baddbmm(bias.view(1, -1, 1), w.expand(N, -1, -1), x3)
    return y.view(N, -1, T, V)


class PointwiseConv(nn.Conv2d):
    """A 1x1 `nn.Conv2d` (same parameters, same init, same state-dict keys) run as a GEMM, with an
    optional temporal stride: `(N, C_in, T, V)` -> `(N, C_out, T/stride, V)`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, 1, stride=(stride, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise(x[:, :, :: self.stride[0]], self.weight, self.bias)


class StackedSubsetConv(nn.Module):
    """The references' K per-subset 1x1 output convs (`conv_d[k]`), stored side by side.

    weight `(C_out, K*C_in, 1, 1)`: the K reference weights concatenated on the input axis;
    bias `(K, C_out)`: the K reference biases, kept apart so that parameter count and SGD
    weight decay match the references (their sum is what is applied).
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.weight = nn.Parameter(torch.empty(out_channels, num_subsets * in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(num_subsets, out_channels))
        # the references' conv_branch_init: normal(0, sqrt(2 / (C_out * C_in * 1 * K)))
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / self.weight.numel()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """`(N, K*C_in, T, V)` -> `(N, C_out, T, V)`."""
        return pointwise(z, self.weight, self.bias.sum(0))


class NoResidual(nn.Module):
    """The first block's residual: none (the references' `lambda x: 0`)."""

    def forward(self, x: torch.Tensor) -> int:
        return 0


class GraphConv(nn.Module):
    """Adaptive graph convolution with 3 subsets: `(N, C_in, T, V)` -> `(N, C_out, T, V)`.

    lshiwjx/2s-AGCN `unit_gcn` (variant "2s-agcn") and MMAction2 `AAGCNBlock`'s `unit_aagcn`
    without attention (variant "mmaction2"): per subset k, the graph `adaptive_adjacency(x)[k]`
    aggregates the joints, `conv_d[k]` mixes channels, the K results are summed, then BatchNorm,
    the unit's own residual `down` and ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, variant: str) -> None:
        super().__init__()
        self.variant = variant
        self.num_subsets = A.shape[0]
        self.inter = out_channels // EMBED_RATIO
        if variant == "2s-agcn":
            self.register_buffer("A", A.clone(), persistent=False)  # fixed graph, set by the config
            self.PA = nn.Parameter(torch.full_like(A, 1e-6))
        else:
            self.A = nn.Parameter(A.clone())
            self.alpha = nn.Parameter(torch.zeros(1))
        # theta_k and phi_k (the references' conv_a[k], conv_b[k]) of all subsets in one conv,
        # output channels ordered (k, theta/phi, i)
        self.embed = PointwiseConv(in_channels, self.num_subsets * 2 * self.inter)
        self.conv_d = StackedSubsetConv(in_channels, out_channels, self.num_subsets)
        self.down: nn.Module = nn.Identity()  # the references' `lambda x: x` where channels agree
        if in_channels != out_channels:
            self.down = nn.Sequential(PointwiseConv(in_channels, out_channels), nn.BatchNorm2d(out_channels))
            nn.init.kaiming_normal_(self.down[0].weight, mode="fan_out")
            nn.init.zeros_(self.down[0].bias)
        self.bn = nn.BatchNorm2d(out_channels)
        # the references' Kaiming fan_out is per subset conv (fan_out = inter), not of the fused conv
        nn.init.normal_(self.embed.weight, 0.0, math.sqrt(2.0 / self.inter))
        nn.init.zeros_(self.embed.bias)
        nn.init.constant_(self.bn.weight, 1e-6)  # both references start each unit close to its residual

    def adaptive_adjacency(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, C, T, V)` -> the per-sample graphs `(N, K, V, V)`."""
        N, C, T, V = x.shape
        K, inter = self.num_subsets, self.inter
        e = self.embed(x).view(N * K, 2, inter * T, V)  # (N*K, 2, inter*T, V)
        theta, phi = e.unbind(1)  # views (N*K, inter*T, V); unbind's backward is one stack, not two zero-fills
        # theta^T phi summed over (inter, T), for every sample and subset at once
        s = torch.bmm(theta.transpose(1, 2), phi).view(N, K, V, V) / (inter * T)  # (N, K, V, V)
        if self.variant == "2s-agcn":
            return s.softmax(dim=-2) + (self.A + self.PA)
        return self.A + self.alpha * torch.tanh(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, T, V = x.shape
        adj = self.adaptive_adjacency(x)
        # all subsets at once: z[n, k, c, t, w] = sum_v x[n, c, t, v] adj[n, k, v, w]
        z = torch.einsum("nctv,nkvw->nkctw", x, adj).reshape(N, self.num_subsets * C, T, V)  # (N, K*C, T, V)
        y = self.bn(self.conv_d(z))
        return F.relu(y + self.down(x), inplace=True)


class TemporalConv(nn.Module):
    """Conv (kernel, 1) over time + BatchNorm: `(N, C_in, T, V)` -> `(N, C_out, T/stride, V)`.

    The references' `unit_tcn`; with kernel 1 it is also the block's projecting residual.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = TEMPORAL_KERNEL, stride: int = 1):
        super().__init__()
        pad = (kernel_size - 1) // 2
        if kernel_size == 1:
            self.conv: nn.Conv2d = PointwiseConv(in_channels, out_channels, stride)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), padding=(pad, 0), stride=(stride, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out")
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Block(nn.Module):
    """GraphConv, TemporalConv, residual, ReLU: `(N, C_in, T, V)` -> `(N, C_out, T/stride, V)`.

    lshiwjx/2s-AGCN `TCN_GCN_unit`; MMAction2 `AAGCNBlock`. The residual is none in the first
    block, the identity where shapes agree, else a strided 1x1 TemporalConv.
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, variant: str, stride: int = 1,
                 residual: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, A, variant)
        self.tcn = TemporalConv(out_channels, out_channels, stride=stride)
        self.residual: nn.Module
        if not residual:
            self.residual = NoResidual()
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = TemporalConv(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.tcn(self.gcn(x)) + self.residual(x), inplace=True)


class AGCN(nn.Module):
    """`(N, C, T, V, M)` -> logits `(N, num_classes)`.

    lshiwjx/2s-AGCN `Model`; MMAction2 `AAGCN` backbone + `GCNHead`: a BatchNorm over the
    persons x joints x channels of the input, ten blocks (STAGES), the mean over time, joints
    and persons, a linear classifier.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        layout = config.skeleton()
        A = adjacency(layout, config.graph_name())
        v, c = layout.num_joints, config.in_channels
        self.num_joints = v
        self.data_bn = nn.BatchNorm1d(config.num_persons * v * c)
        blocks, in_channels = [], c
        for i, (out_channels, stride) in enumerate(STAGES):
            blocks.append(Block(in_channels, out_channels, A, config.variant, stride, residual=i > 0))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.drop = nn.Dropout(config.dropout)
        self.fc = nn.Linear(in_channels, config.num_classes)
        if config.variant == "2s-agcn":
            nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2.0 / config.num_classes))  # bias: PyTorch's default
        else:
            nn.init.normal_(self.fc.weight, 0.0, 0.01)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, T, V, M = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(N, M * V * C, T)  # (N, M*V*C, T), features in the references' order
        x = self.data_bn(x)
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).reshape(N * M, C, T, V)  # (N*M, C, T, V)
        for block in self.blocks:
            x = block(x)
        # x: (N*M, 256, T/4, V); mean over T and V, then over persons
        x = x.view(N, M, x.shape[1], -1).mean(3).mean(1)  # (N, 256)
        return self.fc(self.drop(x))


def person_features(model: AGCN, x: torch.Tensor, slot: int) -> torch.Tensor:
    """(N, C, T, V) the data of one person slot -> (N, 256) that person's pooled features, as
    `AGCN.forward` computes them before its mean over persons. Eval mode only (running BN
    statistics): persons do not mix before that mean, so the logits of a sample are
    `classify(model, mean of its slots' features)`, and an empty slot's features are a constant
    of the clip length (`agcn watch` computes them once instead of once a clip)."""
    if model.training:
        raise RuntimeError("person_features: the model must be in eval mode")
    N, C, T, V = x.shape
    bn, lo, hi = model.data_bn, slot * V * C, (slot + 1) * V * C  # this slot's features of data_bn
    x = x.permute(0, 3, 1, 2).reshape(N, V * C, T)  # (N, V*C, T), the references' order within a slot
    x = F.batch_norm(x, bn.running_mean[lo:hi], bn.running_var[lo:hi], bn.weight[lo:hi], bn.bias[lo:hi],
                     False, 0.0, bn.eps)  # fmt: skip
    x = x.view(N, V, C, T).permute(0, 2, 3, 1).contiguous()  # (N, C, T, V)
    for block in model.blocks:
        x = block(x)
    return x.view(N, x.shape[1], -1).mean(2)  # (N, 256)


def classify(model: AGCN, features: torch.Tensor) -> torch.Tensor:
    """(N, 256) features averaged over persons -> (N, num_classes) logits."""
    return model.fc(model.drop(features))


def build_model(config: ModelConfig) -> AGCN:
    return AGCN(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def measure_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on zeros of `input_shape`, measured.

    Counted by `torch.utils.flop_counter.FlopCounterMode` (convolutions, matmuls, the
    einsum's bmm, the classifier) as FLOPs / 2; BatchNorm, softmax/tanh, ReLU, additions
    and pooling are not counted (under 1% here), as in the published figures.
    """
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters())
    x = torch.zeros(input_shape, dtype=param.dtype, device=param.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def model_summary(config: ModelConfig, clip_len: int = 100) -> dict[str, Any]:
    """Parameters and MACs of one `(1, C, clip_len, V, M)` sample, with the config."""
    model = build_model(config)
    shape = (1, config.in_channels, clip_len, model.num_joints, config.num_persons)
    return {
        **asdict(config),
        "graph": config.graph_name(),
        "params": count_parameters(model),
        "macs": measure_macs(model, shape),
        "input_shape": list(shape),
    }


# ---- checkpoints from the references ------------------------------------------------------
