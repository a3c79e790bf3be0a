"""The AGCN model: exact size and cost, gradients, and equality with the reference structures."""

import pytest
import torch
import torch.nn.functional as F

from agcn_cli.errors import AgcnError
from agcn_cli.models.agcn import ModelConfig, build_model, count_parameters, measure_macs, model_summary
from agcn_cli.models.foreign import detect_format, load_foreign_state_dict
from agcn_cli.models.graph import adjacency
from tests.reference.agcn import RefAGCN, RefMMAAGCN, spatial_graph

pytestmark = pytest.mark.usefixtures("one_thread")  # small CPU models run fastest on one thread


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random parameters and BatchNorm statistics: the published init hides most of each graph unit."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return model.eval()


def sample(n=2, c=3, t=24, v=25, m=2, seed=1):
    return torch.randn((n, c, t, v, m), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "config, params",
    [
        (ModelConfig(variant="2s-agcn"), 3_469_510),
        (ModelConfig(variant="mmaction2"), 3_469_520),
        (ModelConfig(layout="coco17", variant="mmaction2"), 3_459_344),
    ],
)
def test_parameter_count(config, params):
    assert count_parameters(build_model(config)) == params


def test_parameter_count_matches_references():
    assert count_parameters(RefAGCN()) == 3_469_510
    assert count_parameters(RefMMAAGCN()) == 3_469_520
    assert count_parameters(RefMMAAGCN(num_point=17, graph="coco")) == 3_459_344


def test_macs_are_measured():
    ntu = measure_macs(build_model(ModelConfig()), (1, 3, 100, 25, 2))
    coco = measure_macs(build_model(ModelConfig(layout="coco17")), (1, 3, 100, 17, 2))
    assert abs(ntu / 1e9 - 6.47) < 0.05
    assert abs(coco / 1e9 - 4.34) < 0.05
    summary = model_summary(ModelConfig(num_classes=120), clip_len=50)
    assert summary["params"] == 3_469_520 + 60 * 257
    assert summary["input_shape"] == [1, 3, 50, 25, 2]
    assert summary["macs"] < ntu  # half the frames


@pytest.mark.parametrize(
    "layout, graph, ref_graph",
    [("ntu25", "2s-agcn", "ntu-2s-agcn"), ("ntu25", "mmaction2", "ntu-mmaction2"), ("coco17", None, "coco")],
)
def test_adjacency_matches_reference(layout, graph, ref_graph):
    ours = adjacency(layout, graph)
    assert ours.dtype == torch.float32
    assert torch.equal(ours, torch.from_numpy(spatial_graph(ref_graph)))


@pytest.mark.parametrize("variant", ["2s-agcn", "mmaction2"])
def test_shape_gradients_no_nan(variant):
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant=variant, num_classes=7))
    if variant == "mmaction2":
        # alpha starts at 0, so theta/phi get exactly zero gradient at init (as in the reference);
        # alpha itself does, and once it moves so do they
        F.cross_entropy(model(sample(t=20)), torch.tensor([1, 5])).backward()
        assert all(block.gcn.alpha.grad.abs().sum() > 0 for block in model.blocks)
        assert model.blocks[0].gcn.embed.weight.grad.abs().sum() == 0
        model.zero_grad()
        with torch.no_grad():
            for block in model.blocks:
                block.gcn.alpha.fill_(0.5)
    x = sample(t=20)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([1, 5])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} gets no gradient"
    learned = "PA" if variant == "2s-agcn" else "A"
    assert getattr(model.blocks[3].gcn, learned).grad.abs().sum() > 0  # the learned adjacency learns


def test_adjacency_is_a_buffer_in_the_original_variant():
    model = build_model(ModelConfig(variant="2s-agcn"))
    gcn = model.blocks[0].gcn
    assert "A" in dict(gcn.named_buffers())
    assert "blocks.0.gcn.A" not in model.state_dict()  # rebuilt from the layout, as the original does
    assert torch.equal(gcn.PA, torch.full_like(gcn.PA, 1e-6))
    assert torch.equal(gcn.bn.weight, torch.full_like(gcn.bn.weight, 1e-6))


def test_deterministic_under_seed():
    x = sample(t=16)

    def run():
        torch.manual_seed(3)
        model = build_model(ModelConfig(num_classes=5))
        return model(x)

    assert torch.equal(run(), run())


