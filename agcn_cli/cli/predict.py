"""`agcn predict`: the top classes of each sample of the inputs, from one checkpoint or several fused."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..sources.recipes import Recipe
from .app import command, error_line, note, out
from .options import (
    CheckpointArg,
    FusionWeightsOpt,
    JsonOpt,
    MoreCheckpointsOpt,
    TestBatchOpt,
    TestClipLenOpt,
    TestClipsOpt,
    TestDeviceOpt,
    foreign_options,
    plain,
)
from .tables import class_label


@command("predict")
@foreign_options
def predict_cmd(
    checkpoint: CheckpointArg,
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Inputs: .skeleton files or a folder of them, a .pkl annotation file (MMAction2/pyskl), "
            "Kinetics-Skeleton .json files or a folder, split .h5 files."
        ),
    ],
    more: MoreCheckpointsOpt = None,
    weights: FusionWeightsOpt = None,
    sample: Annotated[
        list[str] | None, typer.Option("--sample", help="Split .h5 inputs: classify only this sample name; repeat.")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Classes shown per sample.")] = 5,
    clips: TestClipsOpt = None,
    clip_len: TestClipLenOpt = None,
    batch_size: TestBatchOpt = 16,
    device: TestDeviceOpt = "auto",
    foreign: dict[str, Any] | None = None,  # --num-classes, --layout, --modality, --in-channels
    recipe: Annotated[
        Recipe | None, typer.Option(help="Foreign weights: preprocessing recipe of their training data.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Top classes with probabilities for each sample of the inputs (the checkpoint's recipe, stream, 10 clips).

    A sample or input that cannot be read is reported on stderr and skipped; the others are classified; exit 1.
    """
    from ..evaluation.fusion import parse_weights
    from ..evaluation.predict import Prediction, predict
    from ..models.loading import foreign_facts

    checkpoints = [checkpoint, *(more or [])]
    w = parse_weights(weights, checkpoints, noun="checkpoints")
    foreign_config, foreign_data = foreign_facts(**foreign, recipe=plain(recipe), clip_len=clip_len)
    results = predict(
        checkpoints, inputs, samples=sample, weights=w, clips=clips, clip_len=clip_len, top=top,
        batch_size=batch_size, device=plain(device), foreign_config=foreign_config, foreign_data=foreign_data,
        note=note,
    )  # fmt: skip
    predictions, failed = [], []
    for r in results:  # each printed as it comes (a table, or an error line); the JSON once all are in
        if not isinstance(r, Prediction):
            failed.append(r)
            error_line(str(r))
        elif as_json:
            predictions.append(r)
        else:
            _print_table(r)
    if as_json:
        _print_json(checkpoints, w, predictions, failed)
    if failed:
        raise typer.Exit(1)


def _print_table(r) -> None:
    """One sample's top classes, with its truth where the input has it."""
    truth = "" if r.label is None else f", true: {class_label(r.label, r.label_name or f'class {r.label}')}"
    table = Table(title=escape(f"{r.name} ({r.source}, {r.frames} frames{truth})"), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("class")
    table.add_column("probability", justify="right")
    for rank, (c, name, prob) in enumerate(r.top, 1):
        table.add_row(str(rank), escape(class_label(c, name)), f"{prob:.4f}")  # label-map names: not markup
    out.print(table)


def _print_json(checkpoints: list[Path], weights: list[float], predictions: list, failed: list) -> None:
    top = [[{"class": c, "name": name, "probability": prob} for c, name, prob in p.top] for p in predictions]
    data = {
        "checkpoints": [str(p) for p in checkpoints],
        "weights": weights,
        "predictions": [
            {
                "name": p.name,
                "source": str(p.source),
                "frames": p.frames,
                "label": p.label,
                "label_name": p.label_name,
                "top": t,
            }
            for p, t in zip(predictions, top, strict=True)
        ],  # fmt: skip
        "failed": [{"input": f.input, "error": f.error} for f in failed],
    }
    out.print_json(json.dumps(data))
