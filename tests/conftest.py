import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the benchmarks/ reference transcriptions
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/skeleton_writer.py


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module: on a shared 2-core machine more threads spin-wait."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
