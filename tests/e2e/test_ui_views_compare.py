"""Compare in Chromium, English and Chinese: two traces (from the trace page's "compare with…"), and two time
ranges of a route, as a differential flame graph that marks the slower side's planted function."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from browser import ARTIFACTS, checked_page, require_built_ui
from flame_traces import SLOW_FN, new_project, send_checkouts, wait_for_records

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
CJK = re.compile(r"[\u4e00-\u9fff]")
MINUTE = 60 * 1_000_000_000


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    with checked_page(900, TIMEOUT_MS) as page:
        yield page


@pytest.fixture
def shop(live_server: Any) -> dict[str, Any]:
    """Six fast requests 50-40 minutes ago (range A), six slow ones 20-10 minutes ago (range B)."""
    project_id, key = new_project(live_server.url, "compare-shop")
    now = time.time_ns()
    fast = send_checkouts(live_server.url, key, [now - (50 - 2 * i) * MINUTE for i in range(6)], [False] * 6)
    slow = send_checkouts(live_server.url, key, [now - (20 - 2 * i) * MINUTE for i in range(6)], [True] * 6)
    wait_for_records(live_server.url, key, 12)
    return {"base": live_server.url, "id": project_id, "key": key, "fast": fast, "slow": slow, "now": now}


def drawn(page: Any) -> None:
    page.wait_for_function("() => Number(document.querySelector('[data-testid=agg-flame]')?.dataset.drawn || 0) > 0")


def first_delta(page: Any) -> tuple[str, float]:
    row = page.locator("[data-testid=compare-functions] tbody tr").first
    return str(row.get_attribute("data-function")), float(row.get_attribute("data-delta") or 0)


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_compare_two_traces_from_the_trace_page(shop, browser_page, locale: str) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    base, pid = shop["base"], shop["id"]
    a, b = shop["fast"][0].trace_id, shop["slow"][0].trace_id
    page.goto(base + "/")
    page.evaluate(f"localStorage.setItem('pystrument.locale', '{locale}')")
    page.goto(f"{base}/projects/{pid}/traces/{a}")
    page.get_by_test_id("trace-compare-input").fill(b)
    page.get_by_test_id("trace-compare").click()
    page.wait_for_url(re.compile(r"/compare\?"))
    drawn(page)
    assert f"a={a}" in page.url and f"b={b}" in page.url
    name, delta = first_delta(page)
    assert name == SLOW_FN and delta == pytest.approx(0.18, abs=0.005)  # 200 ms in B against 20 ms in A
    summary = page.get_by_test_id("compare-summary").inner_text()
    assert ("per request" in summary) if locale == "en" else CJK.search(summary)
    # The planted function's frame (the widest under the view, at the left) reads A → B with a positive delta.
    canvas = page.get_by_test_id("agg-canvas")
    box = canvas.bounding_box()
    assert page.get_by_test_id("agg-flame").get_attribute("data-mode") == "icicle"
    page.mouse.move(box["x"] + box["width"] * 0.05, box["y"] + 2 * 18 + 9)
    info = page.get_by_test_id("agg-info").inner_text()
    assert SLOW_FN in info and "+" in info
    page.screenshot(path=str(ARTIFACTS / f"views-compare-traces-{locale}.png"), full_page=True)
    page.get_by_test_id("compare-open-b").click()
    page.wait_for_url(re.compile(f"/traces/{b}"))


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_compare_two_time_ranges_of_a_route(shop, browser_page, locale: str) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    base, pid, now = shop["base"], shop["id"], shop["now"]

    def iso(ns: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))

    query = urlencode(
        {
            "route": "/checkout",
            "a_from": iso(now - 55 * MINUTE),
            "a_to": iso(now - 35 * MINUTE),
            "b_from": iso(now - 25 * MINUTE),
            "b_to": iso(now),
        }
    )
    page.goto(base + "/")
    page.evaluate(f"localStorage.setItem('pystrument.locale', '{locale}')")
    page.goto(f"{base}/projects/{pid}/compare?{query}")
    drawn(page)
    name, delta = first_delta(page)
    assert name == SLOW_FN and delta == pytest.approx(0.18, abs=0.005)
    summary = page.get_by_test_id("compare-summary").inner_text()
    assert "6" in summary
    unchanged = page.locator("[data-testid=compare-functions] tr[data-function='shop.cart.load_cart']")
    assert float(unchanged.get_attribute("data-delta") or 1) == pytest.approx(0, abs=1e-6)
    heading = page.locator("[data-testid=compare-page] h2").inner_text()
    assert heading == ("Compare" if locale == "en" else "对比")
    page.screenshot(path=str(ARTIFACTS / f"views-compare-ranges-{locale}.png"), full_page=True)


def test_compare_without_enough_input_says_what_it_needs(shop, browser_page) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    page.goto(f"{shop['base']}/projects/{shop['id']}/compare?a={shop['fast'][0].trace_id}")
    assert "two trace ids" in page.get_by_test_id("compare-need").inner_text()
    page.goto(f"{shop['base']}/projects/{shop['id']}/compare?a={shop['fast'][0].trace_id}&b={'0' * 32}")
    page.get_by_test_id("error").wait_for()
    assert "trace not found" in page.get_by_test_id("error").inner_text()
