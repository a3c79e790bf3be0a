"""`agcn export`: a checkpoint as ONNX, TorchScript, a torch.export program or MMAction2 weights."""

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AgcnError
from .app import JsonOpt, OverwriteOpt, command, err, note, out
from .evaluate import ForeignChannelsOpt, ForeignClassesOpt, ForeignLayoutOpt, ForeignModalityOpt

FORMAT_HELP = (  # "\\[": a bracket, not rich markup
    "onnx (onnxruntime; pip install 'agcn\\[onnx]') | torchscript (traced, torch.jit.load) | "
    "exported (torch.export program, .pt2) | mmaction2 (weights under MMAction2's key names)"
)


@command("export")
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint from agcn train (or foreign weights, see below).")],
    out_path: Annotated[Path, typer.Argument(metavar="OUT", help="The file to write, e.g. model.onnx, model.pt2.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)],
    num_classes: ForeignClassesOpt = None,
    layout: ForeignLayoutOpt = None,
    modality: ForeignModalityOpt = None,
    in_channels: ForeignChannelsOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Export a checkpoint as ONNX, TorchScript, a torch.export program or MMAction2 weights.

    Batch and clip length stay free; stream, layout and classes go into the file's metadata. The
    written file is run on a random clip and kept only if its logits match the checkpoint's within 1e-4.

    Foreign weights (lshiwjx/2s-AGCN, MMAction2, pyskl) need --num-classes and --modality.
    """
    from ..io.atomic import refuse_existing
    from ..models.export import check_format, export_model
    from ..models.loading import foreign_facts, load_model

    check_format(fmt)  # before loading anything: an unknown format, or onnx without its packages
    if out_path.exists() and checkpoint.exists() and out_path.samefile(checkpoint):
        raise AgcnError(f"{out_path}: is the checkpoint being exported; give another output file")
    refuse_existing([out_path], overwrite)
    foreign_config, foreign_data = foreign_facts(
        num_classes=num_classes, layout=layout, modality=modality, in_channels=in_channels
    )
    model, data, _ = load_model(
        checkpoint, foreign_config=foreign_config, foreign_data=foreign_data,
        note=note,
    )  # fmt: skip
    with err.status(f"exporting {checkpoint.name} as {fmt}"):
        report = export_model(model, data, out_path, fmt, source=checkpoint.name)
    meta = report.metadata
    if as_json:
        info = {
            "file": str(report.path), "format": fmt, "bytes": report.size, "seconds": round(report.seconds, 2),
            "check_shape": list(report.check_shape), "max_abs_diff": report.max_abs_diff, "metadata": meta,
        }  # fmt: skip
        out.print_json(json.dumps(info))
        return
    out.print(
        f"wrote {report.path} ({fmt}, {report.size / 1e6:.1f} MB, {report.seconds:.1f} s): "
        f"{meta['modality']} stream, {meta['layout']} layout, {meta['num_classes']} classes"
    )
    if fmt != "mmaction2":
        out.print(
            f"input {meta['input']} {meta['input_shape']} float32 (N and T free) -> logits {meta['output_shape']}"
        )
    out.print(
        f"checked on a random {report.check_shape} clip: logits within {report.max_abs_diff:.1e} of the checkpoint's"
    )
