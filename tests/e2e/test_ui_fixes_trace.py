"""Issue 17, items 4, 5 and 8 in the trace view and the monitor: DB spans labelled by their statement, the 25
identical queries of an N+1 grouped (×25), hot functions counting 25 calls per request, flame-graph tooltips not
clipped by their box, links from hot functions / the tail table / the trace header, trace-id search in the
header and a copy button for the trace id. English and Chinese."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser import chromium, require_built_ui
from ui_fixes_seed import FETCH_FILE, FETCH_FN, N1_QUERY, N_PLUS_ONE, no_errors, open_page, seed

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser(live_server: Any) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_n_plus_one_shows_as_grouped_labelled_queries(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=3)
    trace_id = data.traces["/orders"][0]
    page = open_page(browser, lang)
    page.goto(f"{base}/projects/{data.project_id}/traces/{trace_id}")

    # Every DB span is labelled by its statement, not "SELECT", and tagged ×25.
    db_rows = page.locator("[data-testid=span-row][data-span-name='SELECT']")
    expect(db_rows.first).to_be_visible()
    label = db_rows.first.get_by_test_id("span-label")
    expect(label).to_have_text(N1_QUERY)
    expect(db_rows.first.get_by_test_id("repeat-tag")).to_have_text(f"×{N_PLUS_ONE}")

    # The repeated-queries list names the statement once, ×25; clicking it selects one of its spans.
    repeated = page.get_by_test_id("repeated-query")
    expect(repeated).to_have_count(1)
    expect(repeated.first).to_have_attribute("data-count", str(N_PLUS_ONE))
    expect(repeated.first).to_contain_text(N1_QUERY)
    expect(page.get_by_test_id("repeated-queries")).to_contain_text("重复查询" if lang == "zh" else "Repeated queries")
    repeated.first.get_by_role("button").click()
    expect(page.get_by_test_id("span-details")).to_contain_text(N1_QUERY)
    assert "span=" in page.url

    # The monitor's hot functions count 25 calls per request in 3 requests, and link to the function view.
    page.goto(f"{base}/projects/{data.project_id}/monitor?route=%2Forders")
    fn = page.locator(f"[data-testid=hot-function][data-name='{FETCH_FN}']")
    expect(fn).to_have_attribute("data-calls", str(N_PLUS_ONE * 3))
    expect(fn).to_have_attribute("data-traces", "3")
    expect(fn.get_by_test_id("calls-per-request").locator("strong")).to_have_text(str(N_PLUS_ONE))
    title = fn.get_by_test_id("calls-per-request").get_attribute("title") or ""
    zh = f"3 个请求中每个请求调用 {N_PLUS_ONE} 次"
    expected = zh if lang == "zh" else f"{N_PLUS_ONE} calls/request in 3 requests"
    assert title == expected, title
    # The queries it started, per request: what shows an N+1 when the SDK merged the loop into one span.
    queries = f"每请求 {N_PLUS_ONE} 次查询" if lang == "zh" else f"{N_PLUS_ONE} queries/request"
    expect(fn.get_by_test_id("child-spans-per-request")).to_have_text(queries)
    expect(fn).to_have_attribute("data-child-spans", str(N_PLUS_ONE * 3))
    href = fn.get_by_test_id("hot-function-link").get_attribute("href") or ""
    url = urlparse(href)
    assert url.path == f"/projects/{data.project_id}/function", href
    assert parse_qs(url.query)["name"] == [FETCH_FN] and parse_qs(url.query)["file"] == [FETCH_FILE], href
    # "Why the slowest requests are slow": its rows link to the function view too.
    tail_link = page.get_by_test_id("tail-function-link").first
    expect(tail_link).to_have_attribute("href", re.compile(rf"^/projects/{data.project_id}/function\?name="))
    no_errors(page)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_trace_header_links_search_and_copy(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=3)
    other = seed(base, "Other", requests_per_route=1)
    trace_id = data.traces["/products/{id}"][1]
    page = open_page(browser, lang)
    page.goto(f"{base}/projects/{data.project_id}/monitor")
    expect(page.get_by_test_id("record-row").first).to_be_visible()

    # Trace-id search in the header: a bad id is refused with a message; a trace of another project is found too.
    search = page.get_by_test_id("trace-search")
    search.locator("input").fill("not-a-trace")
    search.locator("input").press("Enter")
    expect(page.get_by_test_id("trace-search-error")).to_contain_text("32")
    search.locator("input").fill("f" * 32)
    search.locator("input").press("Enter")
    expect(page.get_by_test_id("trace-search-error")).to_contain_text("ffffffffffff")
    search.locator("input").fill(trace_id.upper())
    search.locator("input").press("Enter")
    page.wait_for_url(f"{base}/projects/{data.project_id}/traces/{trace_id}")
    other_trace = other.traces["/orders"][0]
    search.locator("input").fill(other_trace)
    search.locator("button").click()
    page.wait_for_url(f"{base}/projects/{other.project_id}/traces/{other_trace}")
    page.goto(f"{base}/projects/{data.project_id}/traces/{trace_id}")

    # The trace id has a copy button; the clipboard gets the id.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    expect(page.get_by_test_id("trace-id")).to_have_text(trace_id)
    page.get_by_test_id("trace-summary").get_by_role("button").click()
    assert page.evaluate("navigator.clipboard.readText()") == trace_id
    expect(page.get_by_test_id("trace-summary")).not_to_contain_text("TRACE ID" if lang == "zh" else "链路")

    # Route and service in the header lead to the monitor filtered by them.
    page.get_by_test_id("trace-route").click()
    page.wait_for_url(re.compile(rf".*/projects/{data.project_id}/monitor\?route=%2Fproducts%2F%7Bid%7D&method=GET"))
    expect(page.get_by_test_id("record-row")).to_have_count(3)
    page.go_back()
    page.get_by_test_id("trace-service").click()
    page.wait_for_url(re.compile(rf".*/projects/{data.project_id}/monitor\?service=shop-web"))
    expect(page.get_by_test_id("record-row")).to_have_count(6)
    no_errors(page)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_flame_tooltip_is_not_clipped_by_its_box(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=1)
    page = open_page(browser, lang, height=700)
    page.goto(f"{base}/projects/{data.project_id}/traces/{data.traces['/orders'][0]}")
    canvas = page.get_by_test_id("flame-canvas")
    expect(page.get_by_test_id("flame-graph")).not_to_have_attribute("data-drawn", "0")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box
    row = int(canvas.get_attribute("data-row-height") or "18")
    # The deepest row (the N+1 calls), right at the bottom of the box: the tooltip would overflow it.
    canvas.hover(position={"x": box["width"] * 0.5, "y": box["height"] - row / 2})
    tip = page.get_by_test_id("flame-tooltip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("fetch_order_items")
    tip_box = tip.bounding_box()
    assert tip_box
    viewport = page.viewport_size
    assert tip_box["x"] >= 0 and tip_box["x"] + tip_box["width"] <= viewport["width"], tip_box
    assert tip_box["y"] >= 0 and tip_box["y"] + tip_box["height"] <= viewport["height"], tip_box
    # Nothing clips it: the element at its bottom-left corner is the tooltip itself.
    hit = page.evaluate(
        """([x, y]) => {
            const tip = document.querySelector('[data-testid=flame-tooltip]');
            tip.style.pointerEvents = 'auto';  // it ignores the pointer; hit-testing needs it for a moment
            const found = !!document.elementFromPoint(x, y)?.closest('[data-testid=flame-tooltip]');
            tip.style.pointerEvents = '';
            return found;
        }""",
        [tip_box["x"] + 4, tip_box["y"] + tip_box["height"] - 3],
    )
    assert hit, "the tooltip is clipped or covered"
    no_errors(page)
