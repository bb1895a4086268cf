"""Shared fixtures: the tiny models here run fastest on one thread (and the CI machine has two
cores shared with other jobs), so each test runs with torch on one thread, restored afterwards."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
