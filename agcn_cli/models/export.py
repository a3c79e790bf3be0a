"""A trained AGCN as a file other tools run: ONNX, TorchScript, a torch.export program, MMAction2 weights.

Every format takes the model's input `x` `(N, C, T, V, M)` float32 and gives logits `(N, classes)`
(before softmax), with the batch N and the clip length T free. Where the format has room for it
the file says what it is (`export_metadata`: stream, layout, channels, classes and their names):
ONNX `metadata_props` and `doc_string`, an `agcn.json` extra file in TorchScript and .pt2
archives, `meta["agcn"]` beside MMAction2's `state_dict`.

`export_checkpoint` is `agcn export`'s entry: it checks the format and the output, loads the
checkpoint (foreign weights described by the caller) and calls `export_model`. `export_model`
writes under a temporary name, loads the file back the way its users will
(`load_exported`: onnxruntime, `torch.jit.load`, `torch.export.load`, agcn's foreign loader),
runs it on a random clip of another batch size and length than the example it was traced on,
and renames it into place only if the logits agree with the model's within `EXPORT_TOLERANCE`.
"""

import copy
import json
import logging
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import AgcnError
from ..io.atomic import atomic_output, refuse_existing
from ..io.checkpoint import DataInfo, read_checkpoint
from .agcn import AGCN
from .choices import EXPORT_FORMATS
from .foreign import key_plan
from .graph import adjacency
from .loading import exported_facts, foreign_facts, load_model

# 18: the opset torch's ONNX exporter writes its ATen functions in (torch.onnx's TORCHLIB_OPSET), so
# no version conversion runs; every op the AGCN needs exists there, and onnxruntime runs it since 1.14.
ONNX_OPSET = 18
EXPORT_TOLERANCE = 1e-4  # largest |logit difference| accepted between the exported file and the model (fp32)
# the ExportedProgram checks at run time that T >= 5: the guards _export_program defers hold from
# there on (two stride-2 stages leave at least 2 frames)
EXPORT_MIN_FRAMES = 5
INPUT_NAME, OUTPUT_NAME = "x", "logits"
METADATA_FILE = "agcn.json"  # the metadata's name inside TorchScript and .pt2 archives
_TRACE_BATCH, _CHECK_BATCH = 2, 3
_CHECK_EXTRA_FRAMES = 11  # the check clip is this much longer than the traced example
_ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
# metadata values that are not strings; ONNX metadata_props holds them as JSON text
_JSON_KEYS = {"num_classes", "in_channels", "num_joints", "num_persons", "clip_len", "test_window", "class_names"}


@dataclass(frozen=True)
class ExportReport:
    path: Path  # the file written
    format: str  # one of EXPORT_FORMATS
    size: int  # bytes
    seconds: float  # writing and checking
    example_shape: tuple[int, ...]  # the input the model was traced on
    check_shape: tuple[int, ...]  # the random clip the written file was checked on
    max_abs_diff: float  # largest |logit difference| on that clip
    metadata: dict[str, Any]  # what the file says about itself


def export_metadata(model: AGCN, data: DataInfo, fmt: str, source: str = "") -> dict[str, Any]:
    """What an exported file says about itself: input layout and dims, stream, classes.

    `class_names` is present only when the checkpoint carries names (`DataInfo.label_names`)."""
    cfg = model.config
    c, v, m = cfg.in_channels, model.num_joints, cfg.num_persons
    meta: dict[str, Any] = {
        "producer": f"agcn {__version__}",
        "format": fmt,
        "source": source,
        "input": INPUT_NAME,
        "input_layout": "N, C, T, V, M",
        "input_shape": f"(N, {c}, T, {v}, {m})",
        "input_dims": f"N batch (any), C channels ({data.channels}), T frames (any"
        + (f", at least {EXPORT_MIN_FRAMES}" if fmt == "exported" else "")
        + f"; trained on {data.clip_len}), V joints ({cfg.layout}), M persons",
        "dtype": "float32",
        "output": OUTPUT_NAME,
        "output_shape": f"(N, {cfg.num_classes})",
        "output_meaning": "class logits, before softmax",
        "modality": data.modality,
        "layout": cfg.layout,
        "channels": data.channels,
        "num_classes": cfg.num_classes,
        "in_channels": c,
        "num_joints": v,
        "num_persons": m,
        "variant": cfg.variant,
        "graph": cfg.graph_name(),
        "recipe": data.recipe,
        "benchmark": data.benchmark,
        "clip_len": data.clip_len,
    }
    if data.test_window:  # tested on one view of the whole window (2s-AGCN recipe), not clips of clip_len
        meta["test_window"] = data.test_window
    if data.label_names:
        meta["class_names"] = list(data.label_names)
    if cfg.layout_spec:
        meta["layout_spec"] = cfg.layout_spec
    return meta


