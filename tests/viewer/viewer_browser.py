"""Headless-Chromium helpers for the viewer's browser tests (see conftest.py)."""

from __future__ import annotations

import io

import numpy as np

# --headless and --user-data-dir (a fresh temporary one) are added by Playwright itself.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 640, "height": 400}  # small: swiftshader renders on the CPU


class ViewerPage:
    """One browser page on the viewer, recording console errors and every request it makes."""

    def __init__(self, browser, base: str, **context_options):
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, **context_options)
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, hash_: str = "", timeout: float = 60_000) -> ViewerPage:
        self.page.goto(self.base + hash_)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60_000) -> None:
        self.page.wait_for_function("window.__ready === true", timeout=timeout)

    def state(self) -> dict:
        return self.page.evaluate("({...window.__viewer})")

    def canvas(self) -> np.ndarray:
        """The 3D view as an H x W x 3 uint8 array."""
        from PIL import Image

        png = self.page.locator(".viewport canvas").screenshot()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def foreign_requests(self, allowed: tuple[str, ...]) -> list[str]:
        return [u for u in self.requests if not u.startswith(allowed)]

    def close(self) -> None:
        self.context.close()


def colour_fraction(img: np.ndarray, colour: str) -> float:
    """Fraction of pixels that are clearly ``colour`` (red, green or blue): that channel high, the others low."""
    x = img.astype(int)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mask = {
        "red": (r > 140) & (g < 80) & (b < 80),
        "green": (g > 110) & (r < 90) & (b < 90),
        "blue": (b > 140) & (r < 80) & (g < 80),
    }[colour]
    return float(mask.mean())
