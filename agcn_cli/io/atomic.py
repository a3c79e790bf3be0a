"""Atomic output files: write under a temporary sibling name, rename when complete.

Every file agcn writes goes through here, so an interrupted or failed command never leaves a
half-written output, and a failed --overwrite keeps the old file."""

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import AgcnError


def temp_path(path: Path) -> Path:
    """A hidden sibling name for writing `path` before the final rename."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def refuse_existing(paths: Iterable[Path | None], overwrite: bool) -> None:
    """AgcnError naming the first of `paths` that exists, unless `overwrite`."""
    for path in paths:
        if path is not None and Path(path).is_dir():
            raise AgcnError(f"{path}: is a folder; give a file name to write")
        if path is not None and Path(path).exists() and not overwrite:
            raise AgcnError(f"{path}: already exists; pass --overwrite to replace it")


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path; rename it to `path` only if the block completes.

    The folder is created if needed."""
    if path.is_dir():  # else the rename fails naming the temporary file
        raise AgcnError(f"{path}: is a folder; give a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AgcnError(f"{path}: cannot create its folder ({e.strerror or e})") from None
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
