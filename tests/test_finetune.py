"""Fine-tuning (`agcn train --init-from CKPT`): weights from an agcn checkpoint or foreign (MMAction2)
keys, the classifier re-initialised for a new class count, one-line refusals of everything else
that differs, a frozen backbone, the backbone's lr multiplier, and the record in config.json.

Tiny random splits and 4-frame clips: these test mechanics, not learning (benchmarks/bench_finetune.py
measures what fine-tuning buys).
"""

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.engine.config import RUN_CONTROL, TrainConfig, build_config
from agcn_cli.engine.fit import fit
from agcn_cli.errors import AgcnError
from agcn_cli.io.checkpoint import DataInfo, read_checkpoint, save_checkpoint
from agcn_cli.models.agcn import ModelConfig, build_model
from agcn_cli.models.loading import init_weights_from, is_classifier
from agcn_cli.skeleton.layouts import get_layout, parse_layout
from tests.reference.agcn import RefMMAAGCN

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
DATA = DataInfo(benchmark="ntu60-xsub", clip_len=4)  # what write_split's files imply (3 classes)


def quiet(_: str) -> None:
    pass


def backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not is_classifier(k)}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def config(tiny: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(tiny), out=str(out), clip_len=4, epochs=1, batch_size=4, lr=0.05, auto_scale_lr=False,
                val_every=1, deterministic=True, tensorboard=False)  # fmt: skip
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def source(tiny, tmp_path_factory) -> Path:
    """An agcn checkpoint with a 5-way classifier (one epoch on the tiny data), the run's last.pt."""
    out = tmp_path_factory.mktemp("source") / "run"
    fit(config(tiny, out, num_classes=5, seed=3), log=quiet)
    return out / "last.pt"


def test_fewer_classes_reinitialise_the_classifier(source, tmp_path):
    src = read_checkpoint(source)["model"]
    torch.manual_seed(0)
    fresh = build_model(ModelConfig(num_classes=3))
    fresh_fc = {k: v.clone() for k, v in fresh.state_dict().items() if is_classifier(k)}
    notes = []
    report = init_weights_from(fresh, source, DATA, note=notes.append)
    assert same(backbone(fresh.state_dict()), backbone(src))  # the whole backbone, BatchNorm statistics too
    assert same({k: v for k, v in fresh.state_dict().items() if is_classifier(k)}, fresh_fc)  # its own init
    assert report.classifier == "re-initialised" and report.source_classes == 5 and report.format == "agcn"
    assert report.epoch == 1 and report.modality == "joint" and report.benchmark == "ntu60-xsub"
    assert report.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert len(notes) == 1 and "5 classes, the data 3: the classifier (fc) is re-initialised" in notes[0]


def test_same_class_count_keeps_the_classifier(source):
    model = build_model(ModelConfig(num_classes=5))
    notes = []
    report = init_weights_from(model, source, DATA, note=notes.append)
    assert same(model.state_dict(), read_checkpoint(source)["model"])
    assert report.classifier == "loaded" and notes == []


def test_mmaction2_keys(tmp_path):
    """A foreign state dict: MMAction2's key names, its own 60-way head, the data's facts."""
    torch.manual_seed(1)
    ref = RefMMAAGCN(num_class=60)
    ref.backbone.data_bn.running_var.uniform_(0.5, 1.5)  # trained statistics, not the init's ones
    path = tmp_path / "mmaction2.pth"
    torch.save({"state_dict": ref.state_dict(), "meta": {"epoch": 16}}, path)
    model = build_model(ModelConfig(num_classes=3))
    notes = []
    report = init_weights_from(model, path, DATA, note=notes.append)
    assert report.format == "mmaction2" and report.source_classes == 60 and report.epoch is None
    assert torch.equal(model.blocks[3].tcn.conv.weight, ref.backbone.gcn[3].tcn.conv.weight)
    assert torch.equal(model.data_bn.running_var, ref.backbone.data_bn.running_var)
    assert model.fc.weight.shape == (3, 256) and "60 classes, the data 3" in notes[0]


