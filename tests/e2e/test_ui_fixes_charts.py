"""Issue 17, item 6: dashboard charts. Dragging brushes a time range that becomes the page's from/to (and selects
no text); clicking a point opens the requests of that time; with no range asked for, the range adapts to the
data (the last hour for a fresh burst) so the series are lines, not dots; throughput uses one unit per axis.
English and Chinese."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from browser import chromium, require_built_ui
from ui_fixes_seed import no_errors, open_page, seed

pytestmark = pytest.mark.browser

UNIT = re.compile(r"(/s|/min|/h|/秒|/分钟|/小时)$")


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser(live_server: Any) -> Iterator[Any]:
    with chromium() as b:
        yield b


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_default_range_lines_and_one_unit_per_axis(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=8, spread_s=200)  # a request every 25 s: every 30 s bucket has some
    page = open_page(browser, lang)
    page.goto(f"{base}/dashboard?project={data.project_id}")
    # No range asked for, none remembered: the data is minutes old, so the last hour.
    expect(page.locator("[data-testid=range] [aria-current=true]")).to_have_attribute("data-range", "1h")
    expect(page.get_by_test_id("stat-count")).to_contain_text("24")
    # The p95 series is a line through consecutive buckets, not isolated dots.
    p95 = page.get_by_test_id("chart-latency").locator("path[data-series=p95]")
    assert (p95.get_attribute("d") or "").count("L") >= 4, p95.get_attribute("d")

    # Throughput: every axis label and the read-out in one unit, the one the peak reads best in.
    labels = page.get_by_test_id("chart-throughput").locator("text.ylabel").all_text_contents()
    units = {m.group(1) for m in (UNIT.search(x.strip()) for x in labels if x.strip() not in ("0",)) if m}
    assert len(units) == 1, labels
    peak = page.get_by_test_id("stat-throughput").locator("strong").inner_text().strip()
    assert UNIT.search(peak) and UNIT.search(peak).group(1) in units, (peak, labels)  # type: ignore[union-attr]
    if lang == "zh":
        assert units <= {"/秒", "/分钟", "/小时"}, units
    no_errors(page)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_brush_sets_the_range_and_a_click_opens_the_requests(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=8, spread_s=1500)
    page = open_page(browser, lang)
    page.goto(f"{base}/dashboard?project={data.project_id}&range=1h")
    expect(page.get_by_test_id("stat-count")).to_contain_text("24")
    plot = page.get_by_test_id("chart-latency-plot")
    box = plot.bounding_box()
    assert box
    y = box["y"] + box["height"] / 2
    # Drag over the last quarter of the hour: part of the 25 minutes that hold data.
    page.mouse.move(box["x"] + box["width"] * 0.75, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.85, y, steps=8)
    expect(page.get_by_test_id("chart-brush")).to_be_visible()
    page.mouse.move(box["x"] + box["width"] * 0.99, y, steps=8)
    page.mouse.up()
    page.wait_for_url(re.compile(r".*/dashboard\?.*from=.*to=.*"))
    assert page.evaluate("window.getSelection().toString()") == "", "dragging selected text"
    query = parse_qs(urlparse(page.url).query)
    start, end = parse_iso(query["from"][0]), parse_iso(query["to"][0])
    assert 10 * 60 < (end - start).total_seconds() < 20 * 60, (start, end)
    expect(page.get_by_test_id("dashboard-window")).to_be_visible()
    expect(page.get_by_test_id("stat-count").locator("strong")).not_to_have_text("24")
    count = int(re.sub(r"\D", "", page.get_by_test_id("stat-count").locator("strong").inner_text()))
    assert 0 < count < 24, count  # fewer requests than the hour
    expect(page.locator("[data-testid=range] [aria-current=true]")).to_have_count(0)

    # Click a point: the monitor with that bucket's requests (a custom range of one bucket).
    plot = page.get_by_test_id("chart-latency-plot")
    box = plot.bounding_box()
    assert box
    for share in [i / 40 for i in range(39, 0, -1)]:
        page.mouse.click(box["x"] + box["width"] * share, box["y"] + box["height"] / 2)
        if "/monitor" in page.url:
            break
        page.wait_for_timeout(50)
    page.wait_for_url(re.compile(rf".*/projects/{data.project_id}/monitor\?.*range=custom.*start=.*end="))
    q = parse_qs(urlparse(page.url).query)
    lo, hi = parse_iso(q["start"][0]), parse_iso(q["end"][0])
    rows = page.get_by_test_id("record-row")
    expect(rows.first).to_be_visible()
    listed = httpx.get(
        base + "/api/v1/performance/records",
        params={"project_key": data.key, "start": q["start"][0], "end": q["end"][0], "size": 100},
    ).json()["data"]
    assert listed["total"] == rows.count() and listed["total"] > 0
    assert all(lo <= parse_iso(r["timestamp"]) < hi for r in listed["records"])
    no_errors(page)
