"""`agcn export`: each format runs on other batch sizes and clip lengths than it was traced on and
gives the checkpoint's logits; the file says what it holds; a bad export is never left behind."""

import json
import sys

import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
from agcn_cli.models import export as export_module
from agcn_cli.models.agcn import ModelConfig, build_model
from agcn_cli.models.export import ONNX_OPSET, load_exported, read_metadata, to_mmaction2_state_dict
from agcn_cli.models.foreign import load_foreign_state_dict
from tests.reference.agcn import RefMMAAGCN

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
CLASSES = 7
NAMES = tuple(f"action {i}" for i in range(CLASSES))
CLIP_LEN = 12  # the trace's example: (2, 3, 12, 25, 2); the command's check: (3, 3, 23, 25, 2)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and graph weights, so eval mode and every unit matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.add_(0.05 * torch.randn(t.shape, generator=g))  # logits of a few units, as trained
                if name.endswith("running_var"):
                    t.abs_().add_(0.5)
    return model.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    model = _randomise(build_model(ModelConfig(num_classes=CLASSES)), 0)
    data = DataInfo(modality="bone", clip_len=CLIP_LEN, benchmark="custom", label_names=NAMES)
    save_checkpoint(d / "bone.pt", model, data, epoch=3)
    return d / "bone.pt", model


def _clip(n: int, t: int, seed: int = 1) -> torch.Tensor:
    return torch.randn((n, 3, t, 25, 2), generator=torch.Generator().manual_seed(seed))


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


