"""Checkpoints: what `agcn train` writes and `agcn eval` / `agcn predict` read.

An agcn checkpoint is a `torch.save`d dict:

| key | meaning |
|---|---|
| `format` | `"agcn-checkpoint"` |
| `version` | `1` |
| `model` | state dict of the unwrapped model (never the DDP / compiled wrapper) |
| `model_config` | `dataclasses.asdict(ModelConfig)` |
| `data` | `DataInfo` as a dict: modality, layout, recipe, benchmark, channels, clip_len |
| `epoch` | epochs completed |
| everything else | training state (optimizer, scheduler, RNG states, train config, metrics) |

Foreign checkpoints (lshiwjx/2s-AGCN, MMAction2, pyskl) hold only weights; `load_model`
accepts them when the missing facts (classes, layout, modality...) are given.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .errors import AgcnError
from .h5io import atomic_output
from .model import AGCN, ModelConfig, build_model, load_foreign_state_dict
from .streams import STREAMS

FORMAT = "agcn-checkpoint"
VERSION = 1


@dataclass(frozen=True)
class DataInfo:
    modality: str = "joint"  # stream the model was trained on: joint, bone, joint-motion, bone-motion
    layout: str = "ntu25"  # skeleton layout of the data
    recipe: str = "mmaction2"  # preprocessing recipe of the training data (used by `agcn predict`)
    benchmark: str = ""  # benchmark of the training data, e.g. ntu60-xsub ("" when unknown)
    channels: str = "x,y,z"  # channel names of the data
    clip_len: int = 100  # frames per clip at training time


def save_checkpoint(path: Path, model: AGCN, data: DataInfo, epoch: int, **state: Any) -> None:
    """Write atomically: a temporary file in the same folder, then rename."""
    model = getattr(model, "module", model)  # DDP
    model = getattr(model, "_orig_mod", model)  # torch.compile
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.state_dict(),
        "model_config": asdict(model.config),
        "data": asdict(data),
        "epoch": epoch,
        **state,
    }
    with atomic_output(Path(path)) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict, or AgcnError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise AgcnError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"PK" and head[:1] != b"\x80":  # torch.save's zip archive, or a legacy pickle
        raise AgcnError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise AgcnError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {first[:120]})") from None


def is_agcn_checkpoint(ckpt: Any) -> bool:
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def _dataclass_from(cls, values: dict, path: Path, what: str):
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise AgcnError(f"{path}: checkpoint {what} has unknown fields: {', '.join(unknown)}")
    return cls(**values)


def load_model(
    path: Path,
    *,
    foreign_config: ModelConfig | None = None,
    foreign_data: DataInfo | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[AGCN, DataInfo, dict[str, Any]]:
    """Model (eval mode, CPU), its data facts and the raw checkpoint dict.

    agcn checkpoints describe themselves (`note` is told when foreign facts were given and
    ignored). Foreign weights need `foreign_config` (classes, layout, channels, persons; the
    variant is detected from the keys) and `foreign_data` (at least the modality); without
    them they are refused with a message saying so. A stream agcn does not know is refused.
    """
    path = Path(path)
    model, data, ckpt = _load_model(path, foreign_config, foreign_data, note or (lambda _: None))
    if data.modality not in STREAMS:
        raise AgcnError(f"{path}: unknown stream {data.modality!r}; expected one of: {', '.join(STREAMS)}")
    return model, data, ckpt


def _load_model(
    path: Path, foreign_config: ModelConfig | None, foreign_data: DataInfo | None, note: Callable[[str], None]
) -> tuple[AGCN, DataInfo, dict[str, Any]]:
    ckpt = read_checkpoint(path)
    if is_agcn_checkpoint(ckpt):
        if foreign_config is not None:
            note(f"{path.name} describes itself; the facts given for foreign weights are ignored")
        if ckpt.get("version") != VERSION:
            raise AgcnError(f"{path}: checkpoint version {ckpt.get('version')} is not supported (expected {VERSION})")
        config = _dataclass_from(ModelConfig, ckpt["model_config"], path, "model_config")
        data = _dataclass_from(DataInfo, ckpt["data"], path, "data")
        model = build_model(config)
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise AgcnError(f"{path}: weights do not fit the stored model config ({str(e).splitlines()[0]})") from None
        return model.eval(), data, ckpt
    if foreign_config is None or foreign_data is None:
        raise AgcnError(
            f"{path}: not an agcn checkpoint (no format/model_config); for lshiwjx/2s-AGCN, MMAction2 or pyskl "
            "weights pass --num-classes, --layout and --modality"
        )
    try:
        model, _ = load_foreign_state_dict(foreign_config, ckpt)
    except AgcnError as e:
        raise AgcnError(f"{path}: {e}") from None
    return model.eval(), foreign_data, ckpt
