"""Models from checkpoint files: agcn's own, agcn's MMAction2 exports (their metadata read back), or
foreign weights with the facts they lack."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import AgcnError
from ..io.checkpoint import (
    CHECKPOINT_VERSION,
    DataInfo,
    check_checkpoint,
    is_agcn_checkpoint,
    read_checkpoint,
    typed_fields,
)  # fmt: skip
from ..io.splitfile import split_label_names, split_layout
from ..skeleton.layouts import get_layout, load_layout
from ..skeleton.persons import NUM_PERSONS
from ..skeleton.streams import STREAMS
from .agcn import AGCN, ModelConfig, build_model
from .foreign import checkpoint_variant, detect_format, key_plan, load_foreign_state_dict, unwrap_state_dict

# the facts a checkpoint must state; later fields fall back to their defaults (older files lack them)
REQUIRED_FIELDS = {
    "model_config": ("layout", "num_classes", "in_channels", "num_persons"),
    "data": ("modality", "layout"),
}
EXPORT_META = "agcn"  # an agcn export's facts: `meta["agcn"]` beside MMAction2's state_dict (models/export.py)
# the keys of the export's metadata read back, by the dataclass they fill; every agcn export writes
# the required ones, `layout_spec`, `class_names` and `test_window` only where the checkpoint had them
_EXPORT_MODEL = ("layout", "num_classes", "in_channels", "num_persons", "variant", "graph", "layout_spec")
_EXPORT_DATA = ("modality", "layout", "recipe", "benchmark", "channels", "clip_len", "layout_spec", "test_window")
_EXPORT_REQUIRED = ("layout", "num_classes", "in_channels", "num_persons", "variant", "modality", "channels",
                    "clip_len")  # fmt: skip
# the facts for foreign weights that an agcn file states itself, as (flag, ModelConfig/DataInfo field)
_GIVEN_FACTS = (("--num-classes", "num_classes"), ("--layout", "layout"), ("--in-channels", "in_channels"),
                ("--modality", "modality"))  # fmt: skip


def _dataclass_from(cls, values: Any, path: Path, what: str, required: tuple[str, ...] | None = None):
    """`cls` from a checkpoint's dict `what`, checked by type (`typed_fields`) and range (`check()`)."""
    required = REQUIRED_FIELDS[what] if required is None else required
    value = cls(**typed_fields(cls, values, f"{path}: {what}", required))
    try:
        if isinstance(value, ModelConfig):  # DataInfo.check names the layout itself
            try:
                value.skeleton()
            except AgcnError as e:
                raise AgcnError(f"layout: {e}") from None
        value.check()
    except AgcnError as e:
        raise AgcnError(f"{path}: {what}: {e}") from None
    return value


