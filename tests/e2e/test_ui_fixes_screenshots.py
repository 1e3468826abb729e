"""The screenshots of the main pages linked from the README (docs/screenshots/), taken in Chromium at 1280x800
on demo-like data. Every run takes them (and checks each page rendered); they land in test-artifacts/ unless
``PYSTRUMENT_SCREENSHOTS=docs`` asks to refresh the committed ones:

    PYSTRUMENT_SCREENSHOTS=docs .nox/tests/bin/python -m pytest -q tests/e2e/test_ui_fixes_screenshots.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import ARTIFACTS, ROOT, chromium, require_built_ui
from ui_fixes_seed import analyse, no_errors, open_page, seed

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser(live_server: Any) -> Iterator[Any]:
    with chromium() as b:
        yield b


def test_screenshots_of_the_main_pages(live_server, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, "shop", requests_per_route=12, spread_s=300)
    seed(base, "catalog", requests_per_route=1)
    analyse(base, data.key, data.traces["/orders"][2], "en")
    analyse(base, data.key, data.traces["/products/{id}"][0], "zh")
    out = ROOT / "docs" / "screenshots" if os.environ.get("PYSTRUMENT_SCREENSHOTS") == "docs" else ARTIFACTS
    out.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, "en", width=1280, height=800)
    pid = data.project_id
    pages = [
        ("dashboard", f"/dashboard?project={pid}", "chart-latency"),
        ("projects", "/projects", "project-row"),
        ("monitor", f"/projects/{pid}/monitor?route=%2Forders", "hot-function"),
        ("trace", f"/projects/{pid}/traces/{data.traces['/orders'][2]}", "repeated-queries"),
        ("analyses", f"/projects/{pid}/analyses", "analysis-row"),
    ]
    for name, path, ready in pages:
        page.goto(base + path)
        expect(page.get_by_test_id(ready).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        target: Path = out / f"{name}.png"
        page.screenshot(path=str(target))
        assert target.stat().st_size > 10_000, f"{target} looks empty"
    no_errors(page)