@pytest.mark.parametrize(
    "variant, ref_factory, fmt",
    [
        ("2s-agcn", lambda: RefAGCN(num_class=11), "2s-agcn"),
        ("mmaction2", lambda: RefMMAAGCN(num_class=11), "mmaction2"),
        ("mmaction2", lambda: RefMMAAGCN(num_class=11, head_key="fc_cls"), "pyskl"),
    ],
)
def test_same_function_as_reference(variant, ref_factory, fmt):
    """Foreign weights in, the reference's logits out (random weights, eval and train mode)."""
    torch.manual_seed(0)
    ref = randomise(ref_factory())
    sd = ref.state_dict()
    assert detect_format(sd) == fmt
    model, found = load_foreign_state_dict(ModelConfig(num_classes=11), sd)
    assert found == fmt and model.config.variant == variant
    model.eval()
    x = sample(t=24)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5, rtol=0)
    # training mode (batch statistics) and the gradients agree too
    # training mode (batch statistics) and every gradient agree too; in float64, because float32
    # rounding through ten blocks of random weights reaches ~1e-3 of the first layers' gradients
    ref.double().train(), model.double().train()
    ref_out, out = ref(x.double()), model(x.double())
    assert torch.allclose(out, ref_out, atol=1e-10, rtol=0)
    out.square().sum().backward()
    ref_out.square().sum().backward()
    ref_data_bn = ref.data_bn if isinstance(ref, RefAGCN) else ref.backbone.data_bn
    ref_gcn = ref.l1.gcn1 if isinstance(ref, RefAGCN) else ref.backbone.gcn[0].gcn
    pairs = [
        (model.fc.weight.grad, _head(ref).weight.grad),
        (model.data_bn.weight.grad, ref_data_bn.weight.grad),
        (model.blocks[0].gcn.conv_d.weight.grad, torch.cat([c.weight.grad for c in ref_gcn.conv_d], dim=1)),
    ]
    for ours, theirs in pairs:
        assert torch.allclose(ours, theirs, atol=1e-9, rtol=1e-7)


def _head(ref):
    if isinstance(ref, RefAGCN):
        return ref.fc
    return getattr(ref.cls_head, ref.cls_head.head_key)


def test_coco_reference_equality():
    ref = randomise(RefMMAAGCN(num_class=4, num_point=17, graph="coco"))
    model, _ = load_foreign_state_dict(ModelConfig(layout="coco17", num_classes=4), ref.state_dict())
    model.eval()
    x = sample(t=16, v=17)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5, rtol=0)


def test_wrapped_and_prefixed_checkpoints_load():
    ref = randomise(RefAGCN(num_class=6))
    wrapped = {"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}, "epoch": 3}
    model, fmt = load_foreign_state_dict(ModelConfig(num_classes=6, variant="2s-agcn"), wrapped)
    assert fmt == "2s-agcn"
    x = sample(t=12)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), ref(x), atol=1e-5, rtol=0)


def test_own_state_dict_round_trips():
    a = randomise(build_model(ModelConfig(num_classes=5)))
    b, fmt = load_foreign_state_dict(ModelConfig(num_classes=5), a.state_dict())
    assert fmt == "agcn"
    x = sample(t=12)
    with torch.no_grad():
        assert torch.equal(a(x), b.eval()(x))


def test_wrong_class_count_is_named():
    sd = RefMMAAGCN(num_class=60).state_dict()
    with pytest.raises(AgcnError, match="checkpoint has 60 classes, model expects 120"):
        load_foreign_state_dict(ModelConfig(num_classes=120), sd)


def test_wrong_layout_is_named():
    sd = RefMMAAGCN(num_class=60, num_point=17, graph="coco").state_dict()
    with pytest.raises(AgcnError, match="checkpoint has 17 joints, model expects 25"):
        load_foreign_state_dict(ModelConfig(), sd)


def test_wrong_variant_for_a_built_model():
    sd = RefAGCN().state_dict()
    with pytest.raises(AgcnError, match="variant='2s-agcn'"):
        load_foreign_state_dict(build_model(ModelConfig(variant="mmaction2")), sd)


def test_missing_and_unexpected_keys_are_listed():
    sd = dict(RefAGCN().state_dict())
    del sd["l3.gcn1.conv_d.1.weight"]
    sd["l3.extra.weight"] = torch.zeros(1)
    with pytest.raises(AgcnError, match=r"missing keys: l3\.gcn1\.conv_d\.1\.weight.*unexpected keys: l3\.extra"):
        load_foreign_state_dict(ModelConfig(), sd)


@pytest.mark.parametrize(
    "checkpoint",
    [{"encoder.weight": torch.zeros(3)}, {"state_dict": {}}, {"epoch": 4}, [1, 2, 3]],
)
def test_not_an_agcn_checkpoint(checkpoint):
    with pytest.raises(AgcnError, match="not a model checkpoint|not an AGCN checkpoint"):
        load_foreign_state_dict(ModelConfig(), checkpoint)


def test_bad_config_is_named():
    with pytest.raises(AgcnError, match="unknown model variant 'stgcn'; choose one of: 2s-agcn, mmaction2"):
        build_model(ModelConfig(variant="stgcn"))
    with pytest.raises(AgcnError, match="num_classes must be at least 1"):
        build_model(ModelConfig(num_classes=0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model = randomise(build_model(ModelConfig(num_classes=5)))
    x = sample(t=16)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda()).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4, rtol=0)
