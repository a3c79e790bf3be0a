"""The matplotlib plumbing of `agcn show` and `agcn plot`: the optional import, off-screen
figures, output suffixes, atomic writing of images and animations."""

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import AgcnError
from ..io.atomic import atomic_output

VIZ_EXTRA = "pip install 'agcn[viz]'"
IMAGE_SUFFIXES = (".png", ".pdf", ".svg")
ANIMATION_SUFFIXES = (".gif", ".mp4")
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
DPI = 100  # figures are sized in pixels: inches = pixels / DPI


def require_matplotlib() -> ModuleType:
    """matplotlib, or one AgcnError line naming the extra that installs it."""
    try:
        import matplotlib
    except ImportError:
        raise AgcnError(f"drawing needs matplotlib, which is not installed: {VIZ_EXTRA}") from None
    return matplotlib


def new_figure(width_px: int, height_px: int) -> Any:
    """An off-screen (Agg) matplotlib Figure of exactly width_px x height_px pixels; no pyplot state."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def check_suffix(path: Path, allowed: Sequence[str]) -> str:
    """The lower-case suffix of `path`, or an AgcnError listing the allowed ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise AgcnError(f"{path}: unsupported output type {suffix or '(none)'!r}; use one of: {', '.join(allowed)}")
    return suffix


def save_figure(fig: Any, path: Path) -> None:
    """Write a still figure (.png, .pdf or .svg, by suffix) atomically."""
    fmt = check_suffix(path, IMAGE_SUFFIXES)[1:]
    with atomic_output(Path(path)) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI)


def write_animation(fig: Any, frames: Sequence[Any], update: Callable[[Any], None], path: Path, fps: float) -> None:
    """Call `update(frame)` for each frame and grab the figure: a GIF through matplotlib's
    PillowWriter, an MP4 through its FFMpegWriter when ffmpeg is installed. Written atomically."""
    path = Path(path)
    suffix = check_suffix(path, ANIMATION_SUFFIXES)
    from matplotlib import animation

    if suffix == ".mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise AgcnError(f"{path}: writing MP4 needs ffmpeg, which is not installed; write a .gif instead")
        writer = animation.FFMpegWriter(fps=fps)
    else:
        writer = animation.PillowWriter(fps=fps)
    with atomic_output(path) as tmp:
        # the writers choose the file type by the name's suffix: write `tmp` + suffix, then rename it to `tmp`
        scratch = tmp.with_name(tmp.name + suffix)
        try:
            with writer.saving(fig, str(scratch), dpi=DPI):
                for frame in frames:
                    update(frame)
                    writer.grab_frame()
            os.replace(scratch, tmp)
        finally:
            scratch.unlink(missing_ok=True)
