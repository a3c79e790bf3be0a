"""The `agcn` command line: thin command modules over the library; the only typer/rich users.

Importing this package registers every command on `app`, in the order `agcn --help` lists them.
"""
# ruff: noqa: I001  (the import order is the order of the commands in --help)

from .app import app, main
from . import extract, data, train  # noqa: F401  (registers the commands: extract; synth, preprocess, info, streams; model-info, train)
from . import evaluate, fuse, predict, watch, export  # noqa: F401  (eval, fuse, predict, watch, export)
from . import viz  # noqa: F401  (show, plot)

__all__ = ["app", "main"]
