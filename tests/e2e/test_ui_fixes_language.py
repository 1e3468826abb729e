"""Issue 17, items 9 and 10: the analyses list shows each analysed request's route, duration and service, with a
filter and a sort; an analysis written in another language than the UI's says so; the Chinese UI translates
what it left in English ("TRACE ID", "/min", "min", the GC/CPU tags, "manual · en"); one 24-hour time format;
dark mode follows the system."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser import chromium, require_built_ui
from ui_fixes_seed import analyse, no_errors, open_page, seed

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser(live_server: Any) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_analyses_list_language_hints_and_translations(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=2)
    slow = data.traces["/orders"][1]  # 110 ms
    fast = data.traces["/catalog/search"][0]  # 40 ms
    other = "zh" if lang == "en" else "en"
    analyse(base, data.key, slow, other)
    analyse(base, data.key, fast, lang)

    page = open_page(browser, lang)
    page.goto(f"{base}/projects/{data.project_id}/analyses")
    rows = page.get_by_test_id("analysis-row")
    expect(rows).to_have_count(2)
    # Each row names the analysed request, its duration and service.
    slow_row = page.locator("[data-testid=analysis-row][data-route='/orders']")
    expect(slow_row).to_contain_text("/orders")
    expect(slow_row).to_contain_text("110 ms")
    expect(slow_row).to_contain_text("shop-web")
    # The analysis in the other language says so; the one in the UI's language does not.
    hint = "written in Chinese" if lang == "en" else "以英文撰写"
    expect(slow_row.get_by_test_id("analysis-language")).to_have_text(hint)
    expect(
        page.locator("[data-testid=analysis-row][data-route='/catalog/search'] [data-testid=analysis-language]")
    ).to_have_count(0)
    # Sort by the slowest request, then filter by service.
    page.get_by_test_id("analyses-sort").select_option("duration")
    expect(rows.first).to_have_attribute("data-route", "/orders")
    page.get_by_test_id("analyses-sort").select_option("time")
    expect(rows.first).to_have_attribute("data-route", "/catalog/search")  # the newest
    page.get_by_test_id("analyses-filter").fill("catalog-api")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-route", "/catalog/search")
    page.get_by_test_id("analyses-filter").fill("no-such-thing")
    expect(page.get_by_test_id("analyses-no-match")).to_be_visible()

    # The analysis page: its type and language in the UI's words, and the hint on the result.
    page.goto(f"{base}/projects/{data.project_id}/traces/{slow}")
    page.goto(base + f"/projects/{data.project_id}/analyses")
    rows.first.wait_for()
    page.locator("[data-testid=analysis-row][data-route='/orders'] td").nth(0).get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/analyses/analysis_.*\?project=\d+$"))
    meta = page.locator("p.meta")
    if lang == "zh":
        expect(meta).to_contain_text("手动")
        expect(meta).to_contain_text("英文" if other == "en" else "中文")
        expect(meta).not_to_contain_text("manual")
    else:
        expect(meta).to_contain_text("manual")
        expect(meta).to_contain_text("Chinese")
    expect(page.get_by_test_id("analysis-result").get_by_test_id("analysis-language")).to_have_text(hint)
    assert not re.search(r"\b(AM|PM)\b", page.locator("body").inner_text()), "a 12-hour time"
    no_errors(page)


def test_chinese_ui_translates_the_leftovers(live_server, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, requests_per_route=8, spread_s=200)
    page = open_page(browser, "zh")
    page.goto(f"{base}/projects/{data.project_id}/traces/{data.traces['/orders'][0]}")
    summary = page.get_by_test_id("trace-summary")
    expect(summary).to_contain_text("链路 ID")
    expect(summary).not_to_contain_text("TRACE ID")
    page.goto(f"{base}/dashboard?project={data.project_id}")
    expect(page.get_by_test_id("stat-count")).to_contain_text("24")
    title = page.get_by_test_id("chart-throughput").locator("figcaption .title").inner_text()
    assert "min" not in title and "秒" in title, title  # "吞吐量（每 30 秒 一个点）"
    labels = " ".join(page.get_by_test_id("chart-throughput").locator("text.ylabel").all_text_contents())
    peak = page.get_by_test_id("stat-throughput").inner_text()
    for text in (labels, peak):
        assert not re.search(r"/(s|min|h)\b", text), text
    body = page.locator("body").inner_text()
    assert not re.search(r"\b(AM|PM)\b", body)
    no_errors(page)


def test_dark_mode_follows_the_system(live_server, browser) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    data = seed(base, requests_per_route=1)
    colours = {}
    for dark in (False, True):
        page = open_page(browser, "en", dark=dark)
        page.goto(f"{base}/projects/{data.project_id}/monitor")
        page.get_by_test_id("record-row").first.wait_for()
        colours[dark] = page.evaluate(
            "() => [getComputedStyle(document.documentElement).backgroundColor,"
            " getComputedStyle(document.querySelector('table.data')).backgroundColor,"
            " getComputedStyle(document.querySelector('h2')).color]"
        )
        no_errors(page)

    def luminance(css: str) -> float:
        r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark_ = colours[False], colours[True]
    assert luminance(light[0]) > 200 and luminance(dark_[0]) < 60, colours  # page background
    assert luminance(dark_[1]) < 60, colours  # tables follow
    assert luminance(dark_[2]) > 180, colours  # text is light on dark
