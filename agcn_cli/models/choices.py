"""The models' closed sets of names, declared here rather than in `agcn.py` and `export.py` because
those import torch: the command line lists and checks these (`agcn --help`) without it.

Each is a tuple of the plain strings that configs, checkpoints and file metadata store, and a
`StrEnum` built from it: the type of the command-line option, which Typer checks and lists.
"""

from enum import StrEnum

# the AGCN's variants (agcn.py): 2s-agcn, the CVPR original's unit; mmaction2, MMAction2's AAGCN unit
VARIANTS = ("2s-agcn", "mmaction2")
Variant = StrEnum("Variant", {v: v for v in VARIANTS})

# the file formats of `agcn export` (export.py)
EXPORT_FORMATS = ("onnx", "torchscript", "exported", "mmaction2")
ExportFormat = StrEnum("ExportFormat", {f: f for f in EXPORT_FORMATS})
