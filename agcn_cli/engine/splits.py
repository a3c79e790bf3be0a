"""The training run's split files: found from a TrainConfig, loaded, checked against each other; the
DataInfo and ModelConfig they imply."""

from collections.abc import Callable
from pathlib import Path

from ..errors import AgcnError
from ..io.checkpoint import DataInfo
from ..io.splitfile import split_label_names
from ..models.agcn import ModelConfig
from ..skeleton.persons import NUM_PERSONS
from .config import TrainConfig
from .data import BatchLoader, SkeletonDataset
from .distributed import Dist


def resolve_splits(config: TrainConfig) -> tuple[Path, Path | None]:
    data = Path(config.data)
    train = data / "train.h5" if data.is_dir() else data
    if data.is_dir() and not train.is_file():
        raise AgcnError(f"{data}: no train.h5 in this folder. Run: agcn preprocess RAW_DIR {data}")
    if config.val is not None:
        return train, Path(config.val)
    test = data / "test.h5"
    return train, test if data.is_dir() and test.is_file() else None


def load_split(path: Path, config: TrainConfig, test_mode: bool, log: Callable[[str], None]) -> SkeletonDataset:
    """The split's stream in memory; derived from joint (with a log line) when not stored."""
    window = config.window if config.sampling == "full" else 0  # 2s-AGCN's whole padded window
    augment = {} if test_mode else {"random_choose": config.random_choose, "random_move": config.random_move}
    ds = SkeletonDataset(path, config.modality, clip_len=config.clip_len, test_mode=test_mode, window=window, **augment)
    if len(ds) == 0:
        raise AgcnError(f"{path}: the split holds no samples; check agcn preprocess's report (agcn info {path})")
    if ds.motion_after_padding:
        log(
            f"{path}: {config.modality} in the 2s-AGCN full window is the motion of the padded window "
            "(its gen_motion_data), derived from joint per batch; a stored motion stream is not read"
        )
    elif ds.derive:
        log(
            f"{path}: no stored {config.modality!r} stream, derived from joint at load time "
            f"(agcn streams {path} would store it)"
        )
    return ds


def build_data(
    config: TrainConfig, ctx: Dist, log: Callable[[str], None]
) -> tuple[BatchLoader, BatchLoader | None, DataInfo, ModelConfig]:
    """(train loader, validation loader or None, DataInfo, ModelConfig) from the split files."""
    train_path, val_path = resolve_splits(config)
    splits = [load_split(train_path, config, False, log)]
    if val_path is not None:
        splits.append(load_split(val_path, config, True, log))
    attrs = splits[0].attrs
    num_classes = config.num_classes or int(attrs["num_classes"])
    layout = splits[0].layout
    label_names = split_label_names(attrs, train_path)
    for ds in splits:
        _check_against_training(ds, splits[0], label_names, num_classes)
    loader = _train_loader(splits[0], config, ctx)
    val_loader = None
    if len(splits) > 1:
        val_loader = BatchLoader(
            splits[1], config.val_batch_size, shuffle=False, rank=ctx.rank, world_size=ctx.world_size
        )
    data = DataInfo(
        modality=config.modality,
        layout=attrs["layout"],
        recipe=attrs["recipe"],
        benchmark=attrs.get("benchmark", ""),
        channels=attrs["channels"],
        clip_len=config.clip_len,
        layout_spec=layout.spec(),
        label_names=label_names,
        test_window=config.window if config.sampling == "full" else 0,
    )
    model_config = ModelConfig(
        layout=data.layout,
        num_classes=num_classes,
        in_channels=len(splits[0].layout.channels),
        num_persons=NUM_PERSONS,
        variant=config.variant,
        dropout=config.dropout,
        layout_spec=layout.spec(),
    )
    return loader, val_loader, data, model_config


def _check_against_training(
    ds: SkeletonDataset, train: SkeletonDataset, label_names: tuple[str, ...], num_classes: int
) -> None:
    """A split that does not fit the training data's layout, channels, class names or class count: refused."""
    attrs, train_path = train.attrs, train.path
    if (ds.attrs["layout"], ds.attrs["channels"]) != (attrs["layout"], attrs["channels"]):
        raise AgcnError(f"{ds.path}: layout/channels differ from those of the training data {train_path}")
    if not ds.layout.same_topology(train.layout):
        raise AgcnError(
            f"{ds.path}: layout {ds.layout.name!r} is not the skeleton of the training data {train_path} "
            f"(same name, different joints, graphs or bones)"
        )
    if split_label_names(ds.attrs, ds.path) not in ((), label_names):
        raise AgcnError(f"{ds.path}: label_names differ from those of the training data {train_path}")
    if int(ds.labels.max()) >= num_classes:
        raise AgcnError(
            f"{ds.path}: label {int(ds.labels.max())} does not fit {num_classes} classes (labels must be "
            f"0..{num_classes - 1}); raise --num-classes, or drop it to use the file's num_classes"
        )


def _train_loader(train: SkeletonDataset, config: TrainConfig, ctx: Dist) -> BatchLoader:
    """The training split's loader, this process's shard; refused when an epoch would hold no batch
    (drop_last with fewer samples than a batch), before RUN_DIR is made."""
    loader = BatchLoader(
        train,
        config.batch_size // ctx.world_size,
        shuffle=True,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        num_workers=config.workers,
        pin_memory=config.pin_memory,
        drop_last=config.drop_last,
    )
    if len(loader) == 0:
        n, ws = len(train), ctx.world_size
        fix = "pass --no-drop-last"
        if n >= ws:
            fix = f"lower --batch-size to at most {n // ws * ws}, or {fix}"
        raise AgcnError(
            f"{train.path}: {n} training sample(s) make no whole batch of {config.batch_size}"
            f"{f' ({loader.batch_size} a process)' if ws > 1 else ''} with --drop-last, so an epoch would "
            f"train on nothing; {fix}"
        )
    return loader