def load_model(
    path: Path,
    *,
    foreign_config: ModelConfig | None = None,
    foreign_data: DataInfo | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[AGCN, DataInfo, dict[str, Any]]:
    """Model (eval mode, CPU), its data facts and the raw checkpoint dict.

    agcn checkpoints describe themselves (`note` is told when foreign facts were given and
    ignored), and so do agcn's MMAction2 exports (`exported_facts`: the facts given must agree
    with theirs). Foreign weights need `foreign_config` (classes, layout, channels, persons; the
    variant is detected from the keys) and `foreign_data` (at least the modality); without
    them they are refused with a message saying so. A stream agcn does not know is refused.
    """
    path = Path(path)
    model, data, ckpt = _load_model(path, foreign_config, foreign_data, note or (lambda _: None))
    if data.modality not in STREAMS:
        raise AgcnError(f"{path}: unknown stream {data.modality!r}; expected one of: {', '.join(STREAMS)}")
    return model, data, ckpt


def _agcn_model(path: Path, ckpt: dict[str, Any]) -> tuple[AGCN, DataInfo]:
    """The model an agcn checkpoint describes, with its weights, and its data facts."""
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise AgcnError(f"{path}: version: {ckpt.get('version')!r} is not supported (expected {CHECKPOINT_VERSION})")
    check_checkpoint(ckpt, path)
    config = _dataclass_from(ModelConfig, ckpt["model_config"], path, "model_config")
    data = _dataclass_from(DataInfo, ckpt["data"], path, "data")
    model = build_model(config)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise AgcnError(f"{path}: weights do not fit the stored model config ({str(e).splitlines()[0]})") from None
    return model, data


def _load_model(
    path: Path, foreign_config: ModelConfig | None, foreign_data: DataInfo | None, note: Callable[[str], None]
) -> tuple[AGCN, DataInfo, dict[str, Any]]:
    ckpt = read_checkpoint(path)
    if is_agcn_checkpoint(ckpt):
        if foreign_config is not None:
            note(f"{path.name} describes itself; the facts given for foreign weights are ignored")
        model, data = _agcn_model(path, ckpt)
        return model.eval(), data, ckpt
    exported = exported_facts(ckpt, path)
    if exported is not None:  # agcn export --format mmaction2: its metadata states the facts
        if foreign_config is not None and foreign_data is not None:
            _check_given(path, *exported, foreign_config, foreign_data)
        foreign_config, foreign_data = exported
    elif foreign_config is None or foreign_data is None:
        raise AgcnError(
            f"{path}: not an agcn checkpoint (no format/model_config); for lshiwjx/2s-AGCN, MMAction2 or pyskl "
            "weights pass --num-classes, --layout and --modality"
        )
    try:
        model, _ = load_foreign_state_dict(foreign_config, ckpt)
    except AgcnError as e:
        raise AgcnError(f"{path}: {e}") from None
    if exported is not None and model.config.variant != foreign_config.variant:
        raise AgcnError(
            f"{path}: meta['{EXPORT_META}']: variant: {foreign_config.variant!r}, but the weights are a "
            f"{model.config.variant!r} model's"
        )
    return model.eval(), foreign_data, ckpt


def exported_facts(ckpt: Any, path: Path) -> tuple[ModelConfig, DataInfo] | None:
    """What an agcn export (`agcn export --format mmaction2`: MMAction2's keys and `meta["agcn"]`)
    states about itself, as the ModelConfig and DataInfo of its checkpoint: classes, layout,
    channels, stream, recipe, clip length, test window, class names. None for weights without
    that metadata. Each value is checked by type and range; a bad one is an AgcnError
    `FILE: meta['agcn']: KEY: problem`."""
    path = Path(path)
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or EXPORT_META not in meta:
        return None
    what = f"meta[{EXPORT_META!r}]"
    info = meta[EXPORT_META]
    if not isinstance(info, dict):
        raise AgcnError(f"{path}: {what}: expected a dict, got {type(info).__name__}")
    missing = [k for k in _EXPORT_REQUIRED if k not in info]
    if missing:
        raise AgcnError(f"{path}: {what}: {missing[0]}: missing (the file was not written by agcn export?)")
    config = _dataclass_from(ModelConfig, {k: info[k] for k in _EXPORT_MODEL if k in info}, path, what, ())
    names = info.get("class_names", [])
    named = isinstance(names, list) and all(isinstance(n, str) for n in names)
    if not named or len(names) not in (0, config.num_classes):
        expected = f"expected a list of {config.num_classes} names"
        raise AgcnError(f"{path}: {what}: class_names: {expected}, got {names!r:.60}")
    values = {k: info[k] for k in _EXPORT_DATA if k in info}
    data = _dataclass_from(DataInfo, {**values, "label_names": names}, path, what, ())
    joints = config.skeleton().num_joints
    if info.get("num_joints", joints) != joints or isinstance(info.get("num_joints"), bool):
        given = info["num_joints"]
        raise AgcnError(f"{path}: {what}: num_joints: {given!r}, but layout {config.layout!r} has {joints}")
    if len(data.channels.split(",")) != config.in_channels:
        raise AgcnError(f"{path}: {what}: channels: {data.channels!r}, but in_channels is {config.in_channels}")
    if data.layout != config.layout:
        raise AgcnError(f"{path}: {what}: layout: {data.layout!r} and {config.layout!r} disagree")
    return config, data


def _check_given(path: Path, config: ModelConfig, data: DataInfo, given: ModelConfig, given_data: DataInfo) -> None:
    """The facts given for foreign weights against those a file states itself: an AgcnError
    naming each one that differs (a flag left out takes its default when others are given)."""
    ours = {**vars(config), "modality": data.modality}
    theirs = {**vars(given), "modality": given_data.modality}
    differ = [f"{flag} {theirs[key]} (the file: {ours[key]})" for flag, key in _GIVEN_FACTS if ours[key] != theirs[key]]
    if not differ and not given.skeleton().same_topology(config.skeleton()):
        differ = [f"--layout {given.layout} (joints, graphs, bones or normalisation differ from the file's)"]
    if differ:
        raise AgcnError(
            f"{path}: written by agcn export, it states its facts, and the ones given differ: {', '.join(differ)}; "
            "drop --num-classes, --layout, --modality and --in-channels (one left out takes its default)"
        )


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
    if layout is not None:  # a built-in name or a .json layout file
        lay = load_layout(layout)
    elif defaults.get("layout"):
        lay = split_layout(defaults, "the split file")
    else:
        lay = get_layout("ntu25")
    layout = lay.name
    modality = modality or "joint"
    if modality not in STREAMS:
        raise AgcnError(f"--modality: unknown stream {modality!r}; choose one of: {', '.join(STREAMS)}")
    num_classes = num_classes or defaults.get("num_classes")
    if num_classes is None:
        raise AgcnError(
            "weights without agcn metadata need --num-classes (the classifier size, e.g. 60 or 120); agcn "
            "checkpoints and agcn's MMAction2 exports state their facts and need none of these flags"
        )
    in_channels = in_channels or len(lay.channels)
    config = ModelConfig(
        layout=layout, num_classes=int(num_classes), in_channels=in_channels, num_persons=NUM_PERSONS,
        layout_spec=lay.spec(),
    )  # fmt: skip
    config.check()
    data = DataInfo(
        modality=modality,
        layout=layout,
        recipe=recipe or defaults.get("recipe") or DataInfo.recipe,
        benchmark=str(defaults.get("benchmark", "")),
        channels=",".join(lay.channels),
        clip_len=clip_len or DataInfo.clip_len,
        layout_spec=lay.spec(),
        label_names=split_label_names(defaults, "the split file"),
    )
    return config, data


# ---- fine-tuning: a checkpoint's weights as the start of a new training run ---------------------

CLASSIFIER = "fc"  # the classifier's module in AGCN; every other parameter is the backbone's


def is_classifier(name: str) -> bool:
    """Whether the parameter or module `name` (of an AGCN) belongs to the classifier."""
    return name.split(".", 1)[0] == CLASSIFIER


@dataclass(frozen=True)
class InitReport:
    """Where a fine-tuning run's weights came from: what `agcn train` records in config.json."""

    path: str  # the checkpoint file, absolute
    sha256: str  # of its bytes
    format: str  # "agcn", or the foreign format: 2s-agcn, mmaction2, pyskl
    source_classes: int  # the checkpoint's classifier size
    classifier: str  # "loaded", or "re-initialised" when the class counts differ
    modality: str | None = None  # agcn checkpoints: the stream, benchmark and epochs they were trained for
    benchmark: str | None = None
    epoch: int | None = None


def init_weights_from(model: AGCN, path: Path, data: DataInfo, note: Callable[[str], None] | None = None) -> InitReport:
    """Load the weights in `path` into `model` (built for the training data `data`) to fine-tune it.

    An agcn checkpoint must have the model's layout, channels, persons, variant and graph.
    Foreign weights (lshiwjx/2s-AGCN, MMAction2, pyskl) take those facts from `model` and
    `data`; the joints, channels per joint, persons and variant their tensors show must agree.
    The backbone is always loaded, the classifier only when the class counts agree; else
    `model`'s own freshly initialised classifier stays and `note` is told. Any other mismatch
    is an AgcnError naming the file and both sides.
    """
    path = Path(path)
    note = note or (lambda _: None)
    ckpt = read_checkpoint(path)
    facts: dict[str, Any] = {}
    if is_agcn_checkpoint(ckpt):
        source, source_data = _agcn_model(path, ckpt)
        _check_fits(path, source.config, source_data, model.config, data)
        fmt = "agcn"
        facts = {"modality": source_data.modality, "benchmark": source_data.benchmark, "epoch": ckpt.get("epoch")}
        if source_data.modality != data.modality:
            note(f"{path.name} was trained on the {source_data.modality} stream; fine-tuning on {data.modality}")
    else:
        source, fmt = _foreign_model(path, ckpt, model)
    weights = source.state_dict()
    classes, ours = source.config.num_classes, model.config.num_classes
    if classes != ours:
        weights = {k: v for k, v in weights.items() if not is_classifier(k)}
        note(
            f"{path.name} has {classes} classes, the data {ours}: the classifier ({CLASSIFIER}) is "
            "re-initialised, the backbone starts from the checkpoint"
        )
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and all(is_classifier(k) for k in missing), (missing, unexpected)  # checked above
    return InitReport(
        path=str(path.resolve()),
        sha256=_sha256(path),
        format=fmt,
        source_classes=classes,
        classifier="loaded" if classes == ours else "re-initialised",
        **facts,
    )


def _check_fits(path: Path, config: ModelConfig, data: DataInfo, target: ModelConfig, target_data: DataInfo) -> None:
    """The checkpoint's model (`config`, `data`) against the one to train: all but the classes must agree."""
    pairs = (
        ("layout", config.layout, target.layout, "data's"),
        ("channels per joint", config.in_channels, target.in_channels, "data's"),
        ("channels", data.channels, target_data.channels, "data's"),
        ("persons per sample", config.num_persons, target.num_persons, "data's"),
        ("variant", config.variant, target.variant, "config's"),
        ("graph", config.graph_name(), target.graph_name(), "config's"),
    )
    for what, theirs, ours, side in pairs:
        if theirs != ours:
            hint = f"; train with --variant {theirs}" if what == "variant" else ""
            raise AgcnError(f"{path}: the checkpoint's {what} is {theirs!r}, the {side} is {ours!r}{hint}")
    if not config.skeleton().same_topology(target.skeleton()):
        raise AgcnError(
            f"{path}: the checkpoint's layout {config.layout!r} is not the data's layout of that name "
            "(joints, graphs, bones or normalisation differ)"
        )


def _foreign_model(path: Path, ckpt: Any, target: AGCN) -> tuple[AGCN, str]:
    """Foreign weights as an AGCN like `target` (but for their own class count), and their format."""
    try:
        sd = unwrap_state_dict(ckpt)
        fmt = detect_format(sd)
    except AgcnError as e:
        raise AgcnError(f"{path}: {e}") from None
    config = target.config
    variant = checkpoint_variant(fmt, sd)
    if variant != config.variant:
        raise AgcnError(
            f"{path}: the checkpoint's variant is {variant!r} ({fmt} weights), the config's is "
            f"{config.variant!r}; train with --variant {variant}"
        )
    # what the tensors say: the first unit's graph (V, V), its first output conv (C_out, C_in, 1, 1),
    # the input BatchNorm (M*V*C) and the classifier (classes, 256)
    src = {ours: keys[0] for ours, keys, _ in key_plan(target, fmt)}
    graph = "blocks.0.gcn.PA" if variant == "2s-agcn" else "blocks.0.gcn.A"
    keys = [src[k] for k in (graph, "blocks.0.gcn.conv_d.weight", "data_bn.weight", "fc.weight")]
    classes = config.num_classes
    if all(k in sd and sd[k].ndim >= 1 for k in keys):  # else the loader names the missing keys
        joints, channels = sd[keys[0]].shape[-1], sd[keys[1]].shape[1]
        persons, classes = sd[keys[2]].shape[0] / (joints * channels), sd[keys[3]].shape[0]
        layout = target.config.layout
        if joints != target.num_joints:
            raise AgcnError(
                f"{path}: the checkpoint's graph has {joints} joints, "
                f"the data's layout {layout!r} has {target.num_joints}"
            )
        if channels != config.in_channels:
            raise AgcnError(
                f"{path}: the checkpoint takes {channels} channels per joint, the data has {config.in_channels}"
            )
        if persons != config.num_persons:
            raise AgcnError(
                f"{path}: the checkpoint's persons per sample is {persons:g}, the data's is {config.num_persons}"
            )
    try:
        source, fmt = load_foreign_state_dict(replace(config, num_classes=int(classes)), ckpt)
    except AgcnError as e:
        raise AgcnError(f"{path}: {e}") from None
    return source, fmt


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
