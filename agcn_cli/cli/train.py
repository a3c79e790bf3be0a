"""`agcn model-info` and `agcn train`."""

import inspect
import json
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import Field, fields
from pathlib import Path
from typing import Annotated, Any, get_args, get_type_hints

import typer

from ..engine.config import TrainConfig  # no torch: `agcn --help` stays instant
from ..models.choices import Variant
from .app import command, err, out
from .options import LAYOUT_NAMES, JsonOpt, plain


@command("model-info")
def model_info(
    layout: Annotated[str, typer.Option(help=f"Skeleton layout: {LAYOUT_NAMES}, or a .json layout file")] = "ntu25",
    num_classes: Annotated[int, typer.Option(min=1, help="Classifier outputs.")] = 60,
    in_channels: Annotated[int | None, typer.Option(min=1, help="Channels per joint (default: the layout's).")] = None,
    variant: Annotated[
        Variant, typer.Option(help="The AGCN: mmaction2 is the AAGCN unit, 2s-agcn the CVPR original.")
    ] = "mmaction2",
    clip_len: Annotated[int, typer.Option(min=1, help="Frames of the clip the MACs are measured on.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Parameters and MACs of the AGCN model, measured on one 2-person clip."""
    from ..models.agcn import ModelConfig, model_summary
    from ..skeleton.layouts import load_layout

    lay = load_layout(layout)
    config = ModelConfig(
        lay.name, num_classes, in_channels or len(lay.channels), variant=plain(variant), layout_spec=lay.spec()
    )
    summary = model_summary(config, clip_len)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(
        f"AGCN ({summary['variant']} variant, layout {lay.name}, graph {summary['graph']}): "
        f"{summary['params']:,} parameters, {summary['macs'] / 1e9:.2f} GMACs per clip "
        f"of shape {tuple(summary['input_shape'])} (N, C, T, V, M)"
    )


# `agcn train`'s options are TrainConfig's fields: the name, type, help and default come from there.
# These are the fields the command line spells otherwise than `--name VALUE` / `--name/--no-name`.
_ARGUMENT = "data"  # the positional DATA
_DECLS = {"out": ("--out", "-o"), "resume": ("--resume",), "overwrite": ("--overwrite",)}
_PATHS = {"data", "out", "val"}  # typed Path on the command line, kept as str in the config
_METAVARS = {"out": "RUN_DIR", "val": "VAL.h5"}
_HINTS = get_type_hints(TrainConfig)  # the fields' types, resolved even from string annotations


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _option_help(f: Field) -> str:
    """The field's help line, with its default (None and "" mean: said in the help, or none)."""
    text = f.metadata["help"]
    return text if f.default in (None, "") else f"{text} Default: {_default_text(f.default)}."


def _train_option(f: Field) -> inspect.Parameter:
    """A keyword parameter `Annotated[T | None, typer.Option(...)] = None` for one config field.

    None means "not given", so that a --config file and, with --resume, the run's config.json
    fill what the flags leave out (engine.config.build_config).
    """
    hint = _HINTS[f.name]
    if f.name in _PATHS:
        kind = Path
    else:  # a closed set's StrEnum (engine/config.py), else the field's type
        kind = f.metadata["choices"] or next(t for t in (*get_args(hint), hint) if t is not types.NoneType)
    if f.name == _ARGUMENT:
        info = typer.Argument(help=_option_help(f), metavar="DATA")
    else:
        flag = "--" + f.name.replace("_", "-")
        decls = _DECLS.get(f.name) or ((f"{flag}/--no-{flag[2:]}",) if kind is bool else (flag,))
        # a closed set: its values are in the help line; a name keeps the type column narrow
        metavar = _METAVARS.get(f.name) or (f.name.upper() if f.metadata["choices"] else None)
        info = typer.Option(*decls, help=_option_help(f), metavar=metavar)
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind | None, info]
    )


def train_cmd(
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML (or JSON) file of these options; flags override it.")
    ] = None,
    as_json: JsonOpt = False,
    **flags: Any,
) -> None:
    """Train 2s-AGCN on one stream, or several together (MMAction2 recipe defaults); DDP under torchrun."""
    from ..engine.config import build_config
    from ..engine.fit import fit
    from ..engine.rundir import summary_line

    flags = {k: str(v) if isinstance(v, Path) else plain(v) for k, v in flags.items()}  # as config.json holds them
    config = build_config(flags, config_file)
    bars = {"progress": _epoch_bar} if sys.stderr.isatty() else {}  # on a terminal only: not in a pipe or a file
    summary = fit(config, log=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True), **bars)
    if summary["rank"] == 0:  # under torchrun, rank 0 reports
        if as_json:  # accuracies as fractions (data_specs/outputs.md)
            out.print_json(json.dumps(summary))
        else:  # the line train.log ends with, too (one a stream)
            for one in summary.get("streams", {"": summary}).values():
                out.print(summary_line(one), markup=False)
    if summary["interrupted"]:
        raise typer.Exit(130 if summary["interrupted"] == "SIGINT" else 143)


@contextmanager
def _epoch_bar(total: int, done: int, desc: str) -> Iterator[Callable[..., None]]:
    """One epoch's progress bar on stderr (engine/loop.Progress): batches, and the figures after each step."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, desc=desc, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False)
    with bar:

        def update(**figures: Any) -> None:
            bar.set_postfix(refresh=False, **figures)
            bar.update()

        yield update


def _train_signature() -> inspect.Signature:
    """What Typer reads for `agcn train`: DATA, --out, --config, the other TrainConfig fields, --json."""
    own = inspect.signature(train_cmd).parameters  # --config and --json, declared on the function
    params = [_train_option(f) for f in fields(TrainConfig)]
    at = [p.name for p in params].index("out") + 1
    params.insert(at, own["config_file"].replace(kind=inspect.Parameter.KEYWORD_ONLY))
    params.append(own["as_json"].replace(kind=inspect.Parameter.KEYWORD_ONLY))
    return inspect.Signature(params)


train_cmd.__signature__ = _train_signature()
command("train")(train_cmd)
