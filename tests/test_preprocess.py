import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from agcn_cli.cli.app import app
from agcn_cli.errors import AgcnError
from agcn_cli.io.splitfile import check_split_file, read_meta, read_sample
from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.sources import ntu_convert
from agcn_cli.sources.formats import convert
from agcn_cli.sources.ntu import parse_skeleton
from agcn_cli.sources.pipeline import ConvertConfig
from agcn_cli.sources.recipes import make_sample
from tests.helpers import random_body, write_skeleton

runner = CliRunner()
# performers 1, 2 train (xsub); 3, 6 test
NAMES = [f"S001C00{c}P00{p}R001A00{a}" for p in (1, 2, 3, 6) for c in (1, 2) for a in (1, 2, 3)]


@pytest.fixture
def raw_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "raw"
    d.mkdir()
    for name in NAMES:
        body = random_body(rng, int(rng.integers(12, 30)))
        write_skeleton(d / f"{name}.skeleton", [[(7, j)] for j in body])
    return d


def _run(raw_dir, out, **kw):
    return convert(ConvertConfig(raw_dir, out, workers=kw.pop("workers", 1), **kw))


def test_splits_and_round_trip(raw_dir, tmp_path):
    report = _run(raw_dir, tmp_path / "out", recipe="2s-agcn")
    assert report.splits["train"].samples == 12 and report.splits["test"].samples == 12
    attrs = check_split_file(tmp_path / "out" / "train.h5")
    assert attrs["benchmark"] == "ntu60-xsub" and attrs["recipe"] == "2s-agcn" and attrs["layout"] == "ntu25"
    assert attrs["num_classes"] == 60 and attrs["split"] == "train" and attrs["schema_version"] == 1
    meta = read_meta(tmp_path / "out" / "test.h5")
    assert set(meta["subject"]) == {3, 6}
    assert list(meta["name"]) == sorted(meta["name"])
    norm = get_layout("ntu25").normalize
    with h5py.File(tmp_path / "out" / "test.h5") as f:
        for i in (0, 5, 11):
            name = meta["name"][i]
            expected, _ = make_sample(parse_skeleton(raw_dir / f"{name}.skeleton"), "2s-agcn", norm)
            sample = read_sample(f, i)  # (C, T, V, M)
            assert sample.shape == (3, expected.shape[1], 25, 2)
            np.testing.assert_array_equal(sample, expected.transpose(3, 1, 2, 0))
            assert meta["label"][i] == int(name[-3:]) - 1
            assert meta["num_frames"][i] == expected.shape[1]


def test_missing_list_and_benchmark_filter(raw_dir, tmp_path):
    missing = tmp_path / "missing.txt"
    missing.write_text("S001C001P001R001A001\nS001C002P003R001A002\n")
    write_skeleton(raw_dir / "S018C001P001R001A001.skeleton", [[(1, random_body(np.random.default_rng(1), 1)[0])]])
    report = _run(raw_dir, tmp_path / "out", missing_list=missing)
    assert report.excluded == 2 and report.outside_benchmark == 1
    assert report.splits["train"].samples == 11 and report.splits["test"].samples == 11
    xview = _run(raw_dir, tmp_path / "xview", benchmark="ntu60-xview", missing_list=missing)
    assert set(read_meta(tmp_path / "xview" / "test.h5")["camera"]) == {1}
    assert xview.splits["test"].samples == 11


def test_bad_files_skipped_and_listed_or_strict(raw_dir, tmp_path):
    (raw_dir / "S001C001P001R001A009.skeleton").write_text("")
    (raw_dir / "S001C001P001R001A010.skeleton").write_text("5\r\n1\r\n")
    (raw_dir / "not_an_ntu_name.skeleton").write_text("1\r\n0\r\n")
    report = _run(raw_dir, tmp_path / "out")
    reasons = dict(report.skipped)
    assert set(reasons) == {
        "S001C001P001R001A009.skeleton",
        "S001C001P001R001A010.skeleton",
        "not_an_ntu_name.skeleton",
    }
    assert "empty file" in reasons["S001C001P001R001A009.skeleton"]
    assert "truncated" in reasons["S001C001P001R001A010.skeleton"]
    assert report.splits["train"].samples == 12
    with pytest.raises(AgcnError, match="convention|empty|truncated"):
        _run(raw_dir, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict" / "train.h5").exists()


def test_existing_output_needs_overwrite(raw_dir, tmp_path):
    _run(raw_dir, tmp_path / "out")
    with pytest.raises(AgcnError, match="already exists; pass --overwrite"):
        _run(raw_dir, tmp_path / "out")
    _run(raw_dir, tmp_path / "out", overwrite=True)


def test_interrupted_run_leaves_nothing(raw_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = ntu_convert._process

    def flaky(job):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(ntu_convert, "_process", flaky)
    with pytest.raises(KeyboardInterrupt):
        _run(raw_dir, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no final file, no temporary file


def test_two_workers_same_output(raw_dir, tmp_path):
    _run(raw_dir, tmp_path / "one", workers=1)
    _run(raw_dir, tmp_path / "two", workers=2)
    for split in ("train", "test"):
        with h5py.File(tmp_path / "one" / f"{split}.h5") as a, h5py.File(tmp_path / "two" / f"{split}.h5") as b:
            np.testing.assert_array_equal(a["joint"][:], b["joint"][:])
            assert list(a["name"].asstr()[:]) == list(b["name"].asstr()[:])


def test_not_a_directory_and_no_files(tmp_path):
    with pytest.raises(AgcnError, match="nope: no such file or folder"):
        _run(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(AgcnError, match="notes.txt: a file, not a folder of .skeleton files"):
        _run(tmp_path / "notes.txt", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AgcnError, match="no .skeleton files"):
        _run(tmp_path / "empty", tmp_path / "out")


def test_cli_preprocess_and_info(raw_dir, tmp_path):
    result = runner.invoke(app, ["preprocess", str(raw_dir), str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "train" in result.stdout and "test" in result.stdout
    result = runner.invoke(app, ["info", str(tmp_path / "out" / "train.h5"), "--json"])
    assert result.exit_code == 0
    assert '"samples": 12' in result.stdout
    result = runner.invoke(app, ["preprocess", str(raw_dir), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "already exists" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["preprocess", str(raw_dir), str(tmp_path / "x"), "--benchmark", "ntu99"])
    assert result.exit_code == 1 and "choose one of: ntu60-xsub" in result.stderr


def test_info_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    result = runner.invoke(app, ["info", str(bad)])
    assert result.exit_code == 1 and "not a readable HDF5 file" in result.stderr
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something-else"
    result = runner.invoke(app, ["info", str(tmp_path / "other.h5")])
    assert result.exit_code == 1 and "not an agcn skeleton file" in result.stderr
