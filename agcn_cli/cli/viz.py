"""`agcn show` and `agcn plot`: skeleton animations and strips, training curves, per-class bars.

Both need matplotlib (`pip install 'agcn[viz]'`); the library code is in `agcn_cli/viz/`.
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


@command("show")
def show_cmd(
    source: Annotated[Path, typer.Argument(help="A split file (.h5, with --sample) or a raw NTU .skeleton file.")],
    sample: Annotated[str | None, typer.Option("--sample", help="Split files: the sample's name.")] = None,
    index: Annotated[
        int | None, typer.Option("--index", min=0, help="Split files: the sample at this position (0-based), instead.")
    ] = None,
    modality: Annotated[Stream, typer.Option("--modality", help="Split files: the stream drawn.")] = "joint",
    stream: Annotated[Stream | None, typer.Option("--stream", hidden=True, help="Deprecated: --modality.")] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", help="A .gif or .mp4 animation, or a .png strip of evenly spaced frames (default: NAME.gif)."
        ),
    ] = None,
    frames: Annotated[str | None, typer.Option("--frames", help="Frames A:B only (0-based, B excluded).")] = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Every k-th frame.")] = 1,
    compare: Annotated[
        bool, typer.Option("--compare", help=".skeleton files: the bodies as parsed beside what each recipe keeps.")
    ] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw a skeleton sample: an animation (.gif, .mp4) or a strip of frames (.png)."""
    from ..io.atomic import refuse_existing
    from ..viz.figure import ANIMATION_SUFFIXES, IMAGE_SUFFIXES, check_suffix, require_matplotlib
    from ..viz.render import render_scenes, skeleton_scenes, split_scene

    flag = "--modality" if stream is None else "--stream"  # --stream: --modality's old name
    stream = plain(modality if stream is None else stream)
    kind = source.suffix.lower()
    if kind not in (*_SPLITS, ".skeleton"):
        raise AgcnError(f"{source}: expected a split file (.h5) or an NTU .skeleton file")
    if kind == ".skeleton" and (sample is not None or index is not None or stream != "joint"):
        raise AgcnError(
            f"{source}: --sample, --index and {flag} are for split files; a .skeleton file holds one sample"
        )
    if kind != ".skeleton" and compare:
        raise AgcnError(f"{source}: --compare is for raw .skeleton files (the recipes run on them)")
    if kind != ".skeleton" and (sample is None) == (index is None):
        raise AgcnError(f"{source}: which sample? Pass --sample NAME or --index N (one of them)")
    if not source.is_file():
        raise AgcnError(f"{source}: no such file")
    if out_path is not None:
        check_suffix(out_path, ANIMATION_SUFFIXES + IMAGE_SUFFIXES)
        refuse_existing([out_path], overwrite)
    require_matplotlib()
    if flag == "--stream":  # after the checks: a refused command says one line
        note(f"--stream is deprecated: pass --modality {stream}, as agcn train, eval and predict take it")
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


@command("plot")
def plot_cmd(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders of agcn train (curves; a --modality all RUN_DIR gives its streams, a folder of runs "
            "each run in it), or score files of agcn eval (bars)."
        ),
    ],
    out_path: Annotated[
        Path | None, typer.Option("--out", help="A .png, .pdf or .svg file (default: curves.png / class-accuracy.png).")
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Training curves of runs (loss, accuracy, validation top-1/top-5, lr per epoch), overlaid; or
    per-class accuracy bars of score files."""
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
