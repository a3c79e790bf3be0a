"""Graph adjacency, AGCN blocks and the 2s-AGCN model, in two variants.

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
`load_foreign_state_dict` maps the references' checkpoints onto this layout.
"""

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import AgcnError
from .layouts import get_layout

VARIANTS = ("2s-agcn", "mmaction2")
# (out_channels, temporal stride) of the ten blocks; the first has no residual
STAGES = ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1))
TEMPORAL_KERNEL = 9
EMBED_RATIO = 4  # theta/phi channels = out_channels // 4 in both references


@dataclass(frozen=True)
class ModelConfig:
    layout: str = "ntu25"  # skeleton layout (agcn_cli.layouts): joint count and graph edges
    num_classes: int = 60  # classifier outputs
    in_channels: int = 3  # channels per joint: x, y, z (3D) or x, y, score (2D)
    num_persons: int = 2  # M; the data BatchNorm normalises each of M*V*C features separately
    variant: str = "mmaction2"  # "2s-agcn" (CVPR original) or "mmaction2" (AAGCN unit, attention off)
    graph: str | None = None  # the layout's graph variant; None: the one named like `variant`, else the first
    dropout: float = 0.0  # before the classifier (GCNHead's option; 0 in both references)

    def graph_name(self) -> str:
        layout = get_layout(self.layout)
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


def adjacency(layout: str, graph: str | None = None) -> torch.Tensor:
    """(3, V, V) float32: identity, normalised inward, normalised outward.

    `x @ A[k]` aggregates over the first joint axis: `A[k, i, j]` weights joint i's
    features in joint j's output. Each column is divided by its sum (the in-degree of j),
    empty columns stay zero, as in both references' `normalize_digraph`.
    """
    spec = get_layout(layout)
    v = spec.num_joints
    inward = np.array(spec.edges(graph), dtype=np.int64).reshape(-1, 2)  # (child, parent)
    subsets = np.zeros((3, v, v))
    subsets[0] = np.eye(v)
    subsets[1, inward[:, 1], inward[:, 0]] = 1  # "inward" as the references store it: A[parent, child]
    subsets[2, inward[:, 0], inward[:, 1]] = 1  # "outward": A[child, parent]
    degree = subsets.sum(axis=1, keepdims=True)  # (3, 1, V) column sums
    subsets = np.divide(subsets, degree, out=np.zeros_like(subsets), where=degree > 0)
    return torch.from_numpy(subsets.astype(np.float32))


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """1x1 conv `(N, C_in, T, V)` -> `(N, C_out, T, V)` as one GEMM per sample.

    On CPU, forward + backward, this is 1.8x faster than the NCHW 1x1 convolution at 64
    channels and as fast at 128-256 (BENCHMARKS.md), and needs no memory-format change, so
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


class StackedSubsetConv(nn.Module):
    """The K per-subset 1x1 output convs of a graph unit, stored side by side.

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


class GraphConv(nn.Module):
    """Adaptive graph convolution with 3 subsets: `(N, C_in, T, V)` -> `(N, C_out, T, V)`."""

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
        # theta_k and phi_k of all subsets in one conv, output channels ordered (k, theta/phi, i)
        self.embed = nn.Conv2d(in_channels, self.num_subsets * 2 * self.inter, 1)
        self.conv_d = StackedSubsetConv(in_channels, out_channels, self.num_subsets)
        self.down = None
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
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
        e = pointwise(x, self.embed.weight, self.embed.bias).view(N * K, 2, inter * T, V)  # (N*K, 2, inter*T, V)
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
        y = self.conv_d(z)
        y = self.bn(y)
        y = y + (x if self.down is None else self.down[1](pointwise(x, self.down[0].weight, self.down[0].bias)))
        return F.relu(y, inplace=True)


class TemporalConv(nn.Module):
    """Conv (kernel, 1) over time + BatchNorm: `(N, C_in, T, V)` -> `(N, C_out, T/stride, V)`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = TEMPORAL_KERNEL, stride: int = 1):
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.stride = stride
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), padding=(pad, 0), stride=(stride, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out")
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv.kernel_size[0] == 1:
            return self.bn(pointwise(x[:, :, :: self.stride], self.conv.weight, self.conv.bias))
        return self.bn(self.conv(x))


class Block(nn.Module):
    """GraphConv, TemporalConv, residual, ReLU: `(N, C_in, T, V)` -> `(N, C_out, T/stride, V)`."""

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, variant: str, stride: int = 1,
                 residual: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, A, variant)
        self.tcn = TemporalConv(out_channels, out_channels, stride=stride)
        self.has_residual = residual
        self.residual = None  # identity where shapes agree
        if residual and (in_channels != out_channels or stride != 1):
            self.residual = TemporalConv(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x))
        if self.has_residual:
            y = y + (x if self.residual is None else self.residual(x))
        return F.relu(y, inplace=True)


class AGCN(nn.Module):
    """`(N, C, T, V, M)` -> logits `(N, num_classes)`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        layout = get_layout(config.layout)
        A = adjacency(config.layout, config.graph_name())
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

