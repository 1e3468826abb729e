"""The whole UI journey in Debian's Chromium, on real parts: a project created in the UI, a real Flask app under
``opentelemetry-instrument`` sending its requests over OTLP, then dashboard → slowest route → slowest request →
flame graph → deep analysis → result → the bottleneck's span, in English and in Chinese, and the project's
edit / rotate-key / delete. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import ARTIFACTS, checked_page, require_built_ui

pytestmark = pytest.mark.browser

APP = Path(__file__).parent / "apps" / "flask_shop.py"
BIN = Path(sys.executable).parent
TIMEOUT_MS = 15_000
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    with checked_page(900, TIMEOUT_MS) as page:
        yield page


def wait_until(probe, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class FlaskApp:
    """tests/e2e/apps/flask_shop.py under ``opentelemetry-instrument``, exporting to the live server."""

    def __init__(self, server_url: str, project_key: str, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}
        env.update(
            OTEL_SERVICE_NAME="flask-shop",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_ENDPOINT=server_url,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_HEADERS=f"x-project-key={project_key}",
            OTEL_BSP_SCHEDULE_DELAY="200",
            PYSTRUMENT_PROFILE_RATE="1",
            PYSTRUMENT_SLOW_MS="0",
        )
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [str(BIN / "opentelemetry-instrument"), sys.executable, str(APP), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self) -> None:
        wait_until(lambda: httpx.get(self.url + "/hello").status_code == 200, 30, "the Flask app")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        print(out)  # shown by pytest when the test failed


@pytest.fixture
def spawn_app() -> Iterator[Callable[[str, str, int], FlaskApp]]:
    """Starts Flask apps (once a project key exists) and stops them after the test, whatever happens."""
    apps: list[FlaskApp] = []

    def spawn(server_url: str, project_key: str, port: int) -> FlaskApp:
        apps.append(FlaskApp(server_url, project_key, port))
        return apps[-1]

    yield spawn
    for app in apps:
        app.stop()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"), full_page=True)


def flame_chain(page: Any, x_share: float, max_depth: int) -> list[str]:
    """Clicks the flame graph at one point of the time axis, row by row, and reads the selected span's name."""
    canvas = page.get_by_test_id("flame-canvas")
    box = canvas.bounding_box()
    assert box, "the flame graph canvas is not laid out"
    row = int(canvas.get_attribute("data-row-height") or "18")
    names: list[str] = []
    for depth in range(max_depth + 1):
        if (depth + 0.5) * row > box["height"]:
            break
        canvas.click(position={"x": box["width"] * x_share, "y": (depth + 0.5) * row})
        name = page.get_by_test_id("span-details").locator("dd").first.inner_text().strip()
        if names and name == names[-1]:
            break  # clicked empty space: the selection did not change
        names.append(name.removeprefix("fn").strip())
    return names


