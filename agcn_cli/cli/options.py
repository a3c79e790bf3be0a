"""The options several commands share, declared once, and `plain`, the library's string of an option.

An option over a closed set of values takes that set's `StrEnum` (declared with the library code
it names: `skeleton/streams.py`, `engine/config.py`, ...): Typer checks the value and lists the
set in `--help`. The library takes, and files store, plain strings: `plain` gives them.
"""

import functools
import inspect
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..engine.config import Device
from ..skeleton.layouts import available_layouts
from ..skeleton.streams import Stream

OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=0, help="Worker processes (0: one per CPU core).")]

# agcn predict and agcn watch: a checkpoint, more to fuse with it, and their weights
CheckpointArg = Annotated[Path, typer.Argument(help="A checkpoint from agcn train.")]
MoreCheckpointsOpt = Annotated[
    list[Path] | None,
    typer.Option("--checkpoint", "-c", help="A further checkpoint (e.g. the bone stream) to fuse with; repeat."),
]
FusionWeightsOpt = Annotated[
    str | None, typer.Option("--weights", help="Comma-separated weight per checkpoint, in order (default: all 1).")
]

# a built-in layout's name (data_specs/layouts/) or a .json layout file: --layout is no closed set
LAYOUT_NAMES = " | ".join(available_layouts())

# agcn eval and agcn predict: how a checkpoint is tested
TestClipsOpt = Annotated[
    int | None,
    typer.Option(
        "--clips",
        min=1,
        help="Test clips per sample. Default: 10 (MMAction2); 1 view of the whole window for a "
        "checkpoint trained on it (2s-AGCN recipe).",
    ),
]
TestClipLenOpt = Annotated[
    int | None, typer.Option("--clip-len", min=1, help="Frames per clip (default: the checkpoint's).")
]
TestBatchOpt = Annotated[
    int, typer.Option("--batch-size", "-b", min=1, help="Samples per forward pass (each with all its clips).")
]
TestDeviceOpt = Annotated[Device, typer.Option("--device", help="Where to run; auto is cuda if available.")]

# what describes weights without agcn metadata (models.loading.foreign_facts): eval, predict, export
_FOREIGN: dict[str, Any] = {
    "num_classes": Annotated[
        int | None, typer.Option("--num-classes", min=1, help="Foreign weights: classifier size (e.g. 60, 120).")
    ],
    "layout": Annotated[
        str | None,
        typer.Option(
            "--layout",
            help=f"Foreign weights: skeleton layout, {LAYOUT_NAMES} or a .json file (eval: the test file's; "
            "else ntu25).",
        ),
    ],
    "modality": Annotated[Stream | None, typer.Option("--modality", help="Foreign weights: the stream trained on.")],
    "in_channels": Annotated[
        int | None,
        typer.Option("--in-channels", min=1, help="Foreign weights: channels per joint (default: layout's)."),
    ],
}


def plain(value: Any) -> Any:
    """An option's value as the library takes it: a StrEnum member as its plain string; others as they are."""
    return value.value if isinstance(value, Enum) else value


def foreign_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with the foreign-weight options (--num-classes, --layout, --modality, --in-channels)
    in place of its parameter `foreign`, which receives them as `foreign_facts`'s keywords (None: not
    given)."""
    signature = inspect.signature(command)
    params = list(signature.parameters.values())
    at = [p.name for p in params].index("foreign")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params[at : at + 1] = [inspect.Parameter(n, kind, default=None, annotation=a) for n, a in _FOREIGN.items()]

    @functools.wraps(command)
    def with_foreign(**options: Any) -> None:
        foreign = {name: plain(options.pop(name)) for name in _FOREIGN}
        return command(**options, foreign=foreign)

    with_foreign.__signature__ = signature.replace(parameters=params)  # what Typer reads
    return with_foreign
