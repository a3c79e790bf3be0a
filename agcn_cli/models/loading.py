"""Models from checkpoint files: agcn's own, or foreign weights with the facts they lack."""

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import AgcnError
from ..io.checkpoint import CHECKPOINT_VERSION, DataInfo, is_agcn_checkpoint, read_checkpoint
from ..skeleton.layouts import get_layout
from ..skeleton.persons import NUM_PERSONS
from ..skeleton.streams import STREAMS
from .agcn import AGCN, ModelConfig, build_model
from .foreign import load_foreign_state_dict


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
        if ckpt.get("version") != CHECKPOINT_VERSION:
            raise AgcnError(
                f"{path}: checkpoint version {ckpt.get('version')} is not supported (expected {CHECKPOINT_VERSION})"
            )
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


def foreign_facts(
    *,
    num_classes: int | None = None,
    layout: str | None = None,
    modality: str | None = None,
    in_channels: int | None = None,
    recipe: str | None = None,
    clip_len: int | None = None,
    defaults: dict[str, Any] | None = None,
) -> tuple[ModelConfig, DataInfo] | tuple[None, None]:
    """ModelConfig + DataInfo for weights without agcn metadata, from the facts given.

    None when no fact is given (the checkpoint must then describe itself). Facts left out
    come from `defaults` (a split file's attributes: num_classes, layout, recipe,
    benchmark), else layout ntu25, modality joint, the layout's channel count.
    """
    if all(v is None for v in (num_classes, layout, modality, in_channels)):
        return None, None
    defaults = defaults or {}
    layout = layout or defaults.get("layout") or "ntu25"
    lay = get_layout(layout)
    modality = modality or "joint"
    if modality not in STREAMS:
        raise AgcnError(f"--modality: unknown stream {modality!r}; choose one of: {', '.join(STREAMS)}")
    num_classes = num_classes or defaults.get("num_classes")
    if num_classes is None:
        raise AgcnError("weights without agcn metadata need --num-classes (the classifier size, e.g. 60 or 120)")
    in_channels = in_channels or len(lay.channels)
    config = ModelConfig(layout=layout, num_classes=int(num_classes), in_channels=in_channels, num_persons=NUM_PERSONS)
    config.check()
    data = DataInfo(
        modality=modality,
        layout=layout,
        recipe=recipe or defaults.get("recipe") or DataInfo.recipe,
        benchmark=str(defaults.get("benchmark", "")),
        channels=",".join(lay.channels),
        clip_len=clip_len or DataInfo.clip_len,
    )
    return config, data
