"""The source formats `agcn preprocess` reads, and the one entry that converts any of them.

- `ntu`: a folder of NTU RGB+D `.skeleton` files (`ntu_convert`, options in `PreprocessConfig`);
- `pkl`: an MMAction2 / pyskl annotation file (`pkl`, options in `ImportConfig`);
- `kinetics`: a Kinetics-Skeleton folder of per-video JSON files (`kinetics`, `ImportConfig`);
- `npy`: the arrays and label pickles of ST-GCN's / 2s-AGCN's gendata scripts (`stgcn_npy`, `ImportConfig`).

A new format is one converter function, `(config, progress) -> ConvertReport`, built on
`pipeline` (jobs, a job -> sample function, `write_splits`), plus its entry in `CONVERTERS`
and its rule in `detect_source_format`.
"""

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import AgcnError
from .kinetics import import_kinetics
from .ntu_convert import PreprocessConfig, preprocess
from .pipeline import ConvertReport, ImportConfig
from .pkl import import_pkl
from .stgcn_npy import import_npy, is_npy_joint_file

SOURCE_FORMATS = ("auto", "ntu", "pkl", "kinetics", "npy")
CONVERTERS: dict[str, Callable[..., ConvertReport]] = {
    "ntu": preprocess,
    "pkl": import_pkl,
    "kinetics": import_kinetics,
    "npy": import_npy,
}


def detect_source_format(source: Path, fmt: str = "auto") -> str:
    """`ntu`, `pkl`, `kinetics` or `npy` for `source` (a file or folder); `fmt` other than auto wins."""
    if fmt not in SOURCE_FORMATS:
        raise AgcnError(f"unknown input format {fmt!r}; choose one of: {', '.join(SOURCE_FORMATS)}")
    if fmt != "auto":
        return fmt
    source = Path(source)
    formats = {".pkl": "pkl", ".npy": "npy"}
    if source.is_file():
        return formats.get(source.suffix, "ntu")  # the ntu path names what is wrong
    if not source.is_dir():
        if source.suffix in formats:
            raise AgcnError(f"{source}: no such file")
        return "ntu"
    if (source / "kinetics_train").is_dir() or (source / "kinetics_val").is_dir():
        return "kinetics"
    try:
        with os.scandir(source) as it:
            for entry in it:  # the first telling name decides; no full listing of a large folder
                if entry.name.endswith(".skeleton"):
                    return "ntu"
                if entry.name.endswith(".json") and not entry.name.endswith("_label.json"):
                    return "kinetics"
                if is_npy_joint_file(entry.name):
                    return "npy"
    except OSError as e:
        raise AgcnError(f"{source}: cannot list directory ({e.strerror})") from None
    return "ntu"


def convert(config: PreprocessConfig | ImportConfig, progress: Callable[[int], None] | None = None) -> ConvertReport:
    """Convert the source of `config` into split files; `progress(n)` is called as samples complete.

    A `PreprocessConfig` is NTU `.skeleton` input; an `ImportConfig` is any other format, detected
    from the source unless its `format` names one.
    """
    if isinstance(config, PreprocessConfig):
        return CONVERTERS["ntu"](config, progress)
    fmt = detect_source_format(config.source, config.format)
    if fmt == "ntu":
        raise AgcnError(f"{config.source}: raw NTU .skeleton input takes a PreprocessConfig, not an ImportConfig")
    return CONVERTERS[fmt](config, progress)