def test_ui_journey(live_server, browser_page, get_free_port, spawn_app) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser_page
    base = live_server.url
    ARTIFACTS.mkdir(exist_ok=True)

    # 1. Home without projects lands on Projects; create one in the form and read its setup.
    page.goto(base + "/")
    page.wait_for_url("**/projects")
    form = page.get_by_test_id("create-project")
    form.locator("input[name=name]").fill("Flask shop")
    form.locator("select[name=framework]").select_option("flask")
    form.get_by_role("button", name="Create project").click()
    key = page.get_by_test_id("created-key").inner_text().strip()
    assert re.fullmatch(r"proj_[0-9a-f]{24}", key), key
    app = spawn_app(base, key, get_free_port())  # starting takes a few seconds: meanwhile, read the setup
    setup = page.get_by_test_id("project-created").get_by_test_id("setup")
    expect(setup.get_by_test_id("setup-snippet")).to_contain_text(f"OTEL_EXPORTER_OTLP_HEADERS=x-project-key={key}")
    expect(setup.get_by_test_id("setup-snippet")).to_contain_text("opentelemetry-instrumentation-flask")
    setup.get_by_test_id("setup-tab-flask").click()
    expect(setup.get_by_test_id("setup-snippet")).to_contain_text("pystrument.configure(tracer_provider=provider)")
    expect(setup.get_by_test_id("setup-snippet")).to_contain_text(f'"x-project-key": "{key}"')
    setup.get_by_test_id("setup-tab-collector").click()
    expect(setup.get_by_test_id("setup-snippet")).to_contain_text(f"PYSTRUMENT_PROJECT_KEY={key}")
    expect(setup.get_by_test_id("setup-snippet")).to_contain_text(f"PYSTRUMENT_ENDPOINT={base}")
    project_id = next(
        p["id"] for p in httpx.get(base + "/api/v1/projects").json()["data"]["projects"] if p["project_key"] == key
    )
    expect(page.get_by_test_id("project-select")).to_have_value(str(project_id))  # the first project is selected
    shot(page, "journey-1-created")

    # 2. The project page waits for data; a real Flask app under opentelemetry-instrument sends it.
    page.get_by_test_id("open-created").click()
    page.wait_for_url(f"**/projects/{project_id}")
    expect(page.get_by_test_id("empty")).to_be_visible()
    app.wait_ready()
    for _ in range(3):
        assert httpx.get(app.url + "/checkout", timeout=10).status_code == 200
    for _ in range(3):  # + the one /hello of the readiness probe
        assert httpx.get(app.url + "/hello", timeout=10).status_code == 200
    rows = page.get_by_test_id("record-row")
    expect(rows).to_have_count(7, timeout=25_000)  # the 5 s auto-refresh picks them up, no reload

    def checkout_traces_profiled() -> bool:
        records = httpx.get(
            base + "/api/v1/performance/records", params={"project_key": key, "route": "/checkout"}
        ).json()["data"]["records"]
        details = [
            httpx.get(base + f"/api/v1/performance/records/{r['trace_id']}", params={"project_key": key}).json()
            for r in records
        ]
        return len(records) == 3 and all(
            any(s["name"].endswith("load_items") for s in d["data"]["spans"]) for d in details
        )

    # Function spans are built after the request ends and may come in a later batch than the record.
    wait_until(checkout_traces_profiled, 30, "function spans of the three /checkout traces")
    shot(page, "journey-2-records")

    # 3. Dashboard: the figures, the charts, and /checkout as the slowest route.
    page.get_by_test_id("nav-dashboard").click()
    page.wait_for_url("**/dashboard**")
    page.get_by_test_id("range").locator("[data-range='1h']").click()
    expect(page.get_by_test_id("stat-count")).to_contain_text("7")
    expect(page.get_by_test_id("stat-errors")).to_contain_text("0%")
    expect(page.get_by_test_id("chart-latency").locator("path[data-series=p95]")).to_have_count(1)
    first_route = page.get_by_test_id("slow-route").first
    expect(first_route).to_have_attribute("data-route", "/checkout")
    expect(page.get_by_test_id("slow-request").first).to_contain_text("/checkout")
    shot(page, "journey-3-dashboard")

    # 4. Click the slowest route: the monitor, filtered by it and sorted by duration, with stats and hot functions.
    first_route.get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/monitor\?.*route=%2Fcheckout.*sort=duration"))
    records = page.get_by_test_id("record-row")
    expect(records).to_have_count(3)
    durations = [float(records.nth(i).get_attribute("data-duration") or "0") for i in range(3)]
    assert durations == sorted(durations, reverse=True), durations
    expect(page.get_by_test_id("route-row").filter(has_text="/hello")).to_have_count(1)
    expect(page.get_by_test_id("hot-function").filter(has_text="load_items").first).to_be_visible()
    expect(page.get_by_test_id("tail-cohorts")).to_contain_text("Slowest 5%")  # tail vs median of the route
    # Paging and other filters go through the URL: a 5xx filter finds nothing.
    page.get_by_test_id("filters").locator("select[name=status]").select_option("5xx")
    page.get_by_test_id("apply-filters").click()
    page.wait_for_url(re.compile(r".*status=5xx.*"))
    expect(page.get_by_test_id("empty").filter(has_text="No requests match")).to_be_visible()
    expect(page.get_by_test_id("empty").filter(has_text="No routes")).to_be_visible()  # the filter is page-wide
    page.go_back()
    expect(records).to_have_count(3)
    shot(page, "journey-4-monitor")

    # 5. The slowest request: flame graph of its function spans, then the waterfall and the span details.
    records.first.get_by_role("link").click()
    page.wait_for_url("**/traces/**")
    trace_id = page.url.split("/traces/")[1].split("?")[0]
    flame = page.get_by_test_id("flame-graph")
    expect(flame).not_to_have_attribute("data-drawn", "0")
    # Click down the flame graph through the middle of load_items (placed on the time axis by its span).
    detail = httpx.get(base + f"/api/v1/performance/records/{trace_id}", params={"project_key": key}).json()
    spans = detail["data"]["spans"]
    root = next(s for s in spans if s["kind"] == "SERVER")
    target = next(s for s in spans if s["name"].endswith("load_items"))
    middle = (target["offset"] - root["offset"] + target["duration"] / 2) / root["duration"]
    chain = flame_chain(page, middle, 12)
    assert chain[0] == "GET /checkout", chain
    short = [name.rsplit(".", 1)[-1] for name in chain]
    for fn in ("checkout", "compute_totals", "load_items"):
        assert fn in short, f"{fn} not in the flame graph's column at {middle:.0%}: {chain}"
    assert short.index("checkout") < short.index("compute_totals") < short.index("load_items"), chain
    details = page.get_by_test_id("span-details")
    expect(details).to_contain_text("flask_shop.py")
    expect(page.locator("[data-testid=span-row][aria-pressed=true]")).to_have_attribute(
        "data-span-name", re.compile(r"load_items$")
    )
    assert "span=" in page.url
    page.get_by_test_id("flame-canvas").hover(position={"x": 40, "y": 9})
    expect(page.get_by_test_id("flame-tooltip")).to_contain_text("GET /checkout")
    page.get_by_test_id("flame-mode-merged").click()
    expect(flame).to_have_attribute("data-mode", "merged")
    shot(page, "journey-5-trace")

    # The speedscope export is a real download from the API.
    href = page.get_by_test_id("speedscope").get_attribute("href")
    assert href
    export = page.request.get(base + href)
    assert export.status == 200
    assert export.json()["$schema"].startswith("https://www.speedscope.app")

    # 6. Deep analysis: trigger, progress while polled, then the result with bottlenecks and suggestions.
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/api/v1/analysis/results/" in r.url else None)
    page.get_by_test_id("deep-analysis").click()
    result = page.get_by_test_id("deep-analysis-panel").get_by_test_id("analysis-result")
    expect(result).to_have_attribute("data-status", "completed", timeout=20_000)
    assert polls, "the result was not polled"
    score = int(result.get_by_test_id("analysis-score").locator(".value").inner_text())
    assert 0 <= score <= 100
    bottleneck = result.get_by_test_id("bottleneck").first
    expect(bottleneck).to_be_visible()
    expect(result.get_by_test_id("suggestion").first).to_be_visible()
    function = bottleneck.get_attribute("data-function") or ""
    shot(page, "journey-6-analysis")

    # A bottleneck selects its function's span in place.
    page.locator("[data-testid=span-details] .close").click()
    bottleneck.get_by_test_id("bottleneck-link").click()
    expect(details).to_be_visible()
    expect(details.locator("dd").first).to_contain_text(function.rsplit(".", 1)[-1])

    # 7. The analysis page, listed under the project; its bottleneck opens the trace with that span selected.
    page.get_by_test_id("analysis-link").click()
    page.wait_for_url("**/analyses/analysis_*")
    expect(page.get_by_test_id("analysis-result")).to_have_attribute("data-status", "completed")
    page.get_by_test_id("bottleneck-link").first.click()
    page.wait_for_url(re.compile(rf".*/traces/{trace_id}\?span=[0-9a-f]{{16}}"))
    expect(page.get_by_test_id("span-details").locator("dd").first).to_contain_text(function.rsplit(".", 1)[-1])
    expect(page.locator("[data-testid=span-row][aria-pressed=true]")).to_have_count(1)
    page.get_by_test_id("nav-analyses").click()
    expect(page.get_by_test_id("analysis-row")).to_have_count(1)
    shot(page, "journey-7-analyses")

    # 8. 中文: the switch is remembered; a deep analysis in Chinese answers in Chinese.
    page.get_by_test_id("analysis-row").locator("td").nth(2).get_by_role("link").click()
    page.wait_for_url("**/traces/**")
    page.get_by_test_id("locale").select_option("zh")
    expect(page.get_by_role("heading", name="火焰图")).to_be_visible()
    expect(page.get_by_role("heading", name="瀑布图")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("deep-analysis")).to_have_text("重新分析")
    page.get_by_test_id("deep-analysis").click()
    expect(page.get_by_test_id("deep-analysis")).to_have_text("分析中…")
    result = page.get_by_test_id("deep-analysis-panel").get_by_test_id("analysis-result")
    expect(result).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(result.get_by_role("heading", name=re.compile("性能瓶颈"))).to_be_visible()
    description = result.get_by_test_id("bottleneck").first.locator("p").inner_text()
    assert CJK.search(description), f"the zh analysis answered in another language: {description!r}"
    shot(page, "journey-8-trace-zh")
    page.get_by_test_id("nav-dashboard").click()
    expect(page.get_by_role("heading", name=re.compile("^仪表板"))).to_be_visible()
    expect(page.get_by_test_id("nav-monitor")).to_have_text("性能监控")
    shot(page, "journey-8-dashboard-zh")
    page.get_by_test_id("locale").select_option("en")

    # 9. Manage the project: edit, rotate the key (the data stays), delete.
    page.goto(f"{base}/projects/{key}")
    settings = page.get_by_test_id("project-settings")
    settings.locator("input[name=name]").fill("Flask shop (prod)")
    settings.get_by_test_id("save-project").click()
    expect(settings.get_by_test_id("saved")).to_be_visible()
    expect(page.get_by_test_id("project-title")).to_have_text("Flask shop (prod)")
    page.get_by_test_id("rotate-key").click()
    page.get_by_role("dialog", name="Rotate the project key?").get_by_test_id("confirm-ok").click()
    # The URL names the project by id, so it stays; the page shows the new key.
    expect(page.get_by_test_id("project-key")).not_to_have_text(key)
    assert page.url.endswith(f"/projects/{project_id}"), page.url
    new_key = page.get_by_test_id("project-key").inner_text().strip()
    assert re.fullmatch(r"proj_[0-9a-f]{24}", new_key) and new_key != key
    expect(page.get_by_test_id("project-key")).to_have_text(new_key)
    expect(page.get_by_test_id("record-row")).to_have_count(7)
    assert httpx.get(base + f"/api/v1/projects/{key}").status_code == 404
    shot(page, "journey-9-project")
    page.get_by_test_id("delete-project").click()
    dialog = page.get_by_role("dialog", name="Delete “Flask shop (prod)”?")
    dialog.get_by_test_id("confirm-cancel").click()
    assert httpx.get(base + f"/api/v1/projects/{new_key}").status_code == 200, "cancel must not delete"
    page.get_by_test_id("delete-project").click()
    dialog.get_by_test_id("confirm-ok").click()
    page.wait_for_url("**/projects")
    expect(page.get_by_test_id("empty")).to_be_visible()
    assert httpx.get(base + f"/api/v1/projects/{new_key}").status_code == 404