FORMATS = ("agcn", "2s-agcn", "mmaction2", "pyskl")
_WRAPPERS = ("state_dict", "model", "model_state_dict")
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile
_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_IGNORED = {"mmaction2": {"backbone.A"}, "pyskl": {"backbone.A"}}  # the backbone's copy of the initial graph


def _unwrap(checkpoint: Any) -> dict[str, torch.Tensor]:
    sd = checkpoint
    while isinstance(sd, Mapping) and not any(isinstance(v, torch.Tensor) for v in sd.values()):
        inner = next((sd[k] for k in _WRAPPERS if isinstance(sd.get(k), Mapping)), None)
        if inner is None:
            break
        sd = inner
    if not isinstance(sd, Mapping) or not sd:
        raise AgcnError(f"not a model checkpoint: expected a state dict (or one under {', '.join(_WRAPPERS)})")
    out = {}
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def detect_format(state_dict: Mapping[str, Any]) -> str:
    """One of FORMATS from the key names, or AgcnError listing what was found."""
    keys = list(state_dict)
    if any(k.startswith("blocks.") for k in keys):
        return "agcn"
    if any(re.match(r"l\d+\.(gcn1|tcn1)\.", k) for k in keys):
        return "2s-agcn"
    if any(k.startswith("backbone.gcn.") for k in keys):
        if any(k.startswith("cls_head.fc_cls.") for k in keys):
            return "pyskl"
        return "mmaction2"
    if any(k.startswith("backbone.agcn_networks.") for k in keys):
        raise AgcnError("MMAction2 0.x AGCN checkpoints (backbone.agcn_networks.*) are not supported; "
                        "use an MMAction2 1.x 2s-agcn checkpoint (backbone.gcn.*)")  # fmt: skip
    found = _names(keys, 6)
    raise AgcnError(
        "not an AGCN checkpoint: expected agcn keys (blocks.*), lshiwjx/2s-AGCN keys (l1.gcn1.*, data_bn.*, fc.*) "
        f"or MMAction2/pyskl keys (backbone.gcn.*, cls_head.fc.*); found: {found or 'no tensors'}"
    )


def _checkpoint_variant(fmt: str, state_dict: Mapping[str, Any]) -> str:
    if fmt == "2s-agcn":
        return "2s-agcn"
    if fmt in ("mmaction2", "pyskl"):
        return "mmaction2"
    return "2s-agcn" if any(k.endswith(".gcn.PA") for k in state_dict) else "mmaction2"


Plan = list[tuple[str, tuple[str, ...], Callable[[list[torch.Tensor]], torch.Tensor]]]


def _plan(model: AGCN, fmt: str) -> Plan:
    """(our key, source keys, how to combine them) for every entry of `model.state_dict()`."""
    if fmt == "agcn":
        return [(k, (k,), lambda t: t[0]) for k in model.state_dict()]
    one = lambda t: t[0]  # noqa: E731
    if fmt == "2s-agcn":
        data_bn, head = "data_bn.", "fc."
        gcn, tcn, res = "l{i}.gcn1.", "l{i}.tcn1.", "l{i}.residual."
        first = 1
    else:
        data_bn, head = "backbone.data_bn.", "cls_head.fc_cls." if fmt == "pyskl" else "cls_head.fc."
        gcn, tcn, res = "backbone.gcn.{i}.gcn.", "backbone.gcn.{i}.tcn.", "backbone.gcn.{i}.residual."
        first = 0
    plan: Plan = [(f"data_bn.{k}", (data_bn + k,), one) for k in _BN_KEYS]
    for i, block in enumerate(model.blocks):
        g, t, r = (p.format(i=i + first) for p in (gcn, tcn, res))
        ours = f"blocks.{i}."
        subsets = range(block.gcn.num_subsets)
        for name in ("PA",) if block.gcn.variant == "2s-agcn" else ("A", "alpha"):
            plan.append((f"{ours}gcn.{name}", (g + name,), one))
        for kind in ("weight", "bias"):
            src = tuple(f"{g}conv_{ab}.{k}.{kind}" for k in subsets for ab in "ab")
            plan.append((f"{ours}gcn.embed.{kind}", src, torch.cat))
        src = tuple(f"{g}conv_d.{k}.weight" for k in subsets)
        plan.append((f"{ours}gcn.conv_d.weight", src, lambda ts: torch.cat(ts, dim=1)))
        src = tuple(f"{g}conv_d.{k}.bias" for k in subsets)
        plan.append((f"{ours}gcn.conv_d.bias", src, torch.stack))
        if block.gcn.down is not None:
            plan += [(f"{ours}gcn.down.0.{k}", (f"{g}down.0.{k}",), one) for k in ("weight", "bias")]
            plan += [(f"{ours}gcn.down.1.{k}", (f"{g}down.1.{k}",), one) for k in _BN_KEYS]
        plan += [(f"{ours}gcn.bn.{k}", (f"{g}bn.{k}",), one) for k in _BN_KEYS]
        for part, prefix in (("tcn", t), ("residual", r)):
            if part == "residual" and block.residual is None:
                continue
            plan += [(f"{ours}{part}.conv.{k}", (f"{prefix}conv.{k}",), one) for k in ("weight", "bias")]
            plan += [(f"{ours}{part}.bn.{k}", (f"{prefix}bn.{k}",), one) for k in _BN_KEYS]
    plan += [(f"fc.{k}", (head + k,), one) for k in ("weight", "bias")]
    return plan


