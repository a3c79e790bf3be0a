"""`agcn watch`: actions over time, per person, from a file or live from standard input."""

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import AgcnError
from .app import command, error_line, note, out
from .options import CheckpointArg, FusionWeightsOpt, JsonOpt, MoreCheckpointsOpt, OverwriteOpt, TestDeviceOpt, plain
from .tables import class_label


@command("watch")
def watch_cmd(
    checkpoint: CheckpointArg,
    source: Annotated[
        str,
        typer.Argument(
            help="'-' for JSON lines on standard input (data_specs/watch.md), or any input agcn reads: a .skeleton "
            "file, a .pkl, Kinetics JSON, a split .h5 (with --sample), a video, an OpenPose/MMPose output."
        ),
    ],
    more: MoreCheckpointsOpt = None,
    weights: FusionWeightsOpt = None,
    window: Annotated[
        int | None, typer.Option(min=1, help="Frames a window (default: the checkpoint's training clip length).")
    ] = None,
    stride: Annotated[int, typer.Option(min=1, help="Frames from one window to the next.")] = 8,
    pairs: Annotated[
        bool, typer.Option("--pairs", help="Classify the two nearest people together (mutual actions), as NTU trains.")
    ] = False,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Below this probability a segment is 'no action'.")
    ] = 0.0,
    smooth: Annotated[int, typer.Option(min=1, help="Windows averaged for a segment's label.")] = 3,
    min_segment: Annotated[
        int | None, typer.Option(min=0, help="Frames; a shorter run joins a neighbour (default: half the window).")
    ] = None,
    leave_after: Annotated[int, typer.Option(min=0, help="Frames without a person before their segments end.")] = 30,
    sample: Annotated[
        list[str] | None, typer.Option("--sample", help="Split .h5 and .pkl inputs: this sample only; repeat.")
    ] = None,
    frame_size: Annotated[
        str | None, typer.Option(help="Live 2D keypoints: the frame's WIDTHxHEIGHT (default 1920x1080).")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Classes listed per window.")] = 3,
    bf16: Annotated[bool, typer.Option("--bf16", help="bfloat16 autocast (CPUs with AVX512-BF16/AMX, GPUs).")] = False,
    device: TestDeviceOpt = "cpu",
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write the segments here: .json (agcn plot draws it) or .csv.")
    ] = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Recognise actions over time: a window every --stride frames, per person, joined into segments.

    With --json: one JSON object a line as soon as it is known ({"type": "window", ...} and
    {"type": "segment", ...}); else the segments as they end. A bad line of a live stream is reported
    and skipped; the stream goes on (exit 1 at the end).
    """
    from ..evaluation.fusion import parse_weights
    from ..evaluation.watch import WatchSettings, default_min_segment, plan_watch, run_watch
    from ..io.atomic import refuse_existing

    if out_path is not None:
        if out_path.suffix.lower() not in (".json", ".csv"):
            raise AgcnError(f"--out {out_path}: write the segments to a .json or .csv file")
        refuse_existing([out_path], overwrite)
    if source != "-" and not Path(source).exists():
        raise AgcnError(f"{source}: no such file or folder")
    checkpoints = [checkpoint, *(more or [])]
    w = parse_weights(weights, checkpoints, noun="checkpoints")
    settings = WatchSettings(window=0, stride=stride, pairs=pairs, smooth=smooth, threshold=threshold,
                             min_segment=0, leave_after=leave_after, top=top, bf16=bf16)  # fmt: skip
    plan = plan_watch(checkpoints, w, settings, window=window, device=plain(device), note=note)
    plan.settings.min_segment = default_min_segment(plan.settings.window) if min_segment is None else min_segment
    if window is None:
        note(f"--window {plan.settings.window}: the checkpoint's training clip length (a window is one test clip)")
    size = _frame_size(frame_size)
    lines = sys.stdin if source == "-" else None
    segments, bad, windows = [], 0, 0
    t0 = time.perf_counter()
    board = _Board() if not as_json and sys.stdout.isatty() else None
    for kind, seq_name, item in run_watch(plan, Path(source) if lines is None else None, lines=lines,
                                          samples=sample, frame_size=size):  # fmt: skip
        if kind == "error":
            bad += 1
            error_line(item)
        elif kind == "window":
            windows += 1
            if board is not None:
                board.update(seq_name, item)
            if as_json:
                _emit({"type": "window", "sequence": seq_name, "person": _person(item.person), "start": item.start,
                       "end": item.end, "top": [{"class": c, "name": n, "probability": round(p, 6)}
                                                for c, n, p in item.top]})  # fmt: skip
        else:
            segments.append((seq_name, item))
            if as_json:
                _emit({"type": "segment", "sequence": seq_name, "person": _person(item.person), "start": item.start,
                       "end": item.end, "class": item.cls, "name": item.name,
                       "probability": round(item.probability, 6)})  # fmt: skip
            else:
                who = "+".join(map(str, item.person)) if isinstance(item.person, tuple) else str(item.person)
                label = class_label(item.cls, item.name) if item.cls >= 0 else item.name
                out.print(f"{escape(seq_name)} person {escape(who)}: frames {item.start}-{item.end} "
                          f"{escape(label)} ({item.probability:.2f})", highlight=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    if board is not None:
        board.stop()
    if out_path is not None:
        from ..evaluation.watch import write_segments

        write_segments(out_path, segments, plan, source)
        note(f"wrote {out_path}: {len(segments)} segments")
    note(f"{windows} windows in {seconds:.1f} s ({windows / seconds if seconds else 0:.1f} windows/s)")
    if bad:
        note(f"{bad} bad input lines or inputs skipped")
        raise typer.Exit(1)


class _Board:
    """The live table on a terminal: each person's latest window, redrawn as windows come."""

    def __init__(self):
        from rich.live import Live

        self.rows: dict = {}
        self.live = Live(self._table(), console=out, refresh_per_second=8, transient=False)
        self.live.start()

    def update(self, seq_name: str, w) -> None:
        who = "+".join(map(str, w.person)) if isinstance(w.person, tuple) else str(w.person)
        c, name, p = w.top[0]
        self.rows[(seq_name, who)] = (f"{w.start}-{w.end}", class_label(c, name), f"{p:.2f}")
        self.live.update(self._table())

    def _table(self):
        from rich.table import Table

        table = Table(title="agcn watch: latest window per person", title_justify="left")
        for col in ("input", "person", "frames", "action", "probability"):
            table.add_column(col)
        for (seq_name, who), row in self.rows.items():
            table.add_row(escape(seq_name), escape(who), row[0], escape(row[1]), row[2])
        return table

    def stop(self) -> None:
        self.live.stop()


def _person(person):
    return list(person) if isinstance(person, tuple) else person


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()  # a pipe reads it now, not when a buffer fills


def _frame_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        hint = "expected WIDTHxHEIGHT, e.g. 1920x1080"
        raise typer.BadParameter(f"{text!r}: {hint}", param_hint="--frame-size") from None
    if w < 1 or h < 1:
        raise typer.BadParameter(f"{text!r}: width and height must be positive", param_hint="--frame-size")
    return h, w
