"""The Typer app, its one error handler, the consoles and the options commands share.

Each command (in `data.py`, `train.py`, `evaluate.py`) validates its options, builds a config,
calls one library function and prints a summary. Library errors (`AgcnError`) are printed as
one red line on stderr with exit code 1; `--debug` shows the traceback. Heavy imports (torch,
h5py) happen inside the commands so that `agcn --help` is instant. `agcn --version` prints the
version; `--install-completion` / `--show-completion` are Typer's shell completion.
"""

import functools
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..errors import AgcnError


class _FlagsShownAsFlags:
    """Help that shows a flag as a flag: Typer 0.29's rich help gives every option a type column,
    so `--strict <bool>` (and even `--help <bool>`) invited `--strict true`, which fails. An empty
    metavar leaves that column blank for flags; options taking a value keep their type."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
                param.metavar = ""
        return params


class _Command(_FlagsShownAsFlags, TyperCommand):
    pass


class _Group(_FlagsShownAsFlags, TyperGroup):
    pass


app = typer.Typer(
    name="agcn",
    cls=_Group,
    help="Skeleton-based action recognition with 2s-AGCN: preprocess, streams, train, eval, fuse, predict.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
)
# plain lines are not hard-wrapped, and tables get 120 columns, when output is piped or logged
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)
_state = {"debug": False}

# Options shared across commands.
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=0, help="Worker processes (0: one per CPU core).")]


def command(*args, **kwargs):
    """`app.command` that turns AgcnError (and Ctrl-C) into one line on stderr."""

    def register(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            try:
                return fn(*a, **kw)
            except (AgcnError, OSError, MemoryError) as e:  # OSError: a disk or file-system problem not caught closer
                if _state["debug"]:
                    raise
                if isinstance(e, AgcnError):
                    message = " ".join(str(e).splitlines())  # one line, even when a library's text has several
                elif isinstance(e, MemoryError):  # numpy says how much it wanted; outputs are written atomically
                    message = f"out of memory ({e or 'no details'}); nothing was written. Use smaller sizes"
                else:
                    message = (f"{e.filename}: " if getattr(e, "filename", None) else "") + str(e.strerror or e)
                err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                err.print("[yellow]interrupted[/yellow]; no partial output was kept")
                raise typer.Exit(130) from None

        return app.command(*args, **{"cls": _Command, **kwargs})(wrapper)

    return register


def _print_version(value: bool) -> None:
    if value:
        out.print(f"agcn {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print agcn's version and exit.")
    ] = False,
) -> None:
    _state["debug"] = debug


def note(text: str) -> None:
    """A yellow `note:` line on stderr; the text is printed as is (brackets in paths kept)."""
    err.print(f"[yellow]note:[/yellow] {escape(text)}", highlight=False, soft_wrap=True)


def progress_bar(total: int, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, disable=None)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
