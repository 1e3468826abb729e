"""The aggregated flame graph page in Chromium, English and Chinese: a route's planted traces merged by call
path, the planted slow function as wide as it should be, flame/icicle, search, click-to-zoom, the function link."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser import ARTIFACTS, checked_page, require_built_ui
from flame_traces import SLOW_FN, new_project, send_checkouts, wait_for_records

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
CJK = re.compile(r"[\u4e00-\u9fff]")
# 8 fast requests (61 ms, recalculate 20 ms) and 4 slow ones (241 ms, recalculate 200 ms) in the last 30 minutes.
EXPECTED_SHARE = (8 * 20 + 4 * 200) / (8 * 61 + 4 * 241)


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    with checked_page(900, TIMEOUT_MS) as page:
        yield page


@pytest.fixture
def shop(live_server: Any) -> tuple[str, int, str]:
    project_id, key = new_project(live_server.url, "flame-shop")
    now = time.time_ns()
    starts = [now - (30 - 2 * i) * 60 * 1_000_000_000 for i in range(12)]
    send_checkouts(live_server.url, key, starts, [i % 3 == 2 for i in range(12)])
    wait_for_records(live_server.url, key, 12)
    return live_server.url, project_id, key


def drawn(page: Any) -> None:
    page.wait_for_function("() => Number(document.querySelector('[data-testid=agg-flame]')?.dataset.drawn || 0) > 0")


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_route_flame_graph_shows_the_planted_slow_function(shop, browser_page, locale: str) -> None:  # type: ignore[no-untyped-def]
    base, project_id, _key = shop
    page = browser_page
    page.goto(base + "/")
    page.evaluate(f"localStorage.setItem('pystrument.locale', '{locale}')")
    page.goto(f"{base}/projects/{project_id}/flame?route=%2Fcheckout&range=1h")
    drawn(page)
    heading = page.locator("[data-testid=flame-page] h2").inner_text()
    assert heading == ("Aggregated flame graph" if locale == "en" else "聚合火焰图")
    summary = page.get_by_test_id("flame-summary").inner_text()
    assert "12" in summary and "15" not in summary
    if locale == "zh":
        assert CJK.search(summary), summary

    # The functions table: the planted function first by self time, with its share of the route's time.
    rows = page.locator("[data-testid=flame-functions] tbody tr")
    assert rows.first.get_attribute("data-function") == SLOW_FN
    share = float(
        page.locator(f"[data-testid=flame-functions] tr[data-function='{SLOW_FN}'] td[data-share]").get_attribute(
            "data-share"
        )
        or 0
    )
    assert share == pytest.approx(EXPECTED_SHARE, abs=0.01)
    names = rows.evaluate_all("rows => rows.map(r => r.dataset.function)")
    assert {"shop.views.checkout", "shop.cart.load_cart", "shop.db.fetch_row", "shop.pricing.tax_rate"} <= set(names)
    assert not any(n.startswith("SELECT") for n in names), "only function spans are merged"

    flame = page.get_by_test_id("agg-flame")
    assert flame.get_attribute("data-mode") == "flame"
    # Root, view, then the planted function is the widest child of the view: it starts at the left edge.
    canvas = page.get_by_test_id("agg-canvas")
    box = canvas.bounding_box()
    max_depth = int(canvas.get_attribute("data-max-depth") or 0)
    row = 18
    y_depth2 = (max_depth - 2) * row + row / 2  # flame: the root is the bottom row
    page.mouse.move(box["x"] + box["width"] * 0.05, box["y"] + y_depth2)
    assert page.get_by_test_id("agg-info-name").inner_text() == SLOW_FN
    page.mouse.click(box["x"] + box["width"] * 0.05, box["y"] + y_depth2)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=agg-flame]').dataset.zoom === 'shop.views.checkout;" + SLOW_FN + "'"
    )
    assert (
        page.get_by_test_id("agg-function-link")
        .get_attribute("href")
        .startswith(f"/projects/{project_id}/function?name=")
    )
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.querySelector('[data-testid=agg-flame]').dataset.zoom === ''")

    # Icicle: the root on top.
    page.get_by_test_id("agg-mode-icicle").click()
    assert flame.get_attribute("data-mode") == "icicle"
    page.mouse.move(box["x"] + box["width"] * 0.05, box["y"] + 2 * row + row / 2)
    assert page.get_by_test_id("agg-info-name").inner_text() == SLOW_FN

    # Search highlights the matching call paths and says how much of the time they cover.
    page.get_by_test_id("agg-search").fill("tax_rate")
    page.wait_for_function("() => document.querySelector('[data-testid=agg-flame]').dataset.matches === '1'")
    assert "%" in page.get_by_test_id("agg-search-share").inner_text()
    page.screenshot(path=str(ARTIFACTS / f"views-flame-{locale}.png"), full_page=True)

    # A function row leads to the function view.
    page.locator(f"[data-testid=flame-functions] tr[data-function='{SLOW_FN}'] a").click()
    page.wait_for_url(re.compile(r"/function\?"))
    assert page.get_by_test_id("function-name").inner_text() == SLOW_FN


def test_service_flame_and_an_empty_range(shop, browser_page) -> None:  # type: ignore[no-untyped-def]
    base, project_id, _key = shop
    page = browser_page
    page.goto(f"{base}/projects/{project_id}/flame?service=shop&range=1h")
    drawn(page)
    assert page.locator(f"[data-testid=flame-functions] tr[data-function='{SLOW_FN}']").count() == 1
    # "Compare two time ranges" splits the range in halves on the compare page.
    page.get_by_test_id("flame-compare-link").click()
    page.wait_for_url(re.compile(r"/compare\?.*a_from="))
    drawn(page)
    assert page.get_by_test_id("compare-kind-ranges").is_checked()
    assert page.locator(f"[data-testid=compare-functions] tr[data-function='{SLOW_FN}']").count() == 1
    page.goto(f"{base}/projects/{project_id}/flame?route=%2Fnowhere&range=1h")
    page.get_by_test_id("flame-none").wait_for()


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_a_monitor_route_opens_its_flame_graph_over_the_same_window(shop, browser_page, locale: str) -> None:  # type: ignore[no-untyped-def]
    base, project_id, _key = shop
    page = browser_page
    page.goto(base + "/")
    page.evaluate(f"localStorage.setItem('pystrument.locale', '{locale}')")
    page.goto(f"{base}/projects/{project_id}/monitor?range=1h")
    link = page.locator("[data-testid=route-row][data-route='/checkout'] [data-testid=route-flame-link]")
    link.wait_for()
    assert link.inner_text() == ("flame" if locale == "en" else "火焰图")
    link.click()
    page.wait_for_url(re.compile(r"/flame\?"))
    assert "route=%2Fcheckout" in page.url and "range=1h" in page.url, page.url
    drawn(page)
    assert "12" in page.get_by_test_id("flame-summary").inner_text()
    assert page.locator("[data-testid=flame-page] [data-range='1h']").get_attribute("aria-current") == "true"
