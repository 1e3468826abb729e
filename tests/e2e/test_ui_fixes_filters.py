"""Issue 17, items 1 and 3: Min ms / Max ms filter (it used to throw ``e.trim is not a function`` and do
nothing), form errors shown, and filters that apply to the whole monitor page (summary, routes, hot functions,
requests); Service is a select of the project's services; the dashboard splits by service. English and Chinese."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser import chromium, require_built_ui
from ui_fixes_seed import no_errors, open_page, seed

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser(live_server: Any) -> Iterator[Any]:
    with chromium() as b:
        yield b


def durations(page: Any) -> list[float]:
    rows = page.get_by_test_id("record-row")
    return [float(rows.nth(i).get_attribute("data-duration") or "nan") for i in range(rows.count())]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_min_and_max_ms_filter_the_requests_and_errors_are_shown(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=4)  # durations 40..170 ms
    page = open_page(browser, lang)
    page.goto(f"{base}/projects/{data.project_id}/monitor")
    rows = page.get_by_test_id("record-row")
    expect(rows).to_have_count(12)
    form = page.get_by_test_id("filters")
    form.locator("input[name=min]").fill("100")
    form.locator("input[name=max]").fill("150")
    page.get_by_test_id("apply-filters").click()
    page.wait_for_url(re.compile(r".*min=100.*max=150"))
    expect(rows).to_have_count(4)  # /orders at 100, 110, 120, 130 ms; the other routes take 40-70 ms
    got = durations(page)
    assert got and all(0.1 <= d <= 0.15 for d in got), got
    summary = page.get_by_test_id("monitor-summary")
    expect(summary).to_contain_text("4")  # the summary counts the same requests as the table

    # Min over max: the form says so and does not navigate.
    form.locator("input[name=min]").fill("300")
    page.get_by_test_id("apply-filters").click()
    error = page.get_by_test_id("filter-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("最小毫秒" if lang == "zh" else "Min ms")
    assert "min=100" in page.url
    # Clearing the field removes the filter.
    form.locator("input[name=min]").fill("")
    page.get_by_test_id("apply-filters").click()
    page.wait_for_url(re.compile(r".*monitor\?max=150$"))
    expect(error).to_have_count(0)
    assert all(d <= 0.15 for d in durations(page))
    no_errors(page)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_filters_apply_to_the_whole_monitor_page(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=8)
    page = open_page(browser, lang)
    page.goto(f"{base}/projects/{data.project_id}/monitor")
    service = page.get_by_test_id("service-select")
    # The project's services, busiest first ties by name; "all" first.
    expect(service.locator("option")).to_have_count(3)
    options = [o.strip() for o in service.locator("option").all_inner_texts()]
    assert sorted(options[1:]) == ["catalog-api", "shop-web"], options

    form = page.get_by_test_id("filters")
    form.locator("select[name=status]").select_option("error")
    service.select_option("shop-web")
    page.get_by_test_id("apply-filters").click()
    page.wait_for_url(re.compile(r".*status=error.*service=shop-web"))
    rows = page.get_by_test_id("record-row")
    expect(rows).to_have_count(len(data.errors))
    assert {rows.nth(i).get_attribute("data-trace-id") for i in range(rows.count())} == set(data.errors)
    count = str(len(data.errors))
    expect(page.get_by_test_id("monitor-summary")).to_contain_text(
        f"{count} 个请求" if lang == "zh" else f"{count} requests"
    )
    # Routes: only the route that failed; hot functions: only functions of the failed requests.
    route_rows = page.get_by_test_id("route-row")
    expect(route_rows).to_have_count(1)
    expect(route_rows.first).to_contain_text("/products/{id}")
    hot = page.get_by_test_id("hot-function")
    expect(hot.first).to_be_visible()
    names = {hot.nth(i).get_attribute("data-name") for i in range(hot.count())}
    assert names == {"shop.views.products"}, names

    # The whole page follows "Clear": all three routes and the N+1 function are back.
    page.get_by_test_id("clear-filters").click()
    expect(route_rows).to_have_count(3)
    expect(page.locator("[data-testid=hot-function][data-name='shop.orders.fetch_order_items']")).to_have_count(1)
    no_errors(page)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_dashboard_splits_by_service(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=5)
    page = open_page(browser, lang)
    page.goto(f"{base}/dashboard?project={data.project_id}")
    expect(page.get_by_test_id("stat-count")).to_contain_text("15")
    split = page.get_by_test_id("by-service")
    expect(split.get_by_test_id("service-row")).to_have_count(2)
    expect(split.locator("[data-service='shop-web']")).to_contain_text("10")
    page.get_by_test_id("dashboard-service").select_option("catalog-api")
    page.wait_for_url(re.compile(r".*service=catalog-api"))
    expect(page.get_by_test_id("stat-count")).to_contain_text("5")
    expect(page.get_by_test_id("slow-route")).to_have_count(1)
    expect(page.get_by_test_id("slow-route").first).to_have_attribute("data-route", "/catalog/search")
    # The route link carries the service to the monitor.
    page.get_by_test_id("slow-route").first.get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/monitor\?.*route=%2Fcatalog%2Fsearch.*service=catalog-api"))
    expect(page.get_by_test_id("record-row")).to_have_count(5)
    no_errors(page)
