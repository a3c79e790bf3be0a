"""The command line as a whole: instant help, model-info, one-line errors."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from agcn_cli.cli.app import app

COMMANDS = (
    "synth",
    "preprocess",
    "info",
    "streams",
    "model-info",
    "train",
    "eval",
    "fuse",
    "predict",
    "export",
    "show",
    "plot",
)


def test_help_lists_every_command_without_importing_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from agcn_cli.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "print(r.output)\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', 'H5PY' if 'h5py' in sys.modules else 'NO-H5PY')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in done.stdout
    assert "NO-TORCH NO-H5PY" in done.stdout


def test_model_info_measures():
    r = CliRunner().invoke(app, ["model-info", "--json", "--clip-len", "20"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["params"] == 3_469_520
    assert summary["input_shape"] == [1, 3, 20, 25, 2]
    assert 1.0e9 < summary["macs"] < 1.5e9  # a fifth of the 6.47 G of a 100-frame clip
    r = CliRunner().invoke(app, ["model-info", "--variant", "2s-agcn"])
    assert r.exit_code == 0 and "3,469,510 parameters" in r.output


def test_model_info_errors_are_one_line():
    r = CliRunner().invoke(app, ["model-info", "--layout", "ntu26"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "error: unknown layout 'ntu26'; choose one of: coco17, coco17-3d, ntu25, openpose18, "
        "or give a .json layout file"
    ]
    r = CliRunner().invoke(app, ["model-info", "--variant", "stgcn"])  # Typer checks the choice (models/choices.py)
    assert r.exit_code == 1 and r.output.splitlines() == ["error: --variant 'stgcn': choose one of: 2s-agcn, mmaction2"]


def test_outputs_get_their_folder_and_os_errors_are_one_line(tmp_path):
    import pytest

    from agcn_cli.errors import AgcnError
    from agcn_cli.io.atomic import atomic_output

    target = tmp_path / "new" / "deeper" / "out.txt"
    with atomic_output(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(AgcnError, match="a-file/out.txt: cannot create its folder"):
        with atomic_output(blocker / "out.txt"):
            pass
    r = CliRunner().invoke(app, ["synth", str(blocker / "raw"), "--samples-per-class", "1"])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "a-file" in lines[0], r.output


def test_bad_inputs_give_one_line(tmp_path):
    from tests.helpers import write_split

    split = write_split(tmp_path / "test.h5")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    cases = [
        (["info", str(folder)], "a-folder: a folder, not a split file"),  # h5py's own text spans lines
        (["eval", str(text), str(split)], "notes.txt: not a PyTorch checkpoint"),
    ]
    for args, expected in cases:
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 1, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], r.output


def test_train_options_are_the_config_fields(tmp_path, monkeypatch):
    """`agcn train` derives its options from TrainConfig: one per field, with its help and default."""
    from dataclasses import asdict, fields

    import typer

    import agcn_cli.engine.fit as fit_module
    from agcn_cli.engine.config import PRECISIONS, TrainConfig
    from agcn_cli.engine.device import DEVICES
    from agcn_cli.models.agcn import VARIANTS
    from agcn_cli.skeleton.streams import STREAMS

    params = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    config_fields = {f.name: f for f in fields(TrainConfig)}
    assert set(params) == set(config_fields) | {"config_file", "as_json"}
    for name, f in config_fields.items():
        param = params[name]
        assert param.default is None, name  # not given: a --config file or the resumed run's config.json decides
        assert param.help.startswith(f.metadata["help"]), name
        if f.default not in (None, ""):
            value = f.default
            shown = (
                ("on" if value else "off")
                if isinstance(value, bool)
                else f"{value:g}"
                if isinstance(value, float)
                else value
            )
            assert param.help.endswith(f"Default: {shown}."), (name, param.help)
        if name == "data":
            continue
        flag = "--" + name.replace("_", "-")
        assert flag in param.opts, (name, param.opts)
        if isinstance(f.default, bool):
            assert param.secondary_opts == ([] if name in ("resume", "overwrite") else ["--no-" + flag[2:]])
    assert params["out"].opts == ["--out", "-o"]
    for name, allowed in {"modality": STREAMS, "variant": VARIANTS, "device": DEVICES, "precision": PRECISIONS}.items():
        assert all(value in params[name].help for value in allowed), name
    r = CliRunner().invoke(app, ["train", "--help"])
    assert r.exit_code == 0, r.output
    for param in params.values():
        assert all(opt in r.output for opt in param.opts if opt.startswith("--")), param.opts

    # the flags reach the config with the field's type; what is not given keeps the dataclass default
    seen = []
    monkeypatch.setattr(fit_module, "fit", lambda config, log: seen.append(config) or {"rank": 1, "interrupted": None})
    out = str(tmp_path / "run")
    args = ["d", "-o", out, "--epochs", "3", "--lr", "0.5", "--no-nesterov", "--compile", "--val", "v.h5",
            "--num-classes", "5", "--modality", "bone", "--overwrite"]  # fmt: skip
    r = CliRunner().invoke(app, ["train", *args])
    assert r.exit_code == 0, r.output
    expected = TrainConfig(data="d", out=out, epochs=3, lr=0.5, nesterov=False, compile=True, val="v.h5",
                           num_classes=5, modality="bone", overwrite=True)  # fmt: skip
    assert [asdict(c) for c in seen] == [asdict(expected)]
    assert {k: type(v) for k, v in asdict(seen[0]).items()} == {k: type(v) for k, v in asdict(expected).items()}


def test_a_value_outside_a_closed_set_is_one_line():
    """Each closed set is declared once; Typer checks it; the line names the option and its values."""
    from agcn_cli.engine.config import DEVICES, PRECISIONS, SAMPLINGS, SCHEDULES
    from agcn_cli.evaluation.choices import CHECKPOINTS
    from agcn_cli.models.choices import EXPORT_FORMATS, VARIANTS
    from agcn_cli.skeleton.streams import DERIVED_STREAMS, STREAMS
    from agcn_cli.sources.choices import SOURCE_FORMATS, SPLITS
    from agcn_cli.sources.ntu import BENCHMARKS
    from agcn_cli.sources.recipes import RECIPES

    cases = [
        (["preprocess", "in", "out", "--benchmark", "ntu99"], "--benchmark 'ntu99'", BENCHMARKS),
        (["preprocess", "in", "out", "--recipe", "r"], "--recipe 'r'", RECIPES),
        (["preprocess", "in", "out", "--format", "csv"], "--format 'csv'", SOURCE_FORMATS),
        (["preprocess", "in", "out", "--split", "val"], "--split 'val'", SPLITS),
        (["streams", "f.h5", "--modality", "joint"], "--modality 'joint'", (*DERIVED_STREAMS, "all")),
        (["model-info", "--variant", "stgcn"], "--variant 'stgcn'", VARIANTS),
        (["train", "d", "--variant", "x"], "--variant 'x'", VARIANTS),
        (["train", "d", "--device", "gpu"], "--device 'gpu'", DEVICES),
        (["train", "d", "--precision", "fp16"], "--precision 'fp16'", PRECISIONS),
        (["train", "d", "--schedule", "linear"], "--schedule 'linear'", SCHEDULES),
        (["train", "d", "--sampling", "all"], "--sampling 'all'", SAMPLINGS),
        (["eval", "c.pt", "t.h5", "--device", "gpu"], "--device 'gpu'", DEVICES),
        (["eval", "c.pt", "t.h5", "--checkpoint", "first"], "--checkpoint 'first'", CHECKPOINTS),
        (["eval", "c.pt", "t.h5", "--modality", "hand"], "--modality 'hand'", STREAMS),
        (["predict", "c.pt", "x.pkl", "--recipe", "r"], "--recipe 'r'", RECIPES),
        (["predict", "c.pt", "x.pkl", "--device", "tpu"], "--device 'tpu'", DEVICES),
        (["export", "c.pt", "m.x", "-f", "tflite"], "--format 'tflite'", EXPORT_FORMATS),
        (["export", "c.pt", "m.x", "-f", "onnx", "--modality", "hand"], "--modality 'hand'", STREAMS),
        (["show", "x.h5", "--modality", "speed"], "--modality 'speed'", STREAMS),
    ]
    for args, said, allowed in cases:
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 1, (args, r.output)
        assert r.stdout == "" and r.stderr.splitlines() == [f"error: {said}: choose one of: {', '.join(allowed)}"], args


def test_command_line_mistakes_are_one_line():
    """An unknown option or command, a missing argument, a value of the wrong type: one `error:` line
    (click's words, its exit code 2), for every command; no usage box."""
    cases = [
        (["eval", "c.pt"], "Missing argument 'test_file'; see agcn eval --help"),
        (
            ["export", "c.pt", "m.onnx"],
            "Missing option '--format' / '-f'. Choose from: onnx, torchscript, exported, "
            "mmaction2; see agcn export --help",
        ),  # fmt: skip
        (["eval", "c.pt", "t.h5", "--clips", "0"], "Invalid value for '--clips'"),
        (["train", "d", "--epochs", "two"], "Invalid value for '--epochs'"),
        (["info", "f.h5", "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'"),
        (["--debug"], "Missing command; see agcn --help"),
    ]
    for args, said in cases:
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], (args, r.stderr)
        assert "Usage:" not in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, [])  # agcn alone: its help
    assert "Commands" in r.output and "error:" not in r.output


