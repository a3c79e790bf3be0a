"""The Typer app, its one error handler and the consoles.

Each command (one module per group: `data.py`, `train.py`, `evaluate.py`, `fuse.py`, `predict.py`,
`export.py`, `viz.py`; the options they share in `options.py`) validates its options, calls one
library function and prints a summary. Library errors (`AgcnError`) are printed as one red line
on stderr with exit code 1; `--debug` shows the traceback. Mistakes on the command line are one
such line too, for every command: a value outside an option's closed set (a StrEnum, which Typer
checks) is `error: --device 'gpu': choose one of: auto, cpu, cuda` with exit code 1, as agcn
refuses any bad value; an unknown option, a missing argument or a value of the wrong type keep
click's words and exit code 2. Heavy imports (torch, h5py) happen inside the commands so that
`agcn --help` is instant. `agcn --version` prints the version; `--install-completion` /
`--show-completion` are Typer's shell completion.
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

try:  # recent Typer carries its own click
    from typer._click.exceptions import BadParameter, MissingParameter, UsageError
except ImportError:  # pragma: no cover - Typer on click
    from click.exceptions import BadParameter, MissingParameter, UsageError


class _OneLineErrors:
    """Help that shows a flag as a flag, and command-line mistakes as one `error:` line.

    Flags: Typer 0.29's rich help gives every option a type column, so `--strict <bool>` (and even
    `--help <bool>`) invited `--strict true`, which fails. An empty metavar leaves that column blank
    for flags; options taking a value keep their type (a closed set lists its values there).
    Mistakes: click's usage errors (an unknown option, a missing argument, a bad value), which
    Typer prints in a box under the usage, become the one line of `_usage_error`."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
                param.metavar = ""
        return params

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as e:
            raise _usage_error(e) from None


class _Command(_OneLineErrors, TyperCommand):
    pass


class _Group(_OneLineErrors, TyperGroup):
    def invoke(self, ctx):
        try:  # an unknown command, or none (`agcn --debug`)
            return super().invoke(ctx)
        except UsageError as e:
            raise _usage_error(e) from None


def _usage_error(e: UsageError) -> Exception:
    """Print a command-line mistake as one `error:` line; return the exit to raise (or `e` itself for
    the help that `agcn` alone shows, which click raises as a usage error)."""
    if type(e).__name__ == "NoArgsIsHelpError":
        return e
    choice = _bad_choice(e)
    if choice is not None:
        error_line(choice)
        return typer.Exit(1)
    message = " ".join(e.format_message().split())  # one line: click lists a missing choice's values on several
    if e.ctx is not None:
        message = f"{message.rstrip('.')}; see {e.ctx.command_path} --help"
    error_line(message)
    return typer.Exit(e.exit_code)


def _bad_choice(e: UsageError) -> str | None:
    """`--device 'gpu': choose one of: auto, cpu, cuda` for a value outside an option's StrEnum, else None."""
    param = getattr(e, "param", None)
    desc = getattr(param, "type_descriptor", None)  # Typer's: the option's type, its choices
    if not isinstance(e, BadParameter) or isinstance(e, MissingParameter) or desc is None or not desc.is_choice:
        return None
    found = getattr(e.__cause__, "errors", lambda: [])()  # the validation error Typer raised it from
    value = found[0].get("input") if found else None  # the value given
    if not isinstance(value, str) or not param.opts:
        return None
    option = next((o for o in param.opts if o.startswith("--")), param.opts[0])
    allowed = ", ".join(str(getattr(c, "value", c)) for c in desc.choices)
    return f"{option} {value!r}: choose one of: {allowed}"


def error_line(message: str) -> None:
    """A red `error:` line on stderr; the message is printed as is (brackets in paths kept)."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


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
                error_line(message)
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
