"""Closed sets of names of the inputs, declared here rather than in `formats.py` and `pkl.py`
because those import h5py: the command line lists and checks these (`agcn --help`) without it.
(Benchmarks and recipes are declared in `ntu.py` and `recipes.py`, which import numpy only.)

Each is a tuple of the plain strings the converters take and split files store, and a `StrEnum`
built from it: the type of the command-line option, which Typer checks and lists.
"""

from enum import StrEnum

# what `agcn preprocess --format` converts (formats.py); auto: told from the input
SOURCE_FORMATS = ("auto", "ntu", "pkl", "kinetics", "npy")
InputFormat = StrEnum("InputFormat", {f: f for f in SOURCE_FORMATS})

# the split a one-split .pkl or a single Kinetics folder holds (--split)
SPLITS = ("train", "test")
Split = StrEnum("Split", {s: s for s in SPLITS})