def test_a_garbage_collection_pause_in_the_trace_view(  # type: ignore[no-untyped-def]
    live_server, browser_page, get_free_port, spawn_app
) -> None:
    """A request stopped by a full garbage collection: the trace shows the pause as a span under the function that
    ran into it, the summary shows the pause, and the builtin analysis names it with the fix."""
    from playwright.sync_api import expect

    page, base = browser_page, live_server.url
    created = httpx.post(base + "/api/v1/projects", json={"name": "GC", "framework": "flask"})
    key = created.json()["data"]["project_key"]
    app = spawn_app(base, key, get_free_port())
    app.wait_ready()
    httpx.get(app.url + "/report", timeout=30)  # fills the cache (its allocations trigger collections of their own)
    trace_id = "4" * 32
    response = httpx.get(app.url + "/report", headers={"traceparent": f"00-{trace_id}-{'5' * 16}-01"}, timeout=30)
    truth_ms = response.json()["gc_ms"]

    def pause_span() -> dict[str, Any] | None:
        r = httpx.get(base + f"/api/v1/performance/records/{trace_id}", params={"project_key": key})
        spans = r.json()["data"]["spans"] if r.status_code == 200 else []
        return next((s for s in spans if s["name"] == "garbage collection (generation 2)"), None)

    span = wait_until(pause_span, 30, "the garbage-collection span")
    spans = httpx.get(base + f"/api/v1/performance/records/{trace_id}", params={"project_key": key}).json()["data"]
    by_id = {s["span_id"]: s for s in spans["spans"]}
    assert by_id[span["parent_span_id"]]["name"].endswith("rebuild_report")
    assert span["attributes"]["code.file.path"] == "<gc>"
    assert abs(span["duration"] * 1000 - truth_ms) <= max(0.2 * truth_ms, 10), (span["duration"], truth_ms)
    request = next(s for s in spans["spans"] if s["kind"] == "SERVER")
    assert request["attributes"]["pystrument.gc.pause_ms"] >= 0.8 * truth_ms - 10

    page.goto(f"{base}/projects/{key}/traces/{trace_id}")
    expect(page.get_by_test_id("gc-pause")).to_contain_text("ms")
    page.get_by_test_id("deep-analysis").click()
    result = page.get_by_test_id("deep-analysis-panel").get_by_test_id("analysis-result")
    expect(result).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(result.get_by_test_id("bottleneck").filter(has_text="Garbage collection")).to_have_count(1)
    expect(result.get_by_test_id("suggestion").filter(has_text="gc.freeze()")).to_have_count(1)
    shot(page, "gc-pause-trace")
