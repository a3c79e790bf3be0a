"""Checkpoints of the references (lshiwjx/2s-AGCN, MMAction2, pyskl) mapped onto agcn's AGCN."""

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch
import torch.nn as nn

from ..errors import AgcnError
from .agcn import AGCN, ModelConfig, TemporalConv, build_model

FORMATS = ("agcn", "2s-agcn", "mmaction2", "pyskl")


_WRAPPERS = ("state_dict", "model", "model_state_dict")


_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile


_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


_IGNORED = {"mmaction2": {"backbone.A"}, "pyskl": {"backbone.A"}}  # the backbone's copy of the initial graph


def unwrap_state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
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


def checkpoint_variant(fmt: str, state_dict: Mapping[str, Any]) -> str:
    if fmt == "2s-agcn":
        return "2s-agcn"
    if fmt in ("mmaction2", "pyskl"):
        return "mmaction2"
    return "2s-agcn" if any(k.endswith(".gcn.PA") for k in state_dict) else "mmaction2"


Plan = list[tuple[str, tuple[str, ...], Callable[[list[torch.Tensor]], torch.Tensor]]]


def key_plan(model: AGCN, fmt: str) -> Plan:
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
        if isinstance(block.gcn.down, nn.Sequential):  # a projecting unit residual (else the identity)
            plan += [(f"{ours}gcn.down.0.{k}", (f"{g}down.0.{k}",), one) for k in ("weight", "bias")]
            plan += [(f"{ours}gcn.down.1.{k}", (f"{g}down.1.{k}",), one) for k in _BN_KEYS]
        plan += [(f"{ours}gcn.bn.{k}", (f"{g}bn.{k}",), one) for k in _BN_KEYS]
        for part, prefix in (("tcn", t), ("residual", r)):
            if part == "residual" and not isinstance(block.residual, TemporalConv):  # none or the identity
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
    sd = unwrap_state_dict(checkpoint)
    fmt = detect_format(sd)
    variant = checkpoint_variant(fmt, sd)
    if isinstance(target, ModelConfig):
        model = build_model(replace(target, variant=variant))
    else:
        model = target
        if model.config.variant != variant:
            raise AgcnError(
                f"checkpoint ({fmt} format) holds a {variant!r} model; this model is variant "
                f"{model.config.variant!r}. Build it with variant={variant!r}"
            )
    plan = key_plan(model, fmt)
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
