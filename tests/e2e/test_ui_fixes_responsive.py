"""Issue 17, item 7: 390 px wide (a phone). The header no longer forces 800 px, the project and language
selectors are on screen, the requests table keeps its key columns in view, and the waterfall's axis labels
do not overprint. English and Chinese."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from browser import chromium, require_built_ui
from ui_fixes_seed import no_errors, open_page, seed

pytestmark = pytest.mark.browser
WIDTH = 390


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser(live_server: Any) -> Iterator[Any]:
    with chromium() as b:
        yield b


def page_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def inside_viewport(page: Any, locator: Any) -> bool:
    box = locator.bounding_box()
    return bool(box) and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH + 0.5


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pages_fit_390_px(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=4)
    page = open_page(browser, lang, width=WIDTH, height=844)

    for path in (
        f"/dashboard?project={data.project_id}",
        "/projects",
        f"/projects/{data.project_id}/monitor",
        f"/projects/{data.project_id}/analyses",
        f"/projects/{data.project_id}/traces/{data.traces['/orders'][0]}",
    ):
        page.goto(base + path)
        expect(page.get_by_test_id("project-select")).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert page_width(page) <= WIDTH, f"{path} is {page_width(page)} px wide at {WIDTH} px"
        for testid in ("project-select", "locale", "nav-monitor", "trace-search"):
            assert inside_viewport(page, page.get_by_test_id(testid)), f"{testid} is off-screen on {path}"

    # The requests table: request, status, duration and time in view without scrolling sideways.
    page.goto(f"{base}/projects/{data.project_id}/monitor")
    row = page.get_by_test_id("record-row").first
    expect(row).to_be_visible()
    cells = row.locator("td:visible")
    assert cells.count() >= 4, cells.count()
    for i in range(4):
        assert inside_viewport(page, cells.nth(i)), f"column {i} of the requests table is off-screen"

    # The waterfall's axis labels never overlap.
    page.goto(f"{base}/projects/{data.project_id}/traces/{data.traces['/orders'][0]}")
    ticks = page.get_by_test_id("waterfall").locator(".tick")
    expect(ticks.first).to_be_visible()
    boxes = [ticks.nth(i).bounding_box() for i in range(ticks.count())]
    boxes = sorted((b for b in boxes if b), key=lambda b: b["x"])
    assert len(boxes) >= 2
    for a, b in pairwise(boxes):
        assert a["x"] + a["width"] <= b["x"] + 0.5, f"axis labels overlap: {boxes}"
    no_errors(page)
