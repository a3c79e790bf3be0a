"""Closed sets of names of the evaluation, declared here rather than in `runs.py` because it
imports torch and h5py: the command line lists and checks these (`agcn --help`) without them.

Each is a tuple of the plain strings the library takes and its outputs hold, and a `StrEnum`
built from it: the type of the command-line option, which Typer checks and lists.
"""

from enum import StrEnum

# which checkpoint of a run `agcn eval RUN_DIR` tests: RUN_DIR/last.pt or best.pt (runs.py)
CHECKPOINTS = ("last", "best")
CheckpointKind = StrEnum("CheckpointKind", {c: c for c in CHECKPOINTS})
