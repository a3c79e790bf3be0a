"""NTU RGB+D `.skeleton` files: parsing, file-name fields, benchmark splits.

The parser walks the file structure (frame, body and joint counts) line by line, which is a
loop over frames and bodies only, and converts all joint lines of a file in one numpy call.
It validates as it goes and raises `SkeletonError` naming the file and line of the problem.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..specs import spec_path

NUM_JOINTS = 25
# ASCII digits only and the whole name (fullmatch): a `\d` would take Unicode digits and a `$`
# a trailing newline, either giving a second name for the same sample.
NAME_RE = re.compile(r"S([0-9]{3})C([0-9]{3})P([0-9]{3})R([0-9]{3})A([0-9]{3})", re.ASCII)
# The values NTU RGB+D 60/120 use: setups 1-32, cameras 1-3, performers 1-106, 2 replications,
# actions 1-120; setups and performers are open upwards (a new recording), the others are not.
NAME_RANGES = {"setup": (1, 999), "camera": (1, 3), "performer": (1, 999), "replication": (1, 2), "action": (1, 120)}
INT64_MAX = np.iinfo(np.int64).max

# Cross-subject training performers (NTU60 list, then the NTU120 additions).
NTU60_XSUB_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89,
    91, 92, 93, 94, 95, 97, 98, 100, 103,
)  # fmt: skip
XVIEW_TRAIN_CAMERAS = (2, 3)
BENCHMARKS = ("ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset")
BenchmarkName = StrEnum("BenchmarkName", {b: b for b in BENCHMARKS})  # the command line's type (--benchmark)
DEFAULT_BENCHMARK = "ntu60-xsub"  # of .skeleton folders and .pkl files


class SkeletonError(AgcnError):
    """A `.skeleton` file that cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class SampleInfo:
    """The fields of an NTU file name `SsssCcccPpppRrrrAaaa`."""

    name: str
    setup: int
    camera: int
    subject: int
    replication: int
    action: int  # 1-based NTU action id

    @property
    def label(self) -> int:
        return self.action - 1


def parse_name(name: str) -> SampleInfo:
    """Fields of a sample name (with or without the `.skeleton` suffix)."""
    stem = name.removesuffix(".skeleton")
    m = NAME_RE.fullmatch(stem)
    shown = name if name.isprintable() else repr(name)  # a newline in a name must not split the error line
    if m is None:
        raise SkeletonError(
            f"{shown}: file name does not follow the NTU convention SsssCcccPpppRrrrAaaa.skeleton (ASCII digits)"
        )
    values = tuple(int(g) for g in m.groups())
    for (field, (lo, hi)), value in zip(NAME_RANGES.items(), values, strict=True):
        if not lo <= value <= hi:
            raise SkeletonError(f"{shown}: {field} {value} is outside {lo}..{hi} (NTU file name SsssCcccPpppRrrrAaaa)")
    return SampleInfo(stem, *values)


@dataclass
class SkeletonFile:
    """What a `.skeleton` file holds, flattened over its body entries.

    A body entry is one body in one frame. `xyz[k]` is the (25, 3) camera-space position of
    entry k, seen in frame `frame[k]` at slot `slot[k]` (its position within that frame's
    body list) with Kinect tracking id `body_id[k]`.
    """

    num_frames: int
    frame: np.ndarray  # (K,) int
    slot: np.ndarray  # (K,) int
    body_id: np.ndarray  # (K,) int64 (read as integers, never through float64)
    xyz: np.ndarray  # (K, 25, 3) float64

    @property
    def bodies_per_frame(self) -> np.ndarray:
        """(F,) int: bodies listed in each frame."""
        return np.bincount(self.frame, minlength=self.num_frames)


def _int_line(lines: list[str], i: int, path: Path, what: str) -> int:
    if i >= len(lines):
        raise SkeletonError(f"{path}: truncated at line {i + 1}: expected {what}")
    try:
        return int(lines[i])
    except ValueError:
        raise SkeletonError(f"{path}: line {i + 1}: expected {what}, found {lines[i].strip()[:40]!r}") from None


