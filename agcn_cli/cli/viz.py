"""`agcn show` and `agcn plot`: skeleton animations and strips, 2D poses drawn on their video,
training curves, per-class bars, timelines of agcn watch's segments.

Both need matplotlib (`pip install 'agcn[viz]'`), and drawing on a video OpenCV too (the `video`
extra); the library code is in `agcn_cli/viz/`.
"""

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import AgcnError
from ..skeleton.streams import Stream
from .app import command, note, out, progress_bar
from .options import OverwriteOpt, plain

_SPLITS = (".h5", ".hdf5")
_ANNOTATIONS = (".pkl", ".pickle")
_SEGMENTS = (".json", ".csv")  # agcn watch's segments files


@command("show")
def show_cmd(
    source: Annotated[
        Path,
        typer.Argument(
            help="A split file (.h5, with --sample), a raw NTU .skeleton file, or an annotation file (.pkl): 2D "
            "poses (e.g. of agcn extract) drawn on their video, a sample that names no video drawn as skeletons."
        ),
    ],
    sample: Annotated[
        str | None, typer.Option("--sample", help="Split and annotation files: the sample's name.")
    ] = None,
    index: Annotated[
        int | None,
        typer.Option(
            "--index", min=0, help="Split and annotation files: the sample at this position (0-based), instead."
        ),
    ] = None,
    modality: Annotated[Stream, typer.Option("--modality", help="Split files: the stream drawn.")] = "joint",
    stream: Annotated[Stream | None, typer.Option("--stream", hidden=True, help="Deprecated: --modality.")] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="A .gif or .mp4 animation, or a .png strip of evenly spaced frames (default: NAME.gif; "
            "annotation files drawn on their video: NAME.mp4).",
        ),
    ] = None,
    frames: Annotated[str | None, typer.Option("--frames", help="Frames A:B only (0-based, B excluded).")] = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Every k-th frame.")] = 1,
    compare: Annotated[
        bool, typer.Option("--compare", help=".skeleton files: the bodies as parsed beside what each recipe keeps.")
    ] = False,
    video: Annotated[
        Path | None,
        typer.Option("--video", help="Annotation files: the video the poses are of (default: the sample's filename)."),
    ] = None,
    beside: Annotated[
        bool,
        typer.Option(
            "--beside", help="Annotation files: the skeleton on a plain panel right of the video, not over it."
        ),
    ] = False,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score", min=0.0, max=1.0, help="Annotation files: joints scored lower are not drawn (default 0.3)."
        ),
    ] = None,
    segments: Annotated[
        Path | None,
        typer.Option(
            "--segments",
            help="Annotation files: a segments file of agcn watch (.json or .csv) of this file; each person's "
            "current action written by them.",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw a skeleton sample: an animation (.gif, .mp4) or a strip of frames (.png); a sample of a 2D
    annotation file over its video's frames (or beside them), to check an extraction by eye; with
    --segments, what agcn watch recognised each person doing, frame by frame."""
    from ..io.atomic import refuse_existing
    from ..viz.figure import ANIMATION_SUFFIXES, IMAGE_SUFFIXES, check_suffix, require_matplotlib
    from ..viz.overlay import OVERLAY_SUFFIXES
    from ..viz.render import render_scenes, skeleton_scenes, split_scene

    flag = "--modality" if stream is None else "--stream"  # --stream: --modality's old name
    stream = plain(modality if stream is None else stream)
    kind = source.suffix.lower()
    if kind not in (*_SPLITS, ".skeleton", *_ANNOTATIONS):
        raise AgcnError(f"{source}: expected a split file (.h5), an NTU .skeleton file or a 2D annotation file (.pkl)")
    if kind not in _ANNOTATIONS and (video is not None or beside or min_score is not None):
        raise AgcnError(
            f"{source}: --video, --beside and --min-score are for annotation files (.pkl) drawn on their video"
        )
    if kind == ".skeleton" and (sample is not None or index is not None or stream != "joint"):
        raise AgcnError(
            f"{source}: --sample, --index and {flag} are for split files; a .skeleton file holds one sample"
        )
    if kind not in _ANNOTATIONS and segments is not None:
        raise AgcnError(
            f"{source}: --segments is for annotation files (.pkl), whose people agcn watch numbers by keypoint row; "
            f"draw the segments of another input as a timeline: agcn plot {segments}"
        )
    if kind in _ANNOTATIONS and stream != "joint":
        raise AgcnError(f"{source}: {flag} is for split files; an annotation file's poses are drawn on their video")
    if kind != ".skeleton" and compare:
        raise AgcnError(f"{source}: --compare is for raw .skeleton files (the recipes run on them)")
    if kind in _SPLITS and (sample is None) == (index is None):
        raise AgcnError(f"{source}: which sample? Pass --sample NAME or --index N (one of them)")
    if kind in _ANNOTATIONS and sample is not None and index is not None:  # neither: the file's only sample
        raise AgcnError(f"{source}: which sample? Pass --sample NAME or --index N (one of them)")
    if not source.is_file():
        raise AgcnError(f"{source}: no such file")
    if out_path is not None:
        check_suffix(out_path, OVERLAY_SUFFIXES if kind in _ANNOTATIONS else ANIMATION_SUFFIXES + IMAGE_SUFFIXES)
        refuse_existing([out_path], overwrite)
    require_matplotlib()
    if flag == "--stream":  # after the checks: a refused command says one line
        note(f"--stream is deprecated: pass --modality {stream}, as agcn train, eval and predict take it")
    if kind in _ANNOTATIONS:
        which = sample if sample is not None else index
        _show_annotation(source, which, video, out_path, frames, every, min_score, beside, segments, overwrite)
        return
    if kind == ".skeleton":
        scenes, name = skeleton_scenes(source, compare), source.stem + ("-compare" if compare else "")
    else:
        scenes = [split_scene(source, sample if sample is not None else index, stream)]
        name = scenes[0].name + ("" if stream == "joint" else f"-{stream}")
    if out_path is None:
        safe = "".join("_" if c in "/\\" else c for c in name)  # a sample's name may hold a path
        out_path = Path(f"{safe}.gif")
        refuse_existing([out_path], overwrite)
    with progress_bar(None, "drawing", "frame") as bar:
        result = render_scenes(scenes, out_path, frames, every, progress=bar.update)
    what = "strip" if out_path.suffix.lower() in IMAGE_SUFFIXES else "animation"
    out.print(f"wrote {escape(str(result.path))} ({what}, {len(result.frames)} frames)", highlight=False)


def _show_annotation(
    source: Path,
    which: str | int | None,
    video: Path | None,
    out_path: Path | None,
    frames: str | None,
    every: int,
    min_score: float | None,
    beside: bool,
    segments: Path | None,
    overwrite: bool,
) -> None:
    """`agcn show FILE.pkl`, its options checked: one sample's 2D poses drawn on its video, or, when
    it names none, its skeletons drawn as a split file's are."""
    from ..io.atomic import refuse_existing
    from ..viz.overlay import (
        OVERLAY_MIN_SCORE,
        annotation_clip,
        annotation_scene,
        clip_video,
        read_annotation,
        render_overlay,
    )
    from ..viz.render import render_scenes
    from ..viz.timeline import read_segments

    found = None if segments is None else read_segments(segments)  # before the annotation file: smaller
    sample = read_annotation(source, which)
    safe = "".join("_" if c in "/\\" else c for c in sample.name)  # a sample's name may hold a path
    if video is None and sample.video is None:  # nothing to draw on: the skeletons alone
        if beside:
            raise AgcnError(f"{source}: {sample.name}: names no video (no 'filename') for --beside; pass --video PATH")
        scene = annotation_scene(sample, min_score, found)
        if out_path is None:
            out_path = Path(f"{safe}.gif")
            refuse_existing([out_path], overwrite)
        with progress_bar(None, "drawing", "frame") as bar:
            result = render_scenes([scene], out_path, frames, every, progress=bar.update)
        what = "strip" if out_path.suffix.lower() == ".png" else "animation"
        shown = f"{len(result.frames)} frames, no video"
        out.print(f"wrote {escape(str(result.path))} ({what}, {shown})", highlight=False)
        return
    clip = annotation_clip(sample)
    path = clip_video(clip, video)
    if out_path is None:
        out_path = Path(f"{safe}.mp4")
        refuse_existing([out_path], overwrite)
    score = OVERLAY_MIN_SCORE if min_score is None else min_score
    with progress_bar(None, "drawing", "frame") as bar:
        result = render_overlay(clip, path, out_path, frames, every, score, beside, progress=bar.update, note=note,
                                segments=found)  # fmt: skip
    what = {".png": "strip", ".mp4": "video"}.get(out_path.suffix.lower(), "animation")
    shown = f"{len(result.frames)} frames of {path}"
    out.print(f"wrote {escape(str(result.path))} ({what}, {escape(shown)})", highlight=False)


@command("plot")
def plot_cmd(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders of agcn train (curves; a --modality all RUN_DIR gives its streams, a folder of runs "
            "each run in it), score files of agcn eval (bars), or one segments file of agcn watch (.json or .csv: "
            "a timeline)."
        ),
    ],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="A .png, .pdf or .svg file (default: curves.png / class-accuracy.png / SEGMENTS-timeline.png).",
        ),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option("--fps", help="Segments files: the recording's frames per second, for a time axis in seconds."),
    ] = None,
    title: Annotated[
        str | None, typer.Option("--title", help="Segments files: the timeline's title (default: the file's name).")
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Training curves of runs (loss, accuracy, validation top-1/top-5, lr per epoch), overlaid;
    per-class accuracy bars of score files; or the timeline of a segments file of agcn watch (a row
    per person, a bar per recognised action)."""
    segments = [p for p in inputs if p.suffix.lower() in _SEGMENTS and not p.is_dir()]
    if segments and len(inputs) > 1:
        if len(segments) < len(inputs):
            raise AgcnError("give either a segments file (a timeline) or run folders / score files, not both")
        raise AgcnError(f"{segments[1]}: one segments file at a time (a timeline each)")
    if segments:  # before the runs' imports (h5py): a timeline needs neither
        _plot_timeline(segments[0], out_path, fps, title, overwrite)
        return
    if fps is not None or title is not None:
        raise AgcnError("--fps and --title are for a segments file of agcn watch (a timeline), not runs or scores")
    from ..evaluation.runs import find_runs
    from ..io.atomic import refuse_existing
    from ..viz.curves import plot_class_accuracy, plot_runs
    from ..viz.figure import IMAGE_SUFFIXES, check_suffix, require_matplotlib, save_figure

    # a multi-stream RUN_DIR: each stream's run; a folder of runs: each run in it; each run once
    found = {q.resolve(): q for p in inputs for q in find_runs(p)}
    inputs = list(found.values())
    folders = [p.is_dir() for p in inputs]
    if any(folders) and not all(folders):
        raise AgcnError("give either run folders (curves) or score files (bars), not both")
    runs = all(folders)
    out_path = out_path or Path("curves.png" if runs else "class-accuracy.png")
    check_suffix(out_path, IMAGE_SUFFIXES)
    refuse_existing([out_path], overwrite)
    for p in inputs:
        if not p.exists():
            raise AgcnError(f"{p}: no such run folder or score file")
    require_matplotlib()
    fig = plot_runs(inputs, note) if runs else plot_class_accuracy(inputs)
    save_figure(fig, out_path)
    what = ("run" if runs else "score file") + ("" if len(inputs) == 1 else "s")
    out.print(f"wrote {escape(str(out_path))} ({len(inputs)} {what})", highlight=False)


def _plot_timeline(source: Path, out_path: Path | None, fps: float | None, title: str | None, overwrite: bool) -> None:
    """`agcn plot SEGMENTS.json|.csv`: the timeline of a segments file, its options checked."""
    from ..io.atomic import refuse_existing
    from ..viz.figure import IMAGE_SUFFIXES, check_suffix, require_matplotlib
    from ..viz.timeline import draw_timeline, read_segments

    out_path = out_path or Path(f"{source.stem}-timeline.png")  # here, as curves.png is
    check_suffix(out_path, IMAGE_SUFFIXES)
    refuse_existing([out_path], overwrite)
    segments = read_segments(source)  # before matplotlib: a bad file is refused without it
    require_matplotlib()
    draw_timeline(segments, out_path, title, fps)  # checks --fps
    people, bars = len(segments.people), len(segments.segments)
    facts = f"{people} {'person' if people == 1 else 'people'}, {bars} segment{'' if bars == 1 else 's'}"
    out.print(f"wrote {escape(str(out_path))} (timeline of {facts})", highlight=False)
