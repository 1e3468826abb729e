"""The function view in Chromium, English and Chinese: the planted slow function's callers, callees, share of
request time over time and the requests that called it, slowest first, linking to their traces."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from browser import ARTIFACTS, checked_page, require_built_ui
from flame_traces import SLOW_FILE, SLOW_FN, new_project, send_checkouts, wait_for_records

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    with checked_page(900, TIMEOUT_MS) as page:
        yield page


@pytest.fixture
def shop(live_server: Any) -> dict[str, Any]:
    project_id, key = new_project(live_server.url, "function-shop")
    now = time.time_ns()
    sent = send_checkouts(live_server.url, key, [now - (40 - 3 * i) * 60 * 1_000_000_000 for i in range(10)],
                          [i in (3, 7) for i in range(10)])  # fmt: skip
    wait_for_records(live_server.url, key, 10)
    return {"base": live_server.url, "id": project_id, "sent": sent}


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_function_view_of_the_planted_function(shop, browser_page, locale: str) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    base, pid = shop["base"], shop["id"]
    page.goto(base + "/")
    page.evaluate(f"localStorage.setItem('pystrument.locale', '{locale}')")
    page.goto(f"{base}/projects/{pid}/function?{urlencode({'name': SLOW_FN, 'file': SLOW_FILE, 'range': '1h'})}")
    page.get_by_test_id("function-summary").wait_for()
    assert page.get_by_test_id("function-name").inner_text() == SLOW_FN
    summary = page.get_by_test_id("function-summary").inner_text()
    assert "10" in summary
    if locale == "zh":
        assert CJK.search(summary), summary
    callers = page.locator("[data-testid=function-callers] tbody tr").evaluate_all(
        "r => r.map(x => x.dataset.function)"
    )
    callees = page.locator("[data-testid=function-callees] tbody tr").evaluate_all(
        "r => r.map(x => x.dataset.function)"
    )
    assert callers == ["shop.views.checkout"] and callees == ["shop.pricing.tax_rate"]
    assert "30" in page.locator("[data-testid=function-callees] tbody tr").first.inner_text()  # 3 calls x 10 requests
    assert int(page.get_by_test_id("function-chart").get_attribute("data-points") or 0) >= 1
    traces = page.locator("[data-testid=function-traces] tbody tr")
    assert traces.count() == 10
    slow_ids = {s.trace_id for s in shop["sent"] if s.slow}
    assert {traces.nth(0).get_attribute("data-trace"), traces.nth(1).get_attribute("data-trace")} == slow_ids
    page.screenshot(path=str(ARTIFACTS / f"views-function-{locale}.png"), full_page=True)
    # A caller is itself a link to its function view; the slowest request opens its trace.
    assert "function?name=shop.views.checkout" in (
        page.locator("[data-testid=function-callers] a").first.get_attribute("href") or ""
    )
    traces.nth(0).locator("a").click()
    page.wait_for_url(re.compile(r"/traces/[0-9a-f]{32}"))
    assert page.url.rsplit("/", 1)[1].split("?")[0] in slow_ids


def test_function_view_of_a_function_nobody_called(shop, browser_page) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    page.goto(f"{shop['base']}/projects/{shop['id']}/function?name=nobody.calls.me&range=1h")
    page.get_by_test_id("function-none").wait_for()
