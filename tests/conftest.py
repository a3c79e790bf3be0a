"""Shared fixtures. Helpers are imported as `tests.helpers`, oracles as `tests.reference.*`
(pytest puts the repository root on the path, since tests/ is a package)."""

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module: on a shared 2-core machine more threads spin-wait."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Random 3-class splits (labels 0-2) of 12 and 7 samples: for mechanics, not learning."""
    from tests.helpers import write_split

    d = tmp_path_factory.mktemp("tiny")
    write_split(d / "train.h5", (5, 9, 12, 7, 10, 6, 8, 11, 4, 9, 10, 6))
    write_split(d / "test.h5", (7, 9, 5, 8, 10, 6, 4), seed=1)  # odd: 2 ranks pad one sample
    return d


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny agcn checkpoint (3 classes, ntu25), untrained: for the commands that read one."""
    import torch

    from agcn_cli.io.checkpoint import DataInfo, save_checkpoint
    from agcn_cli.models.agcn import ModelConfig, build_model

    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    save_checkpoint(d / "joint.pt", build_model(ModelConfig(num_classes=3)), DataInfo(clip_len=8), epoch=1)
    return d / "joint.pt"


@pytest.fixture(scope="module")
def ntu_2sagcn(tmp_path_factory):
    """(raw folder, train.h5, cases): a 2s-agcn split of samples shorter than the window, persons
    leaving, entering and with gaps (tests/test_recipe_2sagcn._ntu_files)."""
    import numpy as np

    from agcn_cli.sources.formats import convert
    from agcn_cli.sources.pipeline import ConvertConfig
    from tests.test_recipe_2sagcn import _ntu_files

    root = tmp_path_factory.mktemp("ntu2s")
    cases = _ntu_files(root / "raw", np.random.default_rng(11))
    convert(ConvertConfig(root / "raw", root / "data", recipe="2s-agcn", workers=1))
    return root / "raw", root / "data" / "train.h5", cases
