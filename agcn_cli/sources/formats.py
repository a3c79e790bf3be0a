"""The input formats agcn reads, told apart in one place, and the one entry that converts them.

`detect_input_format` says what a path holds; `agcn preprocess` (`convert`) and `agcn predict`
(`samples.open_input`) both ask it. `convert` turns a `ConvertConfig` into split files through
the converter of its format:
- `ntu`: a folder of NTU RGB+D `.skeleton` files (`ntu_convert`);
- `pkl`: an MMAction2 / pyskl annotation file (`pkl`);
- `kinetics`: a Kinetics-Skeleton folder of per-video JSON files (`kinetics`);
- `npy`: the arrays and label pickles of ST-GCN's / 2s-AGCN's gendata scripts (`stgcn_npy`).
(`split`, an agcn split file, is read by `agcn predict` only.)

A new format is one converter function, `(config, tick) -> ConvertReport`, built on `pipeline`
(jobs, a job -> sample function, `write_splits`), plus its entry in `IMPORTERS` and its rule in
`detect_input_format`.
"""

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import AgcnError
from ..pose.keypoint_json import is_keypoint_input
from ..pose.video import VIDEO_SUFFIXES
from .choices import SOURCE_FORMATS
from .kinetics import KINETICS_FOLDERS, import_kinetics
from .ntu_convert import preprocess_skeletons
from .pipeline import ConvertConfig, ConvertReport, OpenProgress, Tick, ticking
from .pkl import import_pkl
from .stgcn_npy import import_npy, is_npy_joint_file

VIDEO_FORMAT = "video"  # what `agcn extract` reads (videos, OpenPose/MMPose output); preprocess does not
FILE_FORMATS = {".skeleton": "ntu", ".pkl": "pkl", ".json": "kinetics", ".npy": "npy", ".h5": "split", ".hdf5": "split"}
ONE_FILE_SOURCES = ("pkl", "npy")  # the formats `agcn preprocess` converts from a single file
# the formats other than .skeleton folders: they count samples as they convert, with no total
IMPORTERS: dict[str, Callable[[ConvertConfig, Tick | None], ConvertReport]] = {
    "pkl": import_pkl,
    "kinetics": import_kinetics,
    "npy": import_npy,
}


def detect_input_format(path: Path) -> str | None:
    """`ntu`, `pkl`, `kinetics`, `npy`, `split` or `video`: what `path` holds.

    `video` (VIDEO_FORMAT) is what `agcn extract` reads: a video, an OpenPose `--write_json` folder
    or MMPose JSON file (by names and one file's first bytes: `pose/keypoint_json.is_keypoint_input`),
    a folder of videos or of class folders of them. A folder by its entries: `kinetics_train/` or
    `kinetics_val/` make it Kinetics-Skeleton, else the first telling name decides (a `.skeleton`
    file, a video `.json`, a gendata joint array, a video, a subfolder holding videos); `ntu` when
    none tells. Any other path (a file, or nothing yet) by its suffix in any case (`FILE_FORMATS`);
    None for another suffix.
    """
    path = Path(path)
    if not path.is_dir():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return VIDEO_FORMAT
        found = FILE_FORMATS.get(path.suffix.lower())
        return VIDEO_FORMAT if found == "kinetics" and is_keypoint_input(path) else found
    if any((path / folder).is_dir() for folder in KINETICS_FOLDERS.values()):
        return "kinetics"
    if is_keypoint_input(path):
        return VIDEO_FORMAT
    try:
        with os.scandir(path) as it:
            for entry in it:  # the first telling name decides; no full listing of a large folder
                name = entry.name
                if name.endswith(".skeleton"):
                    return "ntu"
                if name.endswith(".json") and not name.endswith("_label.json"):
                    return "kinetics"
                if is_npy_joint_file(name):
                    return "npy"
                if name.lower().endswith(VIDEO_SUFFIXES):
                    return VIDEO_FORMAT
                if not name.startswith(".") and entry.is_dir() and _holds_videos(entry.path):  # class folders
                    return VIDEO_FORMAT
    except OSError as e:
        raise AgcnError(f"{path}: cannot list directory ({e.strerror})") from None
    return "ntu"


def _holds_videos(folder: str) -> bool:
    """A class folder: one whose first video-telling entry is a video."""
    try:
        with os.scandir(folder) as it:
            return any(e.name.lower().endswith(VIDEO_SUFFIXES) for e in it)
    except OSError:
        return False


def source_format(source: Path, fmt: str = "auto") -> str:
    """The format `agcn preprocess` converts `source` as: `fmt`, unless auto, else `detect_input_format`'s.

    A file that is not a `.pkl` or `.npy` (lower case) goes to the `ntu` converter, which names
    what is wrong with it."""
    if fmt not in SOURCE_FORMATS:
        raise AgcnError(f"unknown input format {fmt!r}; choose one of: {', '.join(SOURCE_FORMATS)}")
    if fmt != "auto":
        return fmt
    source = Path(source)
    found = detect_input_format(source)
    if source.is_dir() or found == VIDEO_FORMAT:
        return found
    if found not in ONE_FILE_SOURCES or not source.suffix.islower():
        return "ntu"
    if not source.is_file():
        raise AgcnError(f"{source}: no such file")
    return found


def convert(config: ConvertConfig, progress: OpenProgress | None = None) -> ConvertReport:
    """Convert the source of `config` into split files, in the format `config.format` names or
    the one detected; `progress(total, what, unit)` opens a display that counts inputs as they
    complete (`pipeline.OpenProgress`: the CLI passes its progress bar)."""
    fmt = source_format(config.source, config.format)
    if fmt == VIDEO_FORMAT:
        raise AgcnError(
            f"{config.source}: videos and pose estimators' per-frame output become an annotation file first: "
            f"agcn extract {config.source} --out NAME.pkl, then agcn preprocess NAME.pkl {config.out_dir}"
        )
    if fmt == "ntu":
        return preprocess_skeletons(config, progress)  # opens the progress once the files are listed
    if config.missing_list is not None:
        raise AgcnError(f"--missing-list applies to .skeleton folders, not to {config.source}")
    with ticking(progress, None, "import", "sample") as tick:
        return IMPORTERS[fmt](config, tick)