def test_mismatches_are_one_line_naming_both_sides(source, tmp_path):
    def refused(model, path) -> str:
        with pytest.raises(AgcnError) as e:
            init_weights_from(model, path, DATA)
        message = str(e.value)
        assert "\n" not in message and message.startswith(str(path))
        return message

    coco = tmp_path / "coco.pt"  # an agcn checkpoint of another layout
    save_checkpoint(
        coco,
        build_model(ModelConfig(layout="coco17", num_classes=3)),
        DataInfo(layout="coco17", channels="x,y,score"),
        1,
    )
    assert "the checkpoint's layout is 'coco17', the data's is 'ntu25'" in refused(build_model(ModelConfig()), coco)
    xy = tmp_path / "xy.pt"  # 2 channels per joint
    save_checkpoint(xy, build_model(ModelConfig(in_channels=2)), DataInfo(channels="x,y"), 1)
    assert "the checkpoint's channels per joint is 2, the data's is 3" in refused(build_model(ModelConfig()), xy)
    original = build_model(ModelConfig(variant="2s-agcn"))
    assert "the checkpoint's variant is 'mmaction2', the config's is '2s-agcn'; train with --variant mmaction2" in (
        refused(original, source)
    )
    foreign = tmp_path / "coco_mmaction2.pth"  # foreign keys: the joints come from the weights
    torch.save(RefMMAAGCN(num_class=4, num_point=17, graph="coco").state_dict(), foreign)
    assert "the checkpoint's graph has 17 joints, the data's layout 'ntu25' has 25" in (
        refused(build_model(ModelConfig()), foreign)
    )
    foreign2 = tmp_path / "xy_mmaction2.pth"
    torch.save(RefMMAAGCN(num_class=4, in_channels=2).state_dict(), foreign2)
    assert "the checkpoint takes 2 channels per joint, the data has 3" in refused(build_model(ModelConfig()), foreign2)
    text = tmp_path / "notes.txt"
    text.write_text("not weights\n")
    assert "not a PyTorch checkpoint" in refused(build_model(ModelConfig()), text)
    other = tmp_path / "other.pt"  # a real torch file, but no model in it
    torch.save({"lr": torch.tensor(0.1)}, other)
    assert "not an AGCN checkpoint" in refused(build_model(ModelConfig()), other)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(source.read_bytes()[:5000])
    assert "not a readable PyTorch checkpoint" in refused(build_model(ModelConfig()), truncated)
    assert "no such checkpoint file" in refused(build_model(ModelConfig()), tmp_path / "missing.pt")


def test_a_layout_file_of_the_same_name_must_match(tmp_path):
    """Custom layouts are compared by their stored spec, not only by name."""
    raw = get_layout("coco17").to_dict()
    mine = json.dumps({**raw, "name": "mybody"})
    other = json.dumps({**raw, "name": "mybody", "bones": [[0, 0], [1, 0], [2, 1], *raw["bones"][3:]]})
    specs = [parse_layout(text, "mybody.json").spec() for text in (mine, other)]
    path = tmp_path / "mybody.pt"
    config = ModelConfig(layout="mybody", layout_spec=specs[0], in_channels=3, num_classes=4)
    data = DataInfo(layout="mybody", layout_spec=specs[0], channels="x,y,score")
    save_checkpoint(path, build_model(config), data, 1)
    init_weights_from(build_model(config), path, data)  # the same layout: fits
    with pytest.raises(AgcnError, match="the checkpoint's layout 'mybody' is not the data's layout of that name"):
        init_weights_from(build_model(replace(config, layout_spec=specs[1])), path, replace(data, layout_spec=specs[1]))


