"""Issue 17, item 2: a project's URL is its stable id, never its key. Rotating the key keeps bookmarks and shared
trace links working; an old link by key is redirected to the id URL; creating a project leaves the header's
project selector alone. In English and in Chinese, in Debian's Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browser import chromium, require_built_ui
from ui_fixes_seed import no_errors, open_page, seed

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser(live_server: Any) -> Iterator[Any]:
    """Chromium for one test, started after the server (Playwright's loop must not run while async fixtures set up)."""
    with chromium() as b:
        yield b


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_urls_name_the_project_by_id_and_survive_key_rotation(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, "Shop", requests_per_route=3)
    trace_id = data.traces["/orders"][0]
    page = open_page(browser, lang)

    # The projects list links to /projects/{id}; the key appears in no URL.
    page.goto(base + "/projects")
    row = page.get_by_test_id("project-row").filter(has_text="Shop")
    href = row.get_by_role("link", name="Shop").get_attribute("href")
    assert href == f"/projects/{data.project_id}", href
    row.get_by_role("link", name="Shop").click()
    page.wait_for_url(f"{base}/projects/{data.project_id}")
    expect(page.get_by_test_id("project-key")).to_have_text(data.key)
    expect(page.get_by_test_id("project-select")).to_have_value(str(data.project_id))

    # A shared trace link and a bookmarked monitor view, both by id.
    trace_url = f"{base}/projects/{data.project_id}/traces/{trace_id}"
    monitor_url = f"{base}/projects/{data.project_id}/monitor?route=%2Forders"
    page.goto(trace_url)
    expect(page.get_by_test_id("trace-title")).to_contain_text("/orders")

    # Rotate the key: the URL stays, the new key shows, and the old links still open.
    page.goto(f"{base}/projects/{data.project_id}")
    page.get_by_test_id("rotate-key").click()
    page.get_by_role("dialog").get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("project-key")).not_to_have_text(data.key)
    new_key = page.get_by_test_id("project-key").inner_text().strip()
    assert re.fullmatch(r"proj_[0-9a-f]{24}", new_key)
    assert page.url == f"{base}/projects/{data.project_id}"
    assert httpx.get(base + f"/api/v1/projects/{data.key}").status_code == 404  # the old key is dead

    fresh = open_page(browser, lang)  # a bookmark opened in a new browser session
    fresh.goto(trace_url)
    expect(fresh.get_by_test_id("trace-title")).to_contain_text("/orders")
    expect(fresh.get_by_test_id("error")).to_have_count(0)
    fresh.goto(monitor_url)
    expect(fresh.get_by_test_id("record-row")).to_have_count(3)
    assert new_key not in fresh.url and data.key not in fresh.url
    no_errors(fresh)

    # An old link by (current) key is redirected to the id URL, query kept; an unknown key is "not found".
    page.goto(f"{base}/projects/{new_key}/monitor?route=%2Forders")
    page.wait_for_url(f"{base}/projects/{data.project_id}/monitor?route=%2Forders")
    expect(page.get_by_test_id("record-row")).to_have_count(3)
    page.goto(f"{base}/projects/{data.key}/traces/{trace_id}")
    expect(page.get_by_test_id("error-page")).to_contain_text("404")
    no_errors(page)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_creating_a_project_keeps_the_selected_project(live_server, browser, lang: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base = live_server.url
    data = seed(base, "Shop", requests_per_route=1)
    page = open_page(browser, lang)
    page.goto(f"{base}/projects/{data.project_id}/monitor")
    select = page.get_by_test_id("project-select")
    expect(select).to_have_value(str(data.project_id))
    page.goto(base + "/projects")
    form = page.get_by_test_id("create-project")
    form.locator("input[name=name]").fill("Another")
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("project-created")).to_be_visible()
    expect(page.get_by_test_id("project-row")).to_have_count(2)
    expect(select.locator("option")).to_have_count(2)
    expect(select).to_have_value(str(data.project_id))  # not silently switched to the new project
    page.get_by_test_id("nav-monitor").click()
    page.wait_for_url(f"**/projects/{data.project_id}/monitor")
    no_errors(page)