def parse_skeleton(path: Path) -> SkeletonFile:
    """Read one `.skeleton` file (CRLF or LF, any whitespace)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SkeletonError(f"{path}: cannot read ({e.strerror})") from None
    if not raw.strip():
        raise SkeletonError(f"{path}: empty file")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise SkeletonError(f"{path}: not a text file (non-ASCII bytes)") from None
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()

    num_frames = _int_line(lines, 0, path, "the number of frames")
    if num_frames < 0:
        raise SkeletonError(f"{path}: line 1: negative frame count {num_frames}")
    frame, slot, body_id, blocks = [], [], [], []  # blocks: first line index of each body's joints
    i = 1
    for f in range(num_frames):
        nb = _int_line(lines, i, path, f"the body count of frame {f + 1}")
        if nb < 0:
            raise SkeletonError(f"{path}: line {i + 1}: negative body count {nb}")
        i += 1
        for b in range(nb):
            if i >= len(lines):
                raise SkeletonError(f"{path}: truncated at line {i + 1}: expected body info of frame {f + 1}")
            info = lines[i].split()
            if len(info) != 10:
                raise SkeletonError(f"{path}: line {i + 1}: body info has {len(info)} values, expected 10")
            try:
                bid = int(info[0])
            except ValueError:
                raise SkeletonError(f"{path}: line {i + 1}: body id {info[0][:30]!r} is not an integer") from None
            if not -INT64_MAX - 1 <= bid <= INT64_MAX:  # Kinect tracking ids fit in 64 bits
                raise SkeletonError(f"{path}: line {i + 1}: body id {info[0][:30]} does not fit in 64 bits")
            body_id.append(bid)
            nj = _int_line(lines, i + 1, path, "the joint count")
            if nj != NUM_JOINTS:
                raise SkeletonError(f"{path}: line {i + 2}: {nj} joints, expected {NUM_JOINTS}")
            if i + 2 + nj > len(lines):
                raise SkeletonError(f"{path}: truncated at line {len(lines) + 1}: body has fewer than {nj} joint lines")
            frame.append(f)
            slot.append(b)
            blocks.append(i + 2)
            i += 2 + nj
    if i != len(lines):
        raise SkeletonError(f"{path}: line {i + 1}: unexpected data after the last frame")

    xyz = _joint_values(lines, blocks, path)
    return SkeletonFile(
        num_frames=num_frames,
        frame=np.asarray(frame, dtype=np.int64),
        slot=np.asarray(slot, dtype=np.int64),
        body_id=np.asarray(body_id, dtype=np.int64),
        xyz=xyz,
    )


def _joint_values(lines: list[str], blocks: list[int], path: Path) -> np.ndarray:
    """x, y, z of every joint line, converted in one call: (K, 25, 3) float64."""
    if not blocks:
        return np.zeros((0, NUM_JOINTS, 3))
    joint_lines = [line for start in blocks for line in lines[start : start + NUM_JOINTS]]
    try:
        xyz = np.loadtxt(joint_lines, usecols=(0, 1, 2), dtype=np.float64, ndmin=2)
    except ValueError:
        _raise_bad_joint_line(lines, blocks, path)
    if not np.isfinite(xyz).all():
        k = int(np.flatnonzero(~np.isfinite(xyz).all(axis=1))[0])
        line_no = blocks[k // NUM_JOINTS] + k % NUM_JOINTS + 1
        raise SkeletonError(f"{path}: line {line_no}: non-finite joint coordinate")
    return xyz.reshape(len(blocks), NUM_JOINTS, 3)


def _raise_bad_joint_line(lines: list[str], blocks: list[int], path: Path):
    # Error path only: find the first joint line that does not hold numbers.
    for start in blocks:
        for i in range(start, start + NUM_JOINTS):
            values = lines[i].split()
            try:
                [float(v) for v in values[:3]]
            except ValueError:
                raise SkeletonError(
                    f"{path}: line {i + 1}: non-numeric joint value in {lines[i].strip()[:60]!r}"
                ) from None
            if len(values) < 3:
                raise SkeletonError(f"{path}: line {i + 1}: joint line has {len(values)} values, expected 12")
    raise SkeletonError(f"{path}: malformed joint lines")


# ---- benchmarks -------------------------------------------------------------------------


@dataclass(frozen=True)
class Benchmark:
    name: str  # e.g. "ntu60-xsub"
    dataset: str  # "ntu60" or "ntu120"
    num_classes: int

    def includes(self, info: SampleInfo) -> bool:
        """Whether the sample belongs to this dataset at all (NTU60: setups 1-17, actions 1-60)."""
        if self.dataset == "ntu60":
            return info.setup <= 17 and info.action <= 60
        return info.action <= 120

    def is_train(self, info: SampleInfo) -> bool:
        protocol = self.name.split("-")[1]
        if protocol == "xsub":
            return info.subject in (NTU60_XSUB_TRAIN if self.dataset == "ntu60" else NTU120_XSUB_TRAIN)
        if protocol == "xview":
            return info.camera in XVIEW_TRAIN_CAMERAS
        return info.setup % 2 == 0  # xset: even setup ids train

    def default_missing_list(self) -> Path:
        return spec_path(f"{self.dataset}_missing.txt")


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise AgcnError(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}")
    dataset = name.split("-")[0]
    return Benchmark(name=name, dataset=dataset, num_classes=60 if dataset == "ntu60" else 120)


def read_name_list(path: Path) -> set[str]:
    """Sample names, one per line (a missing-skeleton list); `.skeleton` suffixes allowed."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise AgcnError(f"{path}: cannot read sample list ({e})") from None
    names = {line.strip().removesuffix(".skeleton") for line in text.splitlines()}
    names.discard("")
    return names


def benchmark_family(benchmark: str, num_classes: int | None = None) -> str:
    """`ntu`, `kinetics`, `custom` or "" (unknown) for a split file's or checkpoint's benchmark; a
    checkpoint that names none (foreign weights) with 60 or 120 classes is taken as NTU's."""
    if benchmark.startswith("ntu"):
        return "ntu"
    if benchmark.startswith("kinetics"):
        return "kinetics"
    if benchmark:
        return "custom"
    return "ntu" if num_classes in (60, 120) else ""
