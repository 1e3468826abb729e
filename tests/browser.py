"""Debian's Chromium under Playwright for the UI tests, on the UI build the package ships."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB_DIST = ROOT / "analysis_api" / "pystrument_analysis" / "web_dist"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests drive the built UI the package ships; a missing build is a failure, not a skip."""
    monkeypatch.delenv("PYSTRUMENT_WEB_DIR", raising=False)
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail(f"the web UI is not built ({WEB_DIST / 'index.html'} missing): run nox -s web first")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Debian's binary: Playwright's own download is not available)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def checked_page(height: int, timeout_ms: int) -> Iterator[Any]:
    """One English page, 1366 wide; fails afterwards if any script error went uncaught in it."""
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1366, "height": height}, locale="en-US")
        page = context.new_page()
        page.set_default_timeout(timeout_ms)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            context.close()
        assert not errors, f"uncaught errors in the page: {errors}"
