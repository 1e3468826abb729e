"""The web UI in Debian's Chromium against the real app, behind an API token: log in, create a project in the
form, send it a trace over OTLP/HTTP, then follow it from the project's records to the trace waterfall with its
function span (the DB span nested under the function that runs it)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser import ARTIFACTS, checked_page, require_built_ui

pytestmark = pytest.mark.browser

FUNCTION_NAME = "shop.views.load_order"
TIMEOUT_MS = 15_000
API_TOKEN = "ui-test-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    with checked_page(860, TIMEOUT_MS) as page:
        yield page


def send_trace(base_url: str, project_key: str) -> str:
    """Exports one request span, a function span and a DB span with the real OTLP/HTTP exporter."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("ui-test")

    t0 = time.time_ns()
    ms = 1_000_000
    request = tracer.start_span(
        "GET /orders/{order_id}",
        kind=trace.SpanKind.SERVER,
        start_time=t0,
        attributes={
            "http.request.method": "GET",
            "url.path": "/orders/42",
            "http.route": "/orders/{order_id}",
            "http.response.status_code": 200,
        },
    )
    ctx = trace.set_span_in_context(request)
    fn = tracer.start_span(
        FUNCTION_NAME,
        context=ctx,
        kind=trace.SpanKind.INTERNAL,
        start_time=t0 + 2 * ms,
        attributes={
            "pystrument.synthetic": True,
            "code.function.name": FUNCTION_NAME,
            "code.file.path": "/srv/shop/views.py",
            "code.line.number": 17,
            "pystrument.self_time_ms": 12.5,
            "pystrument.library": False,
            "pystrument.samples": 40,
        },
    )
    db = tracer.start_span(
        "SELECT orders",
        context=ctx,
        kind=trace.SpanKind.CLIENT,
        start_time=t0 + 10 * ms,
        attributes={"db.system": "postgresql", "db.statement": "SELECT * FROM orders WHERE id = $1"},
    )
    db.end(end_time=t0 + 30 * ms)
    fn.end(end_time=t0 + 42 * ms)
    request.end(end_time=t0 + 45 * ms)
    provider.force_flush()

    spans = memory.get_finished_spans()
    assert len(spans) == 3
    exporter = OTLPSpanExporter(endpoint=base_url + "/v1/traces", headers={"x-project-key": project_key}, timeout=10)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS, "OTLP export to /v1/traces failed"
    finally:
        exporter.shutdown()
        provider.shutdown()
    return format(request.get_span_context().trace_id, "032x")


@pytest.fixture
def secured_server(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> object:
    """The live server with ``PYSTRUMENT_API_TOKEN`` set: its REST API answers 401 without the token."""
    monkeypatch.setenv("PYSTRUMENT_API_TOKEN", API_TOKEN)
    return request.getfixturevalue("live_server")


def test_create_project_send_trace_and_open_waterfall(secured_server, browser_page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    live_server = secured_server
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)

    # The server wants its token: the UI shows the login, refuses a wrong token, and keeps a session cookie.
    page.goto(live_server.url + "/")
    login = page.get_by_test_id("login")
    expect(login).to_be_visible()
    expect(page.get_by_test_id("nav-projects")).to_have_count(0)
    login.locator("input[name=token]").fill("not-the-token-at-all")
    login.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("wrong API token")
    page.screenshot(path=str(ARTIFACTS / "ui-login.png"))
    login.locator("input[name=token]").fill(API_TOKEN)
    login.get_by_role("button", name="Log in").click()

    # Home with no project yet is the projects page, empty.
    page.wait_for_url("**/projects")
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
    expect(page.get_by_test_id("empty")).to_be_visible()

    # Create a project through the form; the page shows its key and how to send data with it.
    form = page.get_by_test_id("create-project")
    form.locator("input[name=name]").fill("Shop API")
    form.locator("textarea[name=description]").fill("orders and checkout")
    form.locator("select[name=framework]").select_option("flask")
    form.get_by_role("button", name="Create project").click()
    created = page.get_by_test_id("project-created")
    expect(created).to_be_visible()
    key = page.get_by_test_id("created-key").inner_text().strip()
    assert key.startswith("proj_"), key
    expect(created).to_contain_text("x-project-key=" + key)

    row = page.get_by_test_id("project-row").filter(has_text="Shop API")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("flask")
    expect(row).to_contain_text(key)
    page.screenshot(path=str(ARTIFACTS / "ui-projects.png"), full_page=True)

    # The project page polls its records: it shows the empty state, then the request sent over OTLP.
    row.get_by_role("link", name="Shop API").click()
    page.wait_for_url(re.compile(r".*/projects/\d+$"))  # a project's URL names its id, never its key
    assert key not in page.url
    expect(page.get_by_test_id("project-title")).to_have_text("Shop API")
    expect(page.get_by_test_id("empty")).to_be_visible()
    trace_id = send_trace(live_server.url, key)
    record = page.locator(f'[data-testid=record-row][data-trace-id="{trace_id}"]')
    expect(record).to_be_visible(timeout=20_000)  # picked up by the 5 s auto-refresh, no reload
    expect(record).to_contain_text("/orders/42")
    expect(record).to_contain_text("GET")
    expect(record).to_contain_text("200")
    expect(record).to_contain_text("45.0")
    page.screenshot(path=str(ARTIFACTS / "ui-project.png"), full_page=True)

    # The trace page: summary and waterfall, the function span marked and nesting the DB span.
    record.get_by_role("link").click()
    page.wait_for_url(f"**/traces/{trace_id}")
    expect(page.get_by_test_id("trace-summary")).to_contain_text("45.0 ms")
    rows = page.get_by_test_id("span-row")
    expect(rows).to_have_count(3)
    fn_row = page.locator(f'[data-testid=span-row][data-span-name="{FUNCTION_NAME}"]')
    expect(fn_row).to_have_attribute("data-function", "true")
    expect(fn_row.locator(".fn-badge")).to_be_visible()
    names = [rows.nth(i).get_attribute("data-span-name") for i in range(3)]
    depths = [rows.nth(i).get_attribute("data-depth") for i in range(3)]
    assert names == ["GET /orders/{order_id}", FUNCTION_NAME, "SELECT orders"], names
    assert depths == ["0", "1", "2"], f"the DB span should nest under the function that encloses it: {depths}"

    fn_row.click()
    details = page.get_by_test_id("span-details")
    expect(details).to_contain_text("/srv/shop/views.py:17")
    expect(details.get_by_test_id("span-attributes")).to_contain_text("pystrument.self_time_ms")
    expect(details).to_contain_text("12.5 ms")
    page.screenshot(path=str(ARTIFACTS / "ui-trace.png"), full_page=True)

    # An unknown trace shows the error state with the API's message and a retry button.
    page.goto(f"{live_server.url}/projects/{key}/traces/{'0' * 32}")
    error = page.get_by_test_id("error")
    expect(error).to_be_visible()
    expect(error.get_by_role("button", name="Retry")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "ui-trace-missing.png"))
    page.go_back()

    # A deep link survives a reload (the server's SPA fallback), and the language choice is remembered.
    page.reload()
    expect(page.locator(f'[data-testid=span-row][data-span-name="{FUNCTION_NAME}"]')).to_be_visible()
    page.get_by_test_id("locale").select_option("zh")
    expect(page.get_by_role("heading", name="瀑布图")).to_be_visible()
    page.get_by_test_id("nav-projects").click()
    page.wait_for_url(f"{live_server.url}/projects")  # the client-side navigation is done before reloading
    page.reload()
    expect(page.get_by_role("heading", name="项目", exact=True)).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "ui-projects-zh.png"), full_page=True)
