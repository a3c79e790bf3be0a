"""The one conversion entry: one detector of what a path holds (for `agcn preprocess` and `agcn
predict`), one `ConvertConfig` for every format, the option checks in the library, the progress
the library opens, and `agcn synth` on the pipeline's worker pool."""

import pickle
from contextlib import contextmanager

import numpy as np
import pytest

from agcn_cli.errors import AgcnError
from agcn_cli.sources.formats import FILE_FORMATS, convert, detect_input_format, source_format
from agcn_cli.sources.pipeline import MIN_POOL_JOBS, ConvertConfig
from agcn_cli.sources.samples import PREDICT_KINDS, SPLIT_SUFFIXES, input_kind
from agcn_cli.sources.synth import SynthConfig, generate, sample_names
from tests.helpers import random_body, write_skeleton

NAMES = [f"S001C001P00{p}R001A00{a}" for p in (1, 3) for a in (1, 2)]  # xsub: P001 train, P003 test


@pytest.fixture
def inputs(tmp_path):
    """A folder of .skeleton files, a 3D .pkl of the same names, gendata arrays, a Kinetics root."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in NAMES:
        write_skeleton(raw / f"{name}.skeleton", [[(7, j)] for j in random_body(rng, 12)])
    anns = [{"frame_dir": n, "label": int(n[-1]) - 1, "total_frames": 12,
             "keypoint": rng.normal(size=(1, 12, 25, 3)).astype(np.float16)} for n in NAMES]  # fmt: skip
    split = {"xsub_train": NAMES[:2], "xsub_val": NAMES[2:]}
    (tmp_path / "a.pkl").write_bytes(pickle.dumps({"split": split, "annotations": anns}))
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    np.save(arrays / "train_data_joint.npy", np.zeros((1, 3, 4, 25, 2), np.float32))
    (tmp_path / "kin" / "kinetics_val").mkdir(parents=True)
    return tmp_path


def test_one_detector_for_folders_and_files(inputs):
    assert detect_input_format(inputs / "raw") == "ntu"
    assert detect_input_format(inputs / "arrays") == "npy"
    assert detect_input_format(inputs / "kin") == "kinetics"  # the release root
    (inputs / "videos").mkdir()
    (inputs / "videos" / "videos_label.json").write_text("{}")
    assert detect_input_format(inputs / "videos") == "ntu"  # a label file alone tells nothing
    (inputs / "videos" / "abc.json").write_text("{}")
    assert detect_input_format(inputs / "videos") == "kinetics"
    for suffix, found in FILE_FORMATS.items():  # a file by its suffix, in any case, there or not
        assert detect_input_format(inputs / f"x{suffix}") == found
        assert detect_input_format(inputs / f"X{suffix.upper()}") == found
    assert detect_input_format(inputs / "notes.txt") is None
    assert SPLIT_SUFFIXES == (".h5", ".hdf5")


def test_preprocess_and_predict_read_the_one_detector(inputs):
    (inputs / "UP.PKL").write_bytes((inputs / "a.pkl").read_bytes())
    (inputs / "notes.txt").write_text("x")
    # agcn preprocess: a folder as detected; of files, only .pkl and .npy convert (lower case)
    assert [source_format(inputs / p) for p in ("raw", "arrays", "kin", "a.pkl")] == ["ntu", "npy", "kinetics", "pkl"]
    assert [source_format(inputs / p) for p in ("UP.PKL", "notes.txt", "nope")] == ["ntu"] * 3  # the ntu path names it
    assert source_format(inputs / "raw", "pkl") == "pkl"  # --format wins
    with pytest.raises(AgcnError, match="nope.npy: no such file"):
        source_format(inputs / "nope.npy")
    with pytest.raises(AgcnError, match=r"unknown input format 'xyz'; choose one of: auto, ntu, pkl, kinetics, npy"):
        source_format(inputs / "raw", "xyz")
    # agcn predict: the same detector, in predict's kinds
    assert [input_kind(inputs / p) for p in ("raw", "kin", "a.pkl", "UP.PKL")] == ["skeleton", "kinetics", "pkl", "pkl"]
    assert input_kind(inputs / "raw" / f"{NAMES[0]}.skeleton") == PREDICT_KINDS["ntu"] == "skeleton"
    assert input_kind(inputs / "arrays") == "skeleton"  # a folder predict reads as .skeleton files
    for path, error in (("notes.txt", "not an input agcn reads"), ("arrays/train_data_joint.npy", "not an input"),
                        ("nope.pkl", "nope.pkl: no such file or folder")):  # fmt: skip
        with pytest.raises(AgcnError, match=error):
            input_kind(inputs / path)


def test_one_config_converts_every_format(inputs):
    skeletons = convert(ConvertConfig(inputs / "raw", inputs / "out1", workers=1))
    annotations = convert(ConvertConfig(inputs / "a.pkl", inputs / "out2", workers=1))
    for report in (skeletons, annotations):
        assert {s: r.samples for s, r in report.splits.items()} == {"train": 2, "test": 2}


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("raw", {"split_names": ("a",)}, "--split-names applies to a .pkl or Kinetics-Skeleton input"),
        ("raw", {"split_names": ()}, "--split-names applies to a .pkl"),  # an empty --split-names is given
        ("raw", {"num_classes": 3}, "--num-classes applies to a .pkl"),
        ("raw", {"layout": "coco17"}, "--layout coco17: .skeleton files hold the Kinect ntu25 layout"),
        ("raw", {"benchmark": "ntu99"}, "unknown benchmark 'ntu99'"),
        ("raw", {"recipe": "r"}, "unknown recipe 'r'"),
        ("nope", {"benchmark": "ntu99"}, "unknown benchmark"),  # the options first, then the folder
        ("nope", {}, "nope: no such file or folder"),
        ("a.pkl", {"missing_list": "m.txt"}, "--missing-list applies to .skeleton folders, not to"),
        ("arrays", {"missing_list": "m.txt"}, "--missing-list applies to .skeleton folders"),
    ],
)
def test_options_are_checked_once_in_the_library_before_progress_opens(inputs, source, options, message):
    opened = []
    with pytest.raises(AgcnError, match=message):
        convert(ConvertConfig(inputs / source, inputs / "out", **options), progress=lambda *a: opened.append(a))
    assert opened == [] and not (inputs / "out").exists()


def test_the_library_opens_the_progress_it_counts(inputs):
    seen: list = []

    @contextmanager
    def bar(total, what, unit):
        ticks: list[int] = []
        seen.append((total, what, unit, ticks))
        yield type("Bar", (), {"update": staticmethod(ticks.append)})()

    (inputs / "raw" / "S001C001P001R001A099.skeleton").write_text("1\r\n0\r\n")  # no NTU60 benchmark's
    (inputs / "raw" / "bad_name.skeleton").write_text("1\r\n0\r\n")
    convert(ConvertConfig(inputs / "raw", inputs / "out1", workers=1), progress=bar)
    convert(ConvertConfig(inputs / "a.pkl", inputs / "out2", workers=1), progress=bar)
    assert [(t, w, u, sum(n)) for t, w, u, n in seen] == [(6, "preprocess", "file", 6), (None, "import", "sample", 4)]


def test_synth_writes_through_the_pipeline_pool(tmp_path):
    config = SynthConfig(actions=(1, 2, 50), samples_per_class=6, min_frames=20, max_frames=24, workers=1)
    assert 3 * 6 >= MIN_POOL_JOBS  # two workers do start a pool
    ticks: list[int] = []
    one = generate(tmp_path / "one", config, progress=ticks.append)
    two = generate(tmp_path / "two", SynthConfig(**{**config.__dict__, "workers": 2}))
    names = [f"{n}.skeleton" for n in sample_names(config)]
    assert [p.name for p in one] == [p.name for p in two] == names and sum(ticks) == 18
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True))
    assert not [p for p in (tmp_path / "two").iterdir() if ".tmp-" in p.name]  # atomic: no temporary left
