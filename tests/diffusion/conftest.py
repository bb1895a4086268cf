"""Shared fixtures: the tiny models here run fastest on one thread (and the CI machine has two
cores shared with other jobs), so each test runs with torch on one thread, restored afterwards."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs torch on one thread (tests/conftest.py)."""