def _names(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def _check_shapes(model: AGCN, sd: Mapping[str, torch.Tensor], plan: Plan) -> None:
    """Class count and joint count first, in words; the plan's keys are all present."""
    src = {ours: keys[0] for ours, keys, _ in plan}
    classes = sd[src["fc.weight"]].shape[0]
    if classes != model.config.num_classes:
        raise AgcnError(f"checkpoint has {classes} classes, model expects {model.config.num_classes}")
    graph_key = src.get("blocks.0.gcn.PA") or src["blocks.0.gcn.A"]
    joints = sd[graph_key].shape[-1]
    if joints != model.num_joints:
        raise AgcnError(
            f"checkpoint has {joints} joints, model expects {model.num_joints} (layout {model.config.layout})"
        )
    data_bn = sd[src["data_bn.weight"]].shape[0]
    if data_bn != model.data_bn.num_features:
        m, c = model.config.num_persons, model.config.in_channels
        raise AgcnError(
            f"checkpoint normalises {data_bn} input features (persons x joints x channels), model expects "
            f"{model.data_bn.num_features} = {m} x {model.num_joints} x {c}"
        )


def load_foreign_state_dict(target: AGCN | ModelConfig, checkpoint: Mapping[str, Any]) -> tuple[AGCN, str]:
    """Load this project's, lshiwjx/2s-AGCN's, MMAction2's or pyskl's weights into an AGCN.

    The format is detected from the key names (see FORMATS); `{"state_dict": ...}` /
    `{"model": ...}` wrappers and `module.` / `_orig_mod.` prefixes are accepted. Given a
    config, the model is built with the variant the checkpoint implies (its graph unit
    decides it); given a model, a different variant is an error. Per-subset convs are
    concatenated into the fused ones. Returns the model and the detected format; raises
    AgcnError naming missing/unexpected keys, or a class, joint or channel mismatch.
    """
    sd = _unwrap(checkpoint)
    fmt = detect_format(sd)
    variant = _checkpoint_variant(fmt, sd)
    if isinstance(target, ModelConfig):
        model = build_model(replace(target, variant=variant))
    else:
        model = target
        if model.config.variant != variant:
            raise AgcnError(
                f"checkpoint ({fmt} format) holds a {variant!r} model; this model is variant "
                f"{model.config.variant!r}. Build it with variant={variant!r}"
            )
    plan = _plan(model, fmt)
    # num_batches_tracked is absent from checkpoints saved before torch 0.4.1
    optional = {k for _, keys, _ in plan for k in keys if k.endswith("num_batches_tracked")}
    needed = [k for _, keys, _ in plan for k in keys]
    missing = [k for k in needed if k not in sd and k not in optional]
    unexpected = sorted(set(sd) - set(needed) - _IGNORED.get(fmt, set()))
    # shapes of the keys that say what the model is, before key-by-key lists
    if not missing:
        _check_shapes(model, sd, plan)
    if missing or unexpected:
        parts = [f"missing keys: {_names(missing)}"] if missing else []
        parts += [f"unexpected keys: {_names(unexpected)}"] if unexpected else []
        raise AgcnError(f"checkpoint ({fmt} format) does not fit the model: {'; '.join(parts)}")

    own = model.state_dict()
    new, wrong = {}, []
    for ours, keys, combine in plan:
        if not all(k in sd for k in keys):
            continue  # an optional num_batches_tracked: keep the model's
        value = combine([sd[k] for k in keys])
        if value.shape != own[ours].shape:
            wrong.append(f"{keys[0]} {tuple(value.shape)} (expected {tuple(own[ours].shape)})")
        new[ours] = value
    if wrong:
        raise AgcnError(f"checkpoint ({fmt} format) has tensors of the wrong shape: {_names(wrong, 4)}")
    model.load_state_dict(new, strict=False)
    return model, fmt
