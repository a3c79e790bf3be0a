"""`agcn export`: a checkpoint as ONNX, TorchScript, a torch.export program or MMAction2 weights."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..models.choices import ExportFormat
from .app import command, err, note, out
from .options import JsonOpt, OverwriteOpt, foreign_options, plain

# "\\[": a bracket, not rich markup
FORMAT_HELP = "The file's format (data_specs/exports.md); onnx needs onnxruntime: pip install 'agcn\\[onnx]'."


@command("export")
@foreign_options
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint from agcn train (or foreign weights, see below).")],
    out_path: Annotated[Path, typer.Argument(metavar="OUT", help="The file to write, e.g. model.onnx, model.pt2.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help=FORMAT_HELP)],
    foreign: dict[str, Any] | None = None,  # --num-classes, --layout, --modality, --in-channels
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Export a checkpoint as ONNX, TorchScript, a torch.export program or MMAction2 weights.

    Batch and clip length stay free; stream, layout and classes go into the file's metadata. The
    written file is run on a random clip and kept only if its logits match the checkpoint's within 1e-4.

    Foreign weights (lshiwjx/2s-AGCN, MMAction2, pyskl) need --num-classes and --modality.
    """
    from ..models.export import export_checkpoint

    fmt = plain(fmt)
    with err.status(f"exporting {checkpoint.name} as {fmt}"):
        report = export_checkpoint(checkpoint, out_path, fmt, foreign=foreign, overwrite=overwrite, note=note)
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
