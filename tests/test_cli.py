"""The command line as a whole: instant help, model-info, one-line errors."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from agcn_cli.cli.app import app

COMMANDS = ("synth", "preprocess", "info", "streams", "model-info", "train", "eval", "fuse", "predict")


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
    assert r.output.strip().splitlines() == ["error: unknown layout 'ntu26'; choose one of: coco17, ntu25, openpose18"]
    r = CliRunner().invoke(app, ["model-info", "--variant", "stgcn"])
    assert r.exit_code == 1 and "unknown model variant 'stgcn'" in r.output


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
    from test_streams_h5 import write_split

    split = write_split(tmp_path / "test.h5")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    cases = [
        (["info", str(folder)], "a-folder: not a readable HDF5 file"),  # h5py's own text spans lines
        (["eval", str(text), str(split)], "notes.txt: not a PyTorch checkpoint"),
    ]
    for args, expected in cases:
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 1, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], r.output