# torch.export traces the model symbolically (N and T free): about 10 s for the program and 20 s more
# for its ONNX translation on one core, hence `slow` (still part of the suite)
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "fmt", ["torchscript", pytest.param("exported", marks=SLOW), pytest.param("onnx", marks=SLOW), "mmaction2"]
)
def test_round_trip_with_free_batch_and_clip_length(ckpt, tmp_path, fmt):
    if fmt == "onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):  # the agcn[onnx] extra
            pytest.importorskip(package)
    path, model = ckpt
    out = tmp_path / f"model.{fmt}"
    r = invoke("export", path, out, "--format", fmt, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["check_shape"] == [3, 3, CLIP_LEN + 11, 25, 2] and report["max_abs_diff"] <= 1e-4
    assert out.is_file() and report["bytes"] == out.stat().st_size and not _leftovers(tmp_path)
    run = load_exported(out, fmt)
    with torch.no_grad():
        for n, t in ((1, 40), (5, 7)):  # neither the trace's (2, 12) nor the check's (3, 23)
            x = _clip(n, t)
            got, expected = run(x), model(x)
            assert got.shape == (n, CLASSES)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    meta = read_metadata(out, fmt)
    assert meta["modality"] == "bone" and meta["layout"] == "ntu25" and meta["channels"] == "x,y,z"
    assert meta["input_layout"] == "N, C, T, V, M" and meta["input_shape"] == "(N, 3, T, 25, 2)"
    assert meta["num_classes"] == CLASSES and meta["class_names"] == list(NAMES) and meta["source"] == "bone.pt"
    if fmt == "onnx":
        import onnx

        proto = onnx.load(str(out))
        assert [o.version for o in proto.opset_import if o.domain == ""] == [ONNX_OPSET]
        dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["N", 3, "T", 25, 2]
        assert "bone stream of ntu25" in proto.doc_string and "action 6" in proto.doc_string


def test_mmaction2_keys_load_into_the_reference_and_the_foreign_loader(ckpt, tmp_path):
    """MMAction2's own key set (backbone.A included), loaded strictly by its transcription."""
    _, model = ckpt
    sd = to_mmaction2_state_dict(model)
    ref = RefMMAAGCN(num_class=CLASSES)
    assert set(sd) == set(ref.state_dict())
    ref.load_state_dict(sd, strict=True)
    back, fmt = load_foreign_state_dict(ModelConfig(num_classes=CLASSES), {"state_dict": sd})
    assert fmt == "mmaction2"
    x = _clip(2, 30)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(ref.eval()(x), expected, rtol=0, atol=1e-4)
        assert torch.equal(back.eval()(x), expected)  # the same tensors, the same graph: identical


def test_2s_agcn_variant_has_no_mmaction2_form(tmp_path):
    path = tmp_path / "orig.pt"
    save_checkpoint(path, build_model(ModelConfig(num_classes=CLASSES, variant="2s-agcn")), DataInfo(), epoch=1)
    r = invoke("export", path, tmp_path / "m.pth", "-f", "mmaction2")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "MMAction2 has no backbone for the '2s-agcn' variant" in r.output
    assert not (tmp_path / "m.pth").exists() and not _leftovers(tmp_path)


@pytest.mark.parametrize("existing", [False, True])
def test_an_export_that_disagrees_is_not_kept(ckpt, tmp_path, monkeypatch, existing):
    real = export_module.load_exported

    def perturbed(path, fmt):
        run = real(path, fmt)
        return lambda x: run(x) + 2e-4

    monkeypatch.setattr(export_module, "load_exported", perturbed)
    out = tmp_path / "model.ts"
    if existing:
        out.write_text("the old file")
    r = invoke("export", ckpt[0], out, "-f", "torchscript", *(["--overwrite"] if existing else []))
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "logits differ from the checkpoint's by 0.0002" in lines[0], r.output
    assert (out.read_text() == "the old file") if existing else not out.exists()
    assert not _leftovers(tmp_path)


def test_an_exporter_failure_is_one_line(ckpt, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator\nfull trace follows")

    monkeypatch.setattr(torch.jit, "trace", broken)
    r = invoke("export", ckpt[0], tmp_path / "m.ts", "-f", "torchscript")
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "torchscript export failed (RuntimeError: unsupported operator)" in lines[0], r.output
    assert not any(tmp_path.iterdir())


def test_onnx_without_its_packages_says_what_to_install(ckpt, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    r = invoke("export", ckpt[0], tmp_path / "m.onnx", "-f", "onnx")
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "error: ONNX export needs onnx, onnxscript, onnxruntime (onnxruntime is not installed); "
        "run: pip install 'agcn[onnx]'"
    ]
    assert not (tmp_path / "m.onnx").exists()


def test_overwrite_rules_and_bad_inputs(ckpt, tmp_path):
    path, _ = ckpt
    out = tmp_path / "m.pth"
    out.write_text("keep me")
    r = invoke("export", path, out, "-f", "mmaction2")
    assert r.exit_code == 1 and "m.pth: already exists; pass --overwrite to replace it" in r.output
    assert out.read_text() == "keep me"
    r = invoke("export", path, out, "-f", "mmaction2", "--overwrite")
    assert r.exit_code == 0, r.output
    assert read_metadata(out, "mmaction2")["class_names"] == list(NAMES)
    assert "checked on a random (3, 3, 23, 25, 2) clip" in r.stdout

    r = invoke("export", path, tmp_path / "m.x", "-f", "tflite")
    assert r.exit_code == 1
    assert r.output.splitlines() == ["error: --format 'tflite': choose one of: onnx, torchscript, exported, mmaction2"]
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    r = invoke("export", notes, tmp_path / "m.ts", "-f", "torchscript")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "notes.txt: not a PyTorch checkpoint" in r.output


def test_foreign_weights_need_their_facts(tmp_path):
    torch.manual_seed(0)
    ref = _randomise(RefMMAAGCN(num_class=CLASSES), 2)
    weights = tmp_path / "mmaction2.pth"
    torch.save({"state_dict": ref.state_dict()}, weights)
    r = invoke("export", weights, tmp_path / "m.ts", "-f", "torchscript")
    assert r.exit_code == 1 and "pass --num-classes, --layout and --modality" in r.output
    out = tmp_path / "back.pth"
    r = invoke("export", weights, out, "-f", "mmaction2", "--num-classes", CLASSES, "--modality", "joint-motion")
    assert r.exit_code == 0, r.output
    assert read_metadata(out, "mmaction2")["modality"] == "joint-motion"
    x = _clip(2, 20)
    with torch.no_grad():
        torch.testing.assert_close(load_exported(out, "mmaction2")(x), ref(x), rtol=0, atol=1e-4)