def check_format(fmt: str) -> None:
    """AgcnError listing EXPORT_FORMATS unless `fmt` is one; for onnx, also unless its packages import."""
    if fmt not in EXPORT_FORMATS:
        raise AgcnError(f"unknown export format {fmt!r}; choose one of: {', '.join(EXPORT_FORMATS)}")
    if fmt == "onnx":
        import importlib

        for name in _ONNX_PACKAGES:
            try:
                importlib.import_module(name)
            except ImportError:
                raise AgcnError(
                    f"ONNX export needs {', '.join(_ONNX_PACKAGES)} ({name} is not installed); "
                    "run: pip install 'agcn[onnx]'"
                ) from None


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    fmt: str,
    *,
    foreign: dict[str, Any] | None = None,
    overwrite: bool = False,
    note: Callable[[str], None] | None = None,
) -> ExportReport:
    """`agcn export`: the checkpoint (weights without agcn metadata described by `foreign`,
    `foreign_facts`'s keywords) written to `out` in format `fmt` and checked (`export_model`). The
    format, and `out` (neither the checkpoint nor, unless `overwrite`, a file that exists), are
    checked before the checkpoint is read."""
    checkpoint, out = Path(checkpoint), Path(out)
    check_format(fmt)  # before loading anything: an unknown format, or onnx without its packages
    if out.exists() and checkpoint.exists() and out.samefile(checkpoint):
        raise AgcnError(f"{out}: is the checkpoint being exported; give another output file")
    refuse_existing([out], overwrite)
    foreign_config, foreign_data = foreign_facts(**(foreign or {}))
    model, data, _ = load_model(checkpoint, foreign_config=foreign_config, foreign_data=foreign_data, note=note)
    return export_model(model, data, out, fmt, source=checkpoint.name)


def export_model(model: AGCN, data: DataInfo, out: Path, fmt: str, *, source: str = "") -> ExportReport:
    """Write `model` to `out` in format `fmt`, checked: see the module docstring.

    `source` (the checkpoint's name) goes into the metadata. The model is copied, in eval mode,
    float32 on the CPU. Raises AgcnError (and leaves `out` as it was) when the format cannot hold
    the model or the written file disagrees with the model.
    """
    check_format(fmt)
    out = Path(out)
    model = copy.deepcopy(model).float().cpu().eval()
    if fmt == "mmaction2" and model.config.variant != "mmaction2":
        raise AgcnError(
            f"{out}: MMAction2 has no backbone for the {model.config.variant!r} variant (lshiwjx/2s-AGCN's unit_gcn); "
            "its AAGCN holds agcn's 'mmaction2' variant only. Export this one as onnx, torchscript or exported"
        )
    meta = export_metadata(model, data, fmt, source)
    cfg = model.config
    frames = max(data.clip_len, EXPORT_MIN_FRAMES)
    example_shape = (_TRACE_BATCH, cfg.in_channels, frames, model.num_joints, cfg.num_persons)
    check_shape = (_CHECK_BATCH, cfg.in_channels, frames + _CHECK_EXTRA_FRAMES, model.num_joints, cfg.num_persons)
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(example_shape, generator=gen)
    clip = torch.randn(check_shape, generator=gen)
    start = time.perf_counter()
    with atomic_output(out) as tmp:
        try:
            _WRITERS[fmt](model, example, meta, tmp)
            run = load_exported(tmp, fmt)
            with torch.no_grad():
                expected = model(clip)
                got = run(clip)
        except (AgcnError, OSError):
            raise
        except Exception as e:  # the exporters and runtimes raise many types
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise AgcnError(f"{out}: {fmt} export failed ({type(e).__name__}: {first}); nothing was written") from None
        if got.shape != expected.shape:
            raise AgcnError(
                f"{out}: the exported model gives logits of shape {tuple(got.shape)} on a {check_shape} clip, "
                f"the checkpoint {tuple(expected.shape)}; nothing was written"
            )
        diff = (got.float() - expected).abs().max().item()
        if not diff <= EXPORT_TOLERANCE:  # also NaN
            raise AgcnError(
                f"{out}: the exported model's logits differ from the checkpoint's by {diff:.3g} "
                f"(more than {EXPORT_TOLERANCE:g}) on a random {check_shape} clip; nothing was written"
            )
        size = tmp.stat().st_size
    return ExportReport(out, fmt, size, time.perf_counter() - start, example_shape, check_shape, diff, meta)


