"""The `agcn` command line: thin command modules over the library; the only typer/rich users.

Importing this package registers every command on `app`, in the order `agcn --help` lists them.
"""
# ruff: noqa: I001  (the import order is the order of the commands in --help)

from .app import app, main
from . import data, train, evaluate  # noqa: F401  (registers the commands)
from . import export  # noqa: F401  (agcn export)
from . import viz  # noqa: F401  (agcn show, agcn plot)

__all__ = ["app", "main"]