def test_closed_sets_are_listed_in_help_and_reach_the_library_as_strings(tmp_path, monkeypatch):
    """Typer lists a closed set's values in --help; the library (and config.json) get plain strings."""
    from dataclasses import asdict

    import agcn_cli.engine.fit as fit_module
    from agcn_cli.cli.options import plain
    from agcn_cli.skeleton.streams import Stream

    assert "<auto|cpu|cuda>" in CliRunner().invoke(app, ["eval", "--help"]).output
    assert "<last|best>" in CliRunner().invoke(app, ["eval", "--help"]).output
    member = Stream("joint-motion")
    assert type(plain(member)) is str and plain(member) == "joint-motion" and json.dumps(member) == '"joint-motion"'
    seen = []
    monkeypatch.setattr(fit_module, "fit", lambda config, log: seen.append(config) or {"rank": 1, "interrupted": None})
    args = ["d", "-o", str(tmp_path / "run"), "--variant", "2s-agcn", "--device", "cpu", "--precision", "fp32",
            "--schedule", "step", "--sampling", "full"]  # fmt: skip
    r = CliRunner().invoke(app, ["train", *args])
    assert r.exit_code == 0, r.output
    given = {"variant": "2s-agcn", "device": "cpu", "precision": "fp32", "schedule": "step", "sampling": "full"}
    assert {k: (type(v), v) for k, v in asdict(seen[0]).items() if k in given} == {
        k: (str, v) for k, v in given.items()
    }
