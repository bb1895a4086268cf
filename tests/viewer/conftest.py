"""Viewer test fixtures: generated result folders, a running server, and headless Chromium.

Browser tests (marker ``browser``) drive Debian's ``chromium`` through the Python ``playwright``
package with the flags that render WebGL2 headless (docs: /work/shared/ENVIRONMENT.md, "Browser
tests"); they skip with the reason when either is missing. CI installs both (.ci/run).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from viewer_browser import CHROMIUM_FLAGS, ViewerPage
from viewer_fixtures import make_results


@pytest.fixture(scope="session")
def results_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    make_results(root)
    return root


@pytest.fixture(scope="session")
def server(results_root):
    from gen3d.viewer.server import ViewerServer

    with ViewerServer(results_root) as srv:
        yield srv


@pytest.fixture(scope="session")
def browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; CI installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def viewer(browser, server):
    vp = ViewerPage(browser, server.url)
    yield vp
    vp.close()
