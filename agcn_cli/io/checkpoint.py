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
| `environment`, `resumes` | the run's record: versions, device, command line, git commit (engine/record.py) |
| everything else | training state (optimizer, scheduler, RNG states, train config, metrics) |

Readers use `.get` for every key past `epoch`: files written before a key existed still load.

Foreign checkpoints (lshiwjx/2s-AGCN, MMAction2, pyskl) hold only weights; `load_model`
(models/loading.py) accepts them when the missing facts (classes, layout, modality...) are given.
"""

import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import AgcnError
from .atomic import atomic_output

CHECKPOINT_FORMAT = "agcn-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class DataInfo:
    modality: str = "joint"  # stream the model was trained on: joint, bone, joint-motion, bone-motion
    layout: str = "ntu25"  # skeleton layout of the data
    recipe: str = "mmaction2"  # preprocessing recipe of the training data (used by `agcn predict`)
    benchmark: str = ""  # benchmark of the training data, e.g. ntu60-xsub ("" when unknown)
    channels: str = "x,y,z"  # channel names of the data
    clip_len: int = 100  # frames per clip at training time
    layout_spec: str = ""  # canonical JSON of the layout (Layout.spec()); "" in old files: built-in by name
    label_names: tuple[str, ...] = ()  # class names from the split's --label-map; () when none was given
    test_window: int = 0  # 0: test on uniform clips of clip_len; N: one view of the whole window padded to N frames


def save_checkpoint(path: Path, model: torch.nn.Module, data: DataInfo, epoch: int, **state: Any) -> None:
    """Write atomically: a temporary file in the same folder, then rename. `model` is an AGCN (its
    `config` is stored), or a DDP / compiled wrapper of one."""
    model = getattr(model, "module", model)  # DDP
    model = getattr(model, "_orig_mod", model)  # torch.compile
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
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
    program = _program_kind(path) if head == b"PK" else ""
    if program:
        raise AgcnError(
            f"{path}: a {program}, not a checkpoint: give the .pt file agcn train wrote (or foreign weights)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise AgcnError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {first[:120]})") from None


def _program_kind(path: Path) -> str:
    """The kind of program in a zip that `agcn export` writes (a TorchScript archive, a
    torch.export .pt2), or "" for anything else; torch.load would warn, then fail at length."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return ""  # torch.load reports it
    if any(n.endswith("/constants.pkl") or "/code/__torch__/" in n for n in names):
        return "TorchScript archive"
    if any(n.endswith("/archive_format") or n.endswith("/models/model.json") for n in names):
        return "torch.export program (.pt2)"
    return ""


def is_agcn_checkpoint(ckpt: Any) -> bool:
    return isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT
