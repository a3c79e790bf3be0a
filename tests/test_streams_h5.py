"""Materialised streams in split files: values, idempotence, --force, atomicity, refusals."""

import h5py
import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.io import splitfile, streamfile
from agcn_cli.io.splitfile import check_split_file, read_sample
from agcn_cli.io.streamfile import materialize_streams
from agcn_cli.skeleton.layouts import get_layout
from agcn_cli.skeleton.streams import DERIVED_STREAMS, STREAMS, compute_stream, compute_stream_frames
from tests.helpers import digest, random_body, storage, write_skeleton, write_split


@pytest.mark.parametrize("layout", ["ntu25", "coco17"])
@pytest.mark.parametrize("stream", STREAMS)
def test_frames_function_equals_compute_stream_per_sample(layout, stream):
    lay = get_layout(layout)
    rng = np.random.default_rng(1)
    lengths = np.array([3, 1, 7, 4])
    frames = rng.normal(size=(lengths.sum(), 2, lay.num_joints, len(lay.channels))).astype(np.float32)
    out = compute_stream_frames(frames, stream, lay, lengths)
    assert out.shape == frames.shape and out.dtype == np.float32
    for start, t in zip(np.cumsum(lengths) - lengths, lengths, strict=True):
        sample = frames[start : start + t].transpose(3, 0, 2, 1)  # (C, T, V, M)
        expected = compute_stream(sample, stream, lay).transpose(1, 3, 2, 0)
        np.testing.assert_array_equal(out[start : start + t], expected)


@pytest.mark.parametrize("layout", ["ntu25", "coco17"])
def test_materialised_streams_match_compute_stream(tmp_path, layout):
    path = write_split(tmp_path / "train.h5", layout=layout)
    report = materialize_streams(path, list(DERIVED_STREAMS))
    assert report["written"] == list(DERIVED_STREAMS) and report["already_present"] == []
    check_split_file(path)
    lay = get_layout(layout)
    with h5py.File(path) as f:
        assert f.attrs["normalized"] and f.attrs["layout"] == layout  # attributes carried over
        for stream in DERIVED_STREAMS:
            assert storage(f[stream]) == storage(f["joint"])
            for i in range(len(f["offset"])):
                expected = compute_stream(read_sample(f, i), stream, lay)
                np.testing.assert_array_equal(read_sample(f, i, stream), expected)
    assert splitfile.summarize(path)["streams"] == "joint, bone, joint-motion, bone-motion"


def test_idempotent_and_force(tmp_path):
    path = write_split(tmp_path / "train.h5")
    materialize_streams(path, ["bone"])
    before = digest(path)
    report = materialize_streams(path, ["bone"])
    assert report["written"] == [] and report["already_present"] == ["bone"]
    assert digest(path) == before  # nothing rewritten
    report = materialize_streams(path, ["bone", "joint-motion"])  # only the missing one
    assert report["written"] == ["joint-motion"] and report["already_present"] == ["bone"]

    with h5py.File(path, "r+") as f:  # spoil the stored bone
        expected = f["bone"][:]
        f["bone"][:] = 0
    assert materialize_streams(path, ["bone"])["already_present"] == ["bone"]
    report = materialize_streams(path, ["bone"], force=True)
    assert report["written"] == ["bone"] and report["already_present"] == []
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["bone"][:], expected)
        assert set(f) >= {"joint", "bone", "joint-motion", "name", "label"}
    assert [p.name for p in tmp_path.iterdir()] == ["train.h5"]


def test_interrupted_run_leaves_the_original(tmp_path, monkeypatch):
    path = write_split(tmp_path / "train.h5", lengths=[40] * 30)
    materialize_streams(path, ["bone"])
    before = digest(path)
    calls = {"n": 0}
    real = streamfile.compute_stream_frames

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # in the second block of samples
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(streamfile, "compute_stream_frames", flaky)
    real_blocks = splitfile.sample_blocks
    monkeypatch.setattr(splitfile, "sample_blocks", lambda *a, **k: real_blocks(*a, **{**k, "max_frames": 200}))
    with pytest.raises(KeyboardInterrupt):
        materialize_streams(path, ["joint-motion", "bone-motion", "bone"], force=True)
    assert calls["n"] == 5
    assert digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["train.h5"]  # no temporary file left
    with h5py.File(path) as f:
        assert "joint-motion" not in f and "bone" in f