# ---- writers: (model, example input, metadata, path) -----------------------------------------


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' notices (TorchScript's deprecation, torchvision ops not registered)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            yield
    finally:
        logger.setLevel(level)


def _export_program(model: AGCN, example: torch.Tensor) -> torch.export.ExportedProgram:
    """The model as an ExportedProgram with N and T dynamic.

    The two stride-2 stages compute ceil(T/2) once as a strided conv and once as a strided slice;
    the symbolic shape solver cannot prove the two forms equal, so its guards on them are deferred
    to run-time assertions (which hold for T >= EXPORT_MIN_FRAMES) instead of refusing a dynamic T.
    """
    dims = {INPUT_NAME: {0: torch.export.Dim("N", min=1), 2: torch.export.Dim("T", min=EXPORT_MIN_FRAMES)}}
    with _quiet():
        return torch.export.export(
            model, (example,), dynamic_shapes=dims, prefer_deferred_runtime_asserts_over_guards=True
        )


def _write_exported(model: AGCN, example: torch.Tensor, meta: dict[str, Any], path: Path) -> None:
    program = _export_program(model, example)
    with open(path, "wb") as f:  # a file object: torch.export warns about a path not ending in .pt2
        torch.export.save(program, f, extra_files={METADATA_FILE: json.dumps(meta)})


def _write_torchscript(model: AGCN, example: torch.Tensor, meta: dict[str, Any], path: Path) -> None:
    # traced, not scripted: the sizes the forward pass reads from x are recorded as operations, so
    # the trace runs on any N and T (the check below runs it on others than the example's)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(meta)})


def _write_onnx(model: AGCN, example: torch.Tensor, meta: dict[str, Any], path: Path) -> None:
    import onnx

    program = _export_program(model, example)
    with _quiet():
        onnx_program = torch.onnx.export(
            program, (example,), dynamo=True, opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
        )  # fmt: skip
    proto = onnx_program.model_proto
    # the exporter names the free dims after its symbols (s77...); give them the layout's letters
    shape = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == INPUT_NAME).meta["val"].shape
    names = {str(shape[0]): "N", str(shape[2]): "T"}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    for info in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: names[m.group(1)], dim.dim_param)
    proto.doc_string = _describe(meta)
    proto.producer_name, proto.producer_version = "agcn", __version__
    proto.graph.input[0].doc_string = f"skeleton clips {meta['input_shape']}: {meta['input_dims']}"
    proto.graph.output[0].doc_string = f"{meta['output_meaning']} {meta['output_shape']}"
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.save_model(proto, str(path))


