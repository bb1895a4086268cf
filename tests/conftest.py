"""Shared fixtures. Markers: `gpu` tests skip cleanly without CUDA."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    """Torch on one thread for the test, restored afterwards: tiny models run fastest so, and the CI
    machine has two cores shared with other jobs. Folders of tiny-model tests make it autouse."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
