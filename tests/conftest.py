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
