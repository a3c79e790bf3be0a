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

import types
import typing
import zipfile
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import AgcnError
from ..skeleton.layouts import resolve_layout
from ..skeleton.streams import STREAMS
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

    def check(self) -> None:
        """The values' ranges (types are checked by `typed_fields`); errors start with the field."""
        if self.modality not in STREAMS:
            raise AgcnError(f"modality: unknown stream {self.modality!r}; expected one of: {', '.join(STREAMS)}")
        if self.clip_len < 1:
            raise AgcnError(f"clip_len: must be at least 1, got {self.clip_len}")
        if self.test_window < 0:
            raise AgcnError(f"test_window: must be 0 or more, got {self.test_window}")
        if not self.channels or not all(self.channels.split(",")):
            raise AgcnError(f"channels: expected comma-separated channel names, got {self.channels!r}")
        try:
            resolve_layout(self.layout, self.layout_spec)
        except AgcnError as e:
            raise AgcnError(f"layout: {e}") from None


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
    if not is_torch_file(path):
        raise AgcnError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)")
    program = _program_kind(path)
    if program:
        raise AgcnError(
            f"{path}: a {program}, not a checkpoint: give the .pt file agcn train wrote (or foreign weights)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise AgcnError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {first[:120]})") from None


def is_torch_file(path: Path) -> bool:
    """Whether `path` is a file that begins as torch.save writes: a zip archive, or a legacy pickle."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head == b"PK" or head[:1] == b"\x80"


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


def check_checkpoint(ckpt: dict[str, Any], path: Path | str) -> None:
    """The entries of an agcn checkpoint that readers use, by type: `model` a state dict of
    tensors, `model_config` and `data` dicts, `epoch` an integer >= 0. Raises `FILE: key: problem`."""
    for key in ("model", "model_config", "data"):
        if key not in ckpt:
            raise AgcnError(f"{path}: {key}: missing from the checkpoint (not written by agcn train?)")
        if not isinstance(ckpt[key], dict):
            raise AgcnError(f"{path}: {key}: expected a dict, got {type(ckpt[key]).__name__}")
    bad = [k for k, v in ckpt["model"].items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        k = bad[0]
        raise AgcnError(f"{path}: model: not a state dict of tensors ({k!r} holds {type(ckpt['model'][k]).__name__})")
    epoch = ckpt.get("epoch", 0)
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0):
        raise AgcnError(f"{path}: epoch: expected an integer >= 0, got {type(epoch).__name__} {epoch!r}")


def typed_fields(cls: type, values: Any, source: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """`values` (a dict read from a file) checked against the dataclass `cls`'s field types: no
    unknown field, the `required` ones (and those without a default) present, each of its annotated
    type (int, float, str, None, tuple[str, ...]; ints are not bools, floats accept ints). Returns
    the values ready for `cls(**...)` (lists of text as tuples). Errors read `SOURCE: field: problem`."""
    if not isinstance(values, dict):
        raise AgcnError(f"{source}: expected a dict, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        raise AgcnError(f"{source}: unknown fields: {', '.join(unknown)}")
    needed = [n for n, f in known.items() if n in required or (f.default is MISSING and f.default_factory is MISSING)]
    missing = [n for n in needed if n not in values]
    if missing:
        raise AgcnError(f"{source}: {missing[0]}: missing")
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        ok, value = _typed(hints[name], value)
        if not ok:
            raise AgcnError(
                f"{source}: {name}: expected {_type_name(hints[name])}, got {type(value).__name__} {value!r:.60}"
            )
        out[name] = value
    return out


def _typed(hint: Any, value: Any) -> tuple[bool, Any]:
    """Whether `value` is of type `hint`, and the value as that type."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for option in args:
            ok, v = _typed(option, value)
            if ok:
                return True, v
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool), float(value) if isinstance(
            value, int | float
        ) else value
    if hint is str:
        return isinstance(value, str), value
    if typing.get_origin(hint) is tuple and args[1:] == (Ellipsis,):
        if isinstance(value, list | tuple) and all(_typed(args[0], v)[0] for v in value):
            return True, tuple(value)
        return False, value
    return False, value


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "None"
    if typing.get_origin(hint) is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    args = typing.get_args(hint)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(hint, str(hint))