def test_cli_fine_tunes_records_the_source_and_freezes(tiny, source, tmp_path):
    """`agcn train --init-from`: a note, config.json's record, a frozen epoch then a trained one."""
    out = tmp_path / "ft"
    args = ["train", str(tiny), "-o", str(out), "--init-from", str(source), "--freeze-epochs", "1",
            "--backbone-lr-mult", "0.1", "--epochs", "2", "--stop-after", "1", "--clip-len", "4",
            "--batch-size", "4", "--lr", "0.05", "--no-auto-scale-lr", "--deterministic",
            "--no-tensorboard"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "last.pt has 5 classes, the data 3: the classifier (fc) is re-initialised" in r.output
    assert "fine-tuning from" in r.output and "backbone frozen for the first 1 epoch(s)" in r.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["init_from"] == str(source)
    record = saved["init_source"]
    assert record["path"] == str(source.resolve()) and record["format"] == "agcn"
    assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (record["modality"], record["benchmark"], record["epoch"]) == ("joint", "ntu60-xsub", 1)
    assert "init_from" not in RUN_CONTROL  # another CKPT is another run

    # epoch 1 was frozen: the backbone, BatchNorm statistics included, is the source's; fc moved
    src = read_checkpoint(source)["model"]
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 1 and same(backbone(ckpt["model"]), backbone(src))
    assert ckpt["init_source"] == record
    fc0 = ckpt["model"]["fc.weight"].clone()
    # two param groups: the classifier's at lr (the metrics' lr), the backbone's at lr x 0.1, scheduled alike
    groups = ckpt["optimizer"]["param_groups"]
    assert len(groups) == 2 and len(groups[0]["params"]) == 2  # fc weight and bias
    assert groups[1]["lr"] == pytest.approx(0.1 * groups[0]["lr"]) and groups[0]["lr"] < 0.05
    assert groups[1]["initial_lr"] == pytest.approx(0.005) and groups[0]["initial_lr"] == pytest.approx(0.05)

    # resume (init_from from config.json): epoch 2 trains the backbone, the run's own weights carry on
    r = runner.invoke(app, ["train", "--resume", "-o", str(out), "--stop-after", "2"])
    assert r.exit_code == 0, r.output
    assert "fine-tuning from" not in r.output  # the resumed run keeps its own weights
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 2 and not torch.equal(
        ckpt["model"]["blocks.0.gcn.conv_d.weight"], src["blocks.0.gcn.conv_d.weight"]
    )
    assert not torch.equal(ckpt["model"]["data_bn.running_mean"], src["data_bn.running_mean"])
    assert not torch.equal(ckpt["model"]["fc.weight"], fc0)
    assert json.loads((out / "config.json").read_text())["init_source"] == record

    # another --init-from on resume is refused, naming both
    r = runner.invoke(app, ["train", "--resume", "-o", str(out), "--init-from", str(tmp_path / "other.pt")])
    assert r.exit_code == 1
    assert "--resume with a different config: init_from" in r.output and len(r.output.strip().splitlines()) == 1


def test_config_json_is_a_valid_config(tiny, source, tmp_path):
    """config.json with its init_source record still reads as a --config file."""
    out = tmp_path / "run"
    fit(config(tiny, out, init_from=str(source), stop_after=1, epochs=2), log=quiet)
    again = build_config({"out": str(tmp_path / "again")}, out / "config.json")
    assert again.init_from == str(source)


def test_bad_options_are_one_line(tiny, source, tmp_path):
    cases = [
        (["--freeze-epochs", "1"], "--freeze-epochs needs --init-from"),
        (["--init-from", str(tmp_path / "nope.pt")], f"{tmp_path / 'nope.pt'}: no such checkpoint file"),
        (["--init-from", str(source), "--variant", "2s-agcn"], "the config's is '2s-agcn'"),
        (["--init-from", str(source), "--backbone-lr-mult", "-1"], "must be non-negative"),
    ]
    for extra, expected in cases:
        out = tmp_path / "bad"
        r = runner.invoke(app, ["train", str(tiny), "-o", str(out), "--clip-len", "4", *extra])
        assert r.exit_code == 1, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], r.output
        assert not out.exists()  # refused before the run folder was made
