"""Samples from any input agcn reads, in memory: what `agcn predict` classifies.

An input is a `.skeleton` file or a folder of them, an MMAction2/pyskl `.pkl` annotation file,
a Kinetics-Skeleton video `.json` file or a folder of them (or the release root holding
`kinetics_train/` and `kinetics_val/`), or a split `.h5` file. Each sample goes through the
per-sample function `agcn preprocess` runs for its format (`ntu_convert.skeleton_sample` with the
recipe asked for, `pkl.convert_annotation`, `kinetics.video_sample`), so it equals what a split
file would store; a split file's samples are read as stored (converted already).

`open_input` reads what an input says about itself (its layout, the samples it holds; a `.pkl`
is loaded whole, as it is one pickle), so that the caller can check the layout against a model
before any sample is converted. `Input.samples()` then yields, one at a time, each `Sample` or a
`SampleFailure` naming a sample that cannot be used: a folder is never held in memory at once.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.splitfile import check_split_file, read_meta, read_samples, split_label_names, split_layout
from ..skeleton.layouts import Layout, get_layout
from ..skeleton.normalize import WindowPad
from ..skeleton.persons import fit_persons
from .extract import EXTRACT_LAYOUT, Item, annotation, item_poses, list_items
from .formats import FILE_FORMATS, VIDEO_FORMAT, detect_input_format
from .kinetics import KINETICS_FOLDERS, KINETICS_LAYOUT, KINETICS_RECIPE, KINETICS_SOURCE, read_video, video_sample
from .ntu import SkeletonError, benchmark_family, parse_name
from .ntu_convert import NTU_LAYOUT, NTU_SOURCE, list_skeleton_files, padded_skeleton_sample
from .pipeline import SampleError, list_files
from .pkl import (
    PKL_RECIPE,
    PKL_SOURCE,
    AnnotationJob,
    annotation_name,
    choose_layout,
    convert_annotation,
    layout_signature,
    load_annotation_file,
)
from .recipes import check_recipe

SPLIT_SUFFIXES = tuple(suffix for suffix, found in FILE_FORMATS.items() if found == "split")
PREDICT_KINDS = {"ntu": "skeleton", "pkl": "pkl", "kinetics": "kinetics", "split": "split"}  # format -> Input.kind
# a video, a folder of videos (or of class folders), an OpenPose folder, an MMPose .json: extracted on the way
VIDEO_KIND = "video"


@dataclass
class Sample:
    name: str
    source: Path  # the file it was read from
    data: np.ndarray  # (M, T, V, C) float32, M = 2 persons (zero-padded), as a split file stores it
    label: int | None  # 0-based true class, when the input says
    pad: WindowPad | None = None  # 2s-agcn NTU samples: how the reference's padded window continues it


@dataclass
class SampleFailure:
    input: str  # the file, and the sample inside a file of many
    error: str  # the problem

    def __str__(self) -> str:
        return f"{self.input}: {self.error}"


def failure_from(where: str, e: AgcnError) -> SampleFailure:
    """A failure from an error whose text may already start with `where` (the .skeleton parser's)."""
    text = str(e)
    return SampleFailure(where, text.removeprefix(f"{where}: "))


def _label(value: object) -> int | None:
    """An integer class label, else None (absent or not a label)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        return None
    return int(value)


@dataclass(frozen=True)
class LabelSpace:
    """What an input's (or a checkpoint's) labels count: a dataset family (`ntu`: NTU action ids,
    `kinetics`, `custom`; "" unknown), the class count and the class names, where known. Two
    spaces that are known to differ make a label of one no truth for the other."""

    family: str = ""
    num_classes: int | None = None
    names: tuple[str, ...] = ()

    def differs(self, other: "LabelSpace") -> bool:
        def known(a, b) -> bool:
            return bool(a) and bool(b)

        return (
            (known(self.family, other.family) and self.family != other.family)
            or (known(self.num_classes, other.num_classes) and self.num_classes != other.num_classes)
            or (known(self.names, other.names) and self.names != other.names)
        )


@dataclass
class Input(ABC):
    """One input, opened: its layout and the samples it holds, not yet converted."""

    path: Path
    kind: str  # skeleton | pkl | kinetics | split
    layout: Layout  # the layout of its samples
    count: int  # samples (and failures) that `samples()` yields
    recipe: str  # the preprocessing recipe its samples follow ("" when unknown)
    source: str  # the source format, as split files name it in their `source` attribute
    label_space: "LabelSpace" = field(default_factory=lambda: LabelSpace())  # what its labels count

    @abstractmethod
    def samples(self) -> Iterator[Sample | SampleFailure]:
        """Each sample of the input converted, or a failure in its place, in order."""


@dataclass
class SkeletonInput(Input):
    files: list[Path] = field(default_factory=list)  # recipe: NTU body selection and normalisation

    def samples(self) -> Iterator[Sample | SampleFailure]:
        for path in self.files:
            try:
                data, _, pad = padded_skeleton_sample(path, self.recipe, self.layout.normalize)
            except SampleError as e:
                yield failure_from(str(path), e)
                continue
            name = path.name.removesuffix(".skeleton")
            try:
                label = parse_name(name).label
            except SkeletonError:  # any file name is fine here; only NTU names tell the action
                label = None
            yield Sample(name, path, data, label, pad)


@dataclass
class PklInput(Input):
    annotations: list = field(default_factory=list)
    signature: tuple = ()  # (channels, has keypoint_score, joints) of the file's samples

    def samples(self) -> Iterator[Sample | SampleFailure]:
        for i, ann in enumerate(self.annotations):
            name = annotation_name(ann)
            if name is None:
                yield SampleFailure(f"{self.path}: annotation #{i}", "not a dict with a frame_dir name")
                continue
            # The label is optional here and only reported: the converter sees a valid stand-in.
            job = AnnotationJob(name, f"{self.path}: {name}", "test", {**ann, "label": 0})
            try:
                converted = convert_annotation(job, self.layout, self.signature, 1)
            except SampleError as e:
                yield SampleFailure(job.where, str(e))
                continue
            yield Sample(name, self.path, converted.sample, _label(ann.get("label")))


@dataclass
class KineticsInput(Input):
    files: list[Path] = field(default_factory=list)

    def samples(self) -> Iterator[Sample | SampleFailure]:
        for path in self.files:
            try:
                video = read_video(path)
                data, _ = video_sample(video)
            except SampleError as e:
                yield SampleFailure(str(path), str(e))
                continue
            yield Sample(path.name.split(".")[0], path, data, _label(video.get("label_index")))


@dataclass
class VideoInput(Input):
    """Videos and pose estimators' per-frame output, extracted as `agcn extract` does (no cache),
    then converted as `agcn preprocess` converts the annotation file it writes."""

    items: list[Item] = field(default_factory=list)
    max_people: int = 2

    def samples(self) -> Iterator[Sample | SampleFailure]:
        sig = layout_signature(self.layout)
        for item in self.items:
            try:
                poses = item_poses(item, self.max_people, 0, lambda event: None)
            except AgcnError as e:
                yield failure_from(str(item.path), e)
                continue
            ann = annotation(item, poses)
            job = AnnotationJob(item.name, str(item.path), "test", {**ann, "label": 0})
            try:
                converted = convert_annotation(job, self.layout, sig, 1)
            except SampleError as e:
                yield SampleFailure(job.where, str(e))
                continue
            yield Sample(item.name, item.path, converted.sample, item.label)


@dataclass
class SplitInput(Input):
    names: list[str] = field(default_factory=list)  # every sample name of the file, in file order
    indices: list[int] = field(default_factory=list)  # the samples yielded

    def samples(self) -> Iterator[Sample | SampleFailure]:
        for i, (data, label, pad) in zip(self.indices, read_samples(self.path, self.indices), strict=True):
            data = fit_persons(data.transpose(3, 1, 2, 0))  # (M, T, V, C)
            yield Sample(self.names[i], self.path, data, _label(label), pad)


def input_kind(path: Path) -> str:
    """skeleton | pkl | kinetics | split: what `agcn predict` reads `path` as (`formats.detect_input_format`);
    AgcnError for anything else."""
    path = Path(path)
    found = detect_input_format(path)
    if found == VIDEO_FORMAT:
        return VIDEO_KIND
    if path.is_dir():
        return "kinetics" if found == "kinetics" else "skeleton"
    if not path.exists():
        raise AgcnError(f"{path}: no such file or folder")
    if found not in PREDICT_KINDS:
        raise AgcnError(
            f"{path}: not an input agcn reads; expected a .skeleton, .pkl (MMAction2/pyskl), .json "
            "(Kinetics-Skeleton) or .h5 (split) file, a video, or a folder of .skeleton, .json or video files"
        )
    return PREDICT_KINDS[found]


def open_input(
    path: Path, *, recipe: str = "mmaction2", layout: Layout | None = None, names: Sequence[str] | None = None
) -> Input:
    """Open `path` (AgcnError naming it when it cannot be read).

    `recipe`: the NTU recipe for `.skeleton` input. `layout`: the layout the caller expects (a
    model's); a `.pkl` whose keypoints fit it is read in it, which lets a custom layout read a
    pyskl file. `names`: for a split file, the samples to yield, in file order (None: all; names
    it lacks are left out, see `SplitInput.names`).
    """
    path = Path(path)
    kind = input_kind(path)
    if kind == VIDEO_KIND:
        items, names, _ = list_items([path])
        space = LabelSpace("custom", len(names), names) if names else LabelSpace()
        return VideoInput(path, kind, get_layout(EXTRACT_LAYOUT), len(items), PKL_RECIPE, PKL_SOURCE, space,
                          items=items)  # fmt: skip
    if kind == "skeleton":
        files = list_skeleton_files(path) if path.is_dir() else [path]
        return SkeletonInput(
            path, kind, get_layout(NTU_LAYOUT), len(files), check_recipe(recipe), NTU_SOURCE, LabelSpace("ntu"),
            files=files,
        )  # fmt: skip
    if kind == "kinetics":
        files = _kinetics_files(path) if path.is_dir() else [path]
        return KineticsInput(
            path, kind, get_layout(KINETICS_LAYOUT), len(files), KINETICS_RECIPE, KINETICS_SOURCE,
            LabelSpace("kinetics"), files=files,
        )  # fmt: skip
    if kind == "pkl":
        annotations = load_annotation_file(path)["annotations"]
        if not annotations:
            raise AgcnError(f"{path}: the annotation file holds no sample")
        try:  # the built-in layout most samples fit; else (a custom skeleton) the layout expected
            detected, sig = choose_layout(path, annotations)
        except AgcnError:
            if layout is None:
                raise
            detected, sig = choose_layout(path, annotations, (layout, layout_signature(layout)))
        native = layout if layout is not None and layout_signature(layout) == sig else detected
        return PklInput(
            path, kind, native, len(annotations), PKL_RECIPE, PKL_SOURCE, annotations=list(annotations), signature=sig
        )
    attrs = check_split_file(path)
    all_names = list(read_meta(path, ("name",), check=False)["name"])
    where = {n: i for i, n in enumerate(all_names)}
    indices = list(range(len(all_names))) if names is None else sorted({where[n] for n in names if n in where})
    native = split_layout(attrs, path)
    channels = str(attrs.get("channels", ",".join(native.channels)))
    if channels != ",".join(native.channels):
        raise AgcnError(f"{path}: channels {channels!r} do not match its layout, {describe_layout(native)}")
    recipe, source = str(attrs.get("recipe", "")), str(attrs.get("source", ""))
    k = int(attrs["num_classes"])
    space = LabelSpace(benchmark_family(str(attrs.get("benchmark", "")), k), k, split_label_names(attrs, path))
    return SplitInput(path, kind, native, len(indices), recipe, source, space, names=all_names, indices=indices)


def _kinetics_files(folder: Path) -> list[Path]:
    """The video files of a Kinetics-Skeleton folder, or of both folders of the release root."""
    folders = [folder / f for f in KINETICS_FOLDERS.values() if (folder / f).is_dir()] or [folder]
    files = [p for d in folders for p in list_files(d, ".json", " (Kinetics-Skeleton video files)")]
    files = [p for p in files if not p.name.endswith("_label.json")]
    if not files:
        raise AgcnError(f"{folder}: no Kinetics-Skeleton video files (.json) found")
    return files


def describe_layout(layout: Layout) -> str:
    """`coco17 (17 joints: x, y, score)`."""
    return f"{layout.name} ({layout.num_joints} joints: {', '.join(layout.channels)})"


def check_layout(inp: Input, layout: Layout, owner: str) -> None:
    """AgcnError naming the input and `owner` (e.g. the checkpoint) when the input's samples are
    not in `layout`."""
    if not inp.layout.same_topology(layout):
        read_as = " (.json inputs are read as Kinetics-Skeleton videos)" if inp.kind == "kinetics" else ""
        raise AgcnError(
            f"{inp.path}: holds {describe_layout(inp.layout)} skeletons{read_as}, but {owner} is for "
            f"{describe_layout(layout)}"
        )


def iter_samples(
    path: Path, *, layout: Layout, recipe: str = "mmaction2", names: Sequence[str] | None = None,
    owner: str = "the model",
) -> Iterator[Sample | SampleFailure]:  # fmt: skip
    """The samples of one input (see `open_input`); AgcnError when they are not in `layout`, the
    layout of `owner`. An input that cannot be opened is one failure."""
    try:
        inp = open_input(path, recipe=recipe, layout=layout, names=names)
    except AgcnError as e:
        yield failure_from(str(path), e)
        return
    check_layout(inp, layout, owner)
    yield from inp.samples()