def test_refusals(tmp_path):
    raw = write_split(tmp_path / "raw.h5", normalized=False)
    with pytest.raises(AgcnError, match="normalized=False"):
        materialize_streams(raw, ["bone"])
    path = write_split(tmp_path / "train.h5")
    with pytest.raises(AgcnError, match="choose from: bone, joint-motion, bone-motion"):
        materialize_streams(path, ["joint"])
    with pytest.raises(AgcnError, match="'bones'.*choose from: bone, joint-motion, bone-motion"):
        materialize_streams(path, ["bone", "bones"])
    with pytest.raises(AgcnError, match="no such file"):
        materialize_streams(tmp_path / "nope.h5", ["bone"])
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(AgcnError, match="not a readable HDF5 file"):
        materialize_streams(tmp_path / "bad.h5", ["bone"])


def test_progress_counts_samples(tmp_path):
    path = write_split(tmp_path / "train.h5", lengths=[50] * 9)
    seen = []
    materialize_streams(path, list(DERIVED_STREAMS), progress=seen.append)
    assert sum(seen) == 9


def test_sample_blocks():
    lengths = np.array([3, 5, 2, 9, 1])
    offset = np.cumsum(lengths) - lengths
    assert splitfile.sample_blocks(offset, lengths, max_frames=8) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert splitfile.sample_blocks(offset, lengths, max_frames=100) == [(0, 5)]
    assert splitfile.sample_blocks(offset[:0], lengths[:0]) == []
    with pytest.raises(AgcnError, match="not stored back to back"):
        splitfile.sample_blocks(offset + 1, lengths)


def test_preprocessed_file_round_trip(tmp_path, monkeypatch):
    from agcn_cli.engine.data import BatchLoader, SkeletonDataset
    from agcn_cli.sources.formats import convert
    from agcn_cli.sources.pipeline import ConvertConfig

    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    raw.mkdir()
    for a in (1, 2, 50):  # A050 is a two-person action
        one, two = random_body(rng, 20), random_body(rng, 20, offset=(1.0, 0.0, 3.0))
        frames = [[(7, j), (9, k)] if a == 50 else [(7, j)] for j, k in zip(one, two, strict=True)]
        write_skeleton(raw / f"S001C001P001R001A{a:03d}.skeleton", frames)
    convert(ConvertConfig(raw, tmp_path / "out", workers=1))
    path = tmp_path / "out" / "train.h5"
    plain = SkeletonDataset(path, "bone-motion", clip_len=16, num_clips=2, test_mode=True)
    expected, _, _ = next(iter(BatchLoader(plain, 3)))
    assert materialize_streams(path, ["bone-motion"])["written"] == ["bone-motion"]
    shared = SkeletonDataset(path, "bone-motion", clip_len=16, num_clips=2, test_mode=True)
    assert shared.shared and shared.source == "joint"  # uniform clips: derived per batch from the shared joints
    monkeypatch.setenv("AGCN_JOINT_CACHE", "off")
    stored = SkeletonDataset(path, "bone-motion", clip_len=16, num_clips=2, test_mode=True)
    assert stored.source == "bone-motion"  # each process's own copy: the stored stream is read
    np.testing.assert_array_equal(next(iter(BatchLoader(shared, 3)))[0].numpy(), expected.numpy())
    got, _, _ = next(iter(BatchLoader(stored, 3)))
    assert got.shape == (3, 2, 3, 16, 25, 2)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_streams_cli(tmp_path):
    from typer.testing import CliRunner

    from agcn_cli.cli.app import app

    path = write_split(tmp_path / "train.h5")
    runner = CliRunner()
    first = runner.invoke(app, ["streams", str(path), "--modality", "bone"])
    assert first.exit_code == 0, first.output
    assert "wrote bone for 8 samples" in first.output
    with h5py.File(path) as f:
        assert "bone" in f and "joint-motion" not in f
    before = digest(path)
    again = runner.invoke(app, ["streams", str(path), "--modality", "bone"])
    assert again.exit_code == 0 and "bone already present (pass --force to rewrite it)" in again.output
    assert digest(path) == before  # idempotent: the file is not touched
    every = runner.invoke(app, ["streams", str(path), "--json"])
    assert every.exit_code == 0, every.output
    assert '"already_present": [\n    "bone"' in every.output
    with h5py.File(path) as f:
        assert set(DERIVED_STREAMS) <= set(f)
    forced = runner.invoke(app, ["streams", str(path), "--modality", "bone", "--force"])
    assert forced.exit_code == 0 and "wrote bone" in forced.output
    bad = runner.invoke(app, ["streams", str(path), "--modality", "joint"])
    assert bad.exit_code == 1
    assert "--modality 'joint': choose one of: bone, joint-motion, bone-motion, all" in bad.output
    missing = runner.invoke(app, ["streams", str(tmp_path / "nope.h5")])
    assert missing.exit_code == 1 and "nope.h5: no such file" in missing.output