def to_mmaction2_state_dict(model: AGCN) -> dict[str, torch.Tensor]:
    """The weights under MMAction2 1.x's key names (`backbone.*`, `cls_head.fc.*`), as its
    RecognizerGCN(AAGCN(stage_cfgs=dict(gcn_attention=False)), GCNHead) holds them.

    The inverse of the loader's key plan (models/foreign.py): each of our tensors that the
    loader concatenates or stacks from several reference tensors is cut back into them.
    """
    if model.config.variant != "mmaction2":
        raise AgcnError(f"MMAction2's AAGCN holds the 'mmaction2' variant only, not {model.config.variant!r}")
    own = model.state_dict()
    cfg = model.config
    # AAGCN's buffer `A`: the initial graph (each unit learns its own copy from it)
    sd = {"backbone.A": adjacency(cfg.skeleton(), cfg.graph_name()).clone()}
    for ours, keys, combine in key_plan(model, "mmaction2"):
        sd.update(zip(keys, _split(own[ours], len(keys), combine, ours), strict=True))
    return sd


def _split(value: torch.Tensor, n: int, combine: Callable, name: str) -> list[torch.Tensor]:
    """The `n` tensors that `combine` (cat on dim 0 or 1, stack, or the one tensor) joins into `value`."""
    if n == 1:
        return [value.detach().clone()]
    candidates = [value.chunk(n, 0), value.chunk(n, 1) if value.ndim > 1 else ()]
    if value.shape[0] == n:
        candidates.insert(0, value.unbind(0))
    for parts in candidates:
        if len(parts) == n and _joins(combine, parts, value):
            return [p.detach().clone() for p in parts]
    raise AgcnError(f"cannot cut {name} {tuple(value.shape)} into the {n} reference tensors it joins")


def _joins(combine: Callable, parts: Sequence[torch.Tensor], value: torch.Tensor) -> bool:
    try:
        joined = combine(list(parts))
    except RuntimeError:
        return False
    return joined.shape == value.shape and torch.equal(joined, value)


def _write_mmaction2(model: AGCN, example: torch.Tensor, meta: dict[str, Any], path: Path) -> None:
    torch.save({"state_dict": to_mmaction2_state_dict(model), "meta": {"agcn": meta}}, path)


_WRITERS = {
    "onnx": _write_onnx,
    "torchscript": _write_torchscript,
    "exported": _write_exported,
    "mmaction2": _write_mmaction2,
}


def _describe(meta: dict[str, Any]) -> str:
    names = f"; classes: {', '.join(meta['class_names'])}" if "class_names" in meta else ""
    return (
        f"agcn AGCN ({meta['variant']} variant), {meta['modality']} stream of {meta['layout']} skeletons "
        f"from {meta['source'] or 'a checkpoint'}. Input {meta['input']} {meta['input_shape']} {meta['dtype']}: "
        f"{meta['input_dims']}. Output {meta['output']} {meta['output_shape']}: {meta['output_meaning']}{names}."
    )


# ---- readers: how users run each format -------------------------------------------------------


def load_exported(path: Path, fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function `x (N, C, T, V, M) -> logits (N, classes)` that runs an exported file as its
    users will: onnxruntime, torch.jit.load, torch.export.load, or agcn's foreign loader."""
    check_format(fmt)
    path = Path(path)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])
    if fmt == "torchscript":
        with _quiet():
            return torch.jit.load(str(path), map_location="cpu")
    if fmt == "exported":
        with open(path, "rb") as f:
            return torch.export.load(f).module()
    if exported_facts(read_checkpoint(path), path) is None:
        raise AgcnError(f"{path}: no agcn metadata (meta['agcn']): not written by agcn export")
    model, _, _ = load_model(path)  # the metadata checked and read back, as agcn eval and predict do
    return model


def read_metadata(path: Path, fmt: str) -> dict[str, Any]:
    """The metadata an exported file carries (see `export_metadata`)."""
    check_format(fmt)
    path = Path(path)
    if fmt == "onnx":
        import onnx

        props = onnx.load(str(path), load_external_data=False).metadata_props
        return {p.key: json.loads(p.value) if p.key in _JSON_KEYS else p.value for p in props}
    extra = {METADATA_FILE: ""}
    if fmt == "torchscript":
        with _quiet():
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return json.loads(extra[METADATA_FILE])
    if fmt == "exported":
        with open(path, "rb") as f:
            torch.export.load(f, extra_files=extra)
        return json.loads(extra[METADATA_FILE])
    return dict(read_checkpoint(path).get("meta", {}).get("agcn", {}))
