"""`agcn extract`: videos, or OpenPose/MMPose per-frame output, to an MMAction2/pyskl 2D annotation file."""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .app import command, note, out
from .options import JsonOpt, OverwriteOpt, WorkersOpt


class _Bars:
    """A tqdm bar per input being extracted (frames, fps) under one bar of inputs done."""

    def __init__(self):
        from tqdm import tqdm

        self._tqdm = tqdm
        self.inputs = tqdm(total=None, desc="inputs", unit="input", file=sys.stderr, dynamic_ncols=True,
                           disable=None, position=0)  # fmt: skip
        self.bars: dict[str, object] = {}

    def listed(self, count: int) -> None:
        self.inputs.total = count
        self.inputs.refresh()

    def started(self, item, frames: int) -> None:
        self.bars[item.name] = self._tqdm(total=frames or None, desc=item.name[-30:], unit="frame", leave=False,
                                          file=sys.stderr, dynamic_ncols=True, disable=None)  # fmt: skip

    def advanced(self, item, frames: int) -> None:
        bar = self.bars.get(item.name)
        if bar is not None:
            if bar.total is not None and bar.n + frames > bar.total:
                bar.total = bar.n + frames  # the container's frame count is an estimate
            bar.update(frames)

    def finished(self, outcome) -> None:
        bar = self.bars.pop(outcome.item.name, None)
        if bar is not None:
            bar.close()
        if outcome.error:  # said as it happens, above the bars
            self._tqdm.write(f"failed: {outcome.error}", file=sys.stderr)
        self.inputs.update(1)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.inputs.close()


@command("extract")
def extract_cmd(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Videos, folders of videos, a folder with one subfolder of videos per class, OpenPose --write_json "
            "folders or MMPose JSON predictions."
        ),
    ],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The annotation file to write (NAME.pkl).")],
    val_fraction: Annotated[
        float,
        typer.Option(
            help="Class folders: the share of each class's videos put in split 'val' (the rest 'train').",
            min=0.0,
            max=0.99,
        ),
    ] = 0.0,  # fmt: skip
    max_people: Annotated[
        int, typer.Option(min=1, max=1000, help="OpenPose/MMPose input: the people (tracks) kept per video.")
    ] = 2,
    cache: Annotated[
        Path | None, typer.Option(help="Cache of finished inputs (default: OUT.pkl.cache beside the output).")
    ] = None,
    workers: WorkersOpt = 0,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Turn videos into the 2D skeleton annotation file MMAction2 and pyskl use (COCO-17 keypoints).

    Videos run through MediaPipe's BlazePose (the video extra), which follows ONE person a video: the
    most prominent one, kept from frame to frame. For scenes with several people, run OpenPose or
    MMPose and pass their per-frame output: each person is tracked and becomes one track. Class
    folders (clips/drink/*.mp4, clips/sit/*.mp4) give labels and a label map; a re-run extracts only
    new or changed files. Next: agcn preprocess OUT.pkl DATA_DIR.
    """
    from ..sources.extract import ExtractConfig, extract

    config = ExtractConfig(list(inputs), out_path, val_fraction, max_people, cache, workers, overwrite)
    bars = _Bars()
    try:
        report = extract(config, _progress(bars))
    finally:
        bars.close()
    for path, reason in report.skipped:
        note(f"{path}: skipped, {reason}")
    for outcome in report.done:
        for text in outcome.poses.notes:
            note(f"{outcome.item.path}: {text}")
    if as_json:
        out.print_json(json.dumps(_summary(report)))
        return
    frames = sum(o.poses.frames for o in report.done)
    fresh = [o for o in report.done if not o.cached]
    speed = sum(o.poses.frames for o in fresh) / report.seconds if fresh and report.seconds else 0
    out.print(
        f"wrote {escape(str(report.out))}: {len(report.done)} inputs, {frames:,} frames "
        f"({len(report.done) - len(fresh)} from the cache; {speed:.0f} frames/s)"
        + (f", {len(report.failed)} failed" if report.failed else ""),
        highlight=False,
    )
    if report.label_map is not None:
        splits = ", ".join(f"{k} {v}" for k, v in report.splits.items())
        out.print(f"wrote {escape(str(report.label_map))}: {len(report.label_names)} classes; splits: {splits}",
                  highlight=False)  # fmt: skip
        out.print(f"next: agcn preprocess {escape(str(report.out))} DATA_DIR", highlight=False)


def _progress(bars: _Bars):
    from ..sources.extract import ExtractProgress

    class Progress(ExtractProgress):
        def listed(self, count):
            bars.listed(count)

        def started(self, item, frames):
            bars.started(item, frames)

        def advanced(self, item, frames):
            bars.advanced(item, frames)

        def finished(self, outcome):
            bars.finished(outcome)

    return Progress()


def _summary(report) -> dict:
    return {
        "out": str(report.out),
        "label_map": str(report.label_map) if report.label_map else None,
        "classes": list(report.label_names),
        "splits": report.splits,
        "inputs": [
            {
                "name": o.item.name,
                "file": str(o.item.path),
                "label": o.item.label,
                "frames": o.poses.frames,
                "frames_with_people": o.poses.frames_with_people,
                "people": int(o.poses.keypoint.shape[0]),
                "cached": o.cached,
                "notes": o.poses.notes,
            }
            for o in report.done
        ],  # fmt: skip
        "failed": [{"file": str(o.item.path), "error": o.error} for o in report.failed],
        "skipped": [{"file": str(p), "reason": r} for p, r in report.skipped],
        "seconds": round(report.seconds, 3),
    }
