"""How fast the trace view is on a big trace, measured in Debian's Chromium: a 2,000-span trace (a request span,
1,700 function spans nested up to 14 deep, 299 DB spans) sent with the real OTLP exporter, then
``performance.now()`` from navigation until the waterfall and the flame graph are on screen, and until a click
has been answered. The figures are printed (they go to docs/benchmarks.md, section "Web UI")."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import ARTIFACTS, chromium, require_built_ui

pytestmark = pytest.mark.browser

SPANS = 2000
FUNCTIONS = 1700
RUNS = 3
IN_APP_RUNS = 2
# The goal is 1 s from navigation to a rendered, clickable trace. Most of that is the API's answer, which
# slows with the machine's load; the UI's own share (rendering the answer, answering a click) is what the
# bounds hold, with room for a busy 2-core CI machine. The figures are printed and kept in docs/benchmarks.md.
UI_BOUND_MS = 1000
CLICK_BOUND_MS = 500
TOTAL_BOUND_MS = 6000


@pytest.fixture
def served(database_url: str, get_free_port: Any, tmp_path: Path) -> Iterator[str]:
    """``pystrument serve`` as users run it, in its own process (not inside pytest's heap), on a fresh database."""
    port = get_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}
    env["PYSTRUMENT_DATABASE_URL"] = database_url
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "pystrument"), "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "pystrument serve did not answer /health in 60 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# Installed before any page script: notes the moment both views are drawn, without polling from Python.
PROBE = """
window.__ui = {};
const done = () => {
  const flame = document.querySelector('[data-testid=flame-graph]');
  return flame && Number(flame.dataset.drawn) > 0 && document.querySelector('[data-testid=span-row]');
};
new MutationObserver(() => {
  if (!window.__ui.rendered && done()) window.__ui.rendered = performance.now();
}).observe(document, { subtree: true, childList: true, attributes: true });
"""

# Clicks a waterfall row, then the flame graph, each timed until the details panel shows that span after a frame.
CLICKS = """
async () => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const until = async (pred) => { for (let i = 0; i < 600 && !pred(); i++) await frame(); return performance.now(); };
  const name = () => document.querySelector('[data-testid=span-details] dd')?.textContent?.trim() ?? '';
  const rows = document.querySelectorAll('[data-testid=span-row]');
  const row = rows[Math.min(rows.length - 1, 40)];
  const want = row.dataset.spanName;
  let t = performance.now();
  row.click();
  const rowDone = await until(() => name().endsWith(want));
  const rowMs = rowDone - t;
  const canvas = document.querySelector('[data-testid=flame-canvas]');
  const box = canvas.getBoundingClientRect();
  const before = name();
  t = performance.now();
  // The top row is the request span, whatever the layout below it.
  const at = { bubbles: true, clientX: box.left + box.width * 0.5, clientY: box.top + 9 };
  canvas.dispatchEvent(new MouseEvent('click', at));
  const flameDone = await until(() => name() !== before);
  return { rowMs, flameMs: flameDone - t, rows: rows.length, flameName: name() };
}
"""


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def wait_for_js(page: Any, expression: str, timeout: float) -> None:
    """``page.wait_for_function`` without its in-page polling, which evaluates a string and so needs the
    ``unsafe-eval`` the UI's Content Security Policy refuses: poll the expression from here instead."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"!!({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression} still false after {timeout} s")
        time.sleep(0.02)


def send_big_trace(base_url: str, project_key: str) -> str:
    """2,000 spans of one request through the real OTLP/HTTP exporter; returns the trace id."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    rng = random.Random(7)
    provider = TracerProvider(resource=Resource.create({"service.name": "big"}))
    tracer = provider.get_tracer("ui-bench")
    ms = 1_000_000
    t0 = time.time_ns() - 5_000 * ms
    total = 2_400 * ms
    root = tracer.start_span(
        "GET /reports/{id}",
        kind=trace.SpanKind.SERVER,
        start_time=t0,
        attributes={
            "http.request.method": "GET",
            "url.path": "/reports/7",
            "http.route": "/reports/{id}",
            "http.response.status_code": 200,
        },
    )
    finished = []
    # Function spans: each splits its time among 1-4 callees, breadth first, up to 14 levels.
    queue = [(root, t0, t0 + total, 0)]
    leaves = []
    made = 0
    while queue and made < FUNCTIONS:
        parent, start, end, depth = queue.pop(0)
        kids = rng.randint(1, 4) if depth < 14 else 0
        if kids == 0:
            leaves.append((start, end))
            continue
        width = (end - start) // kids
        for k in range(kids):
            if made >= FUNCTIONS:
                break
            s = start + k * width + width // 20
            e = s + int(width * rng.uniform(0.5, 0.9))
            name = f"app.module{depth}.func_{rng.randint(0, 60)}"
            span = tracer.start_span(
                name,
                context=trace.set_span_in_context(parent),
                start_time=s,
                attributes={
                    "pystrument.synthetic": True,
                    "code.function.name": name,
                    "code.file.path": "/srv/app.py",
                    "code.line.number": 10 + k,
                    "pystrument.library": rng.random() < 0.2,
                    "pystrument.self_time_ms": (e - s) / ms / 3,
                },
            )
            made += 1
            finished.append((span, e))
            queue.append((span, s, e, depth + 1))
    leaves.extend((s, e) for _, s, e, _ in queue)
    # DB spans: children of the request span as the SDK exports them; the server nests them under functions.
    for i in range(SPANS - 1 - FUNCTIONS):
        start, end = leaves[i % len(leaves)]
        s = start + (end - start) // 4
        db = tracer.start_span(
            "SELECT",
            context=trace.set_span_in_context(root),
            kind=trace.SpanKind.CLIENT,
            start_time=s,
            attributes={"db.system": "postgresql", "db.statement": f"SELECT {i}"},
        )
        db.end(end_time=s + (end - start) // 3)
        finished.append((db, None))
    for span, end in finished:
        if end is not None:
            span.end(end_time=end)
    root.end(end_time=t0 + total)
    readable = [s for s, _ in finished] + [root]  # ended SDK spans are ReadableSpans, as exporters take them
    assert len(readable) == SPANS, len(readable)
    exporter = OTLPSpanExporter(endpoint=base_url + "/v1/traces", headers={"x-project-key": project_key}, timeout=30)
    try:
        assert exporter.export(readable) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
        provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def test_big_trace_is_interactive_fast(served: str, browser: Any) -> None:
    base = served
    created = httpx.post(base + "/api/v1/projects", json={"name": "big", "framework": "flask"}).json()
    key = created["data"]["project_key"]
    listed = httpx.get(base + "/api/v1/projects", params={"size": 100}).json()["data"]["projects"]
    project_id = next(p["id"] for p in listed if p["project_key"] == key)  # UI URLs name a project by id
    trace_id = send_big_trace(base, key)
    detail_url = f"{base}/api/v1/performance/records/{trace_id}"
    deadline = time.monotonic() + 30
    while True:
        body = httpx.get(detail_url, params={"project_key": key}, timeout=30).json()
        if body["code"] == 0 and len(body["data"]["spans"]) == SPANS:
            break
        assert time.monotonic() < deadline, f"the {SPANS} spans were not all stored: {body.get('msg')}"
        time.sleep(0.3)
    functions = sum(1 for s in body["data"]["spans"] if s["synthetic"])
    assert functions == FUNCTIONS
    direct = []
    for _ in range(3):  # the API alone, from Python, for comparison with what the browser sees
        t = time.perf_counter()
        assert httpx.get(detail_url, params={"project_key": key}, timeout=30).status_code == 200
        direct.append((time.perf_counter() - t) * 1000)

    results = []
    for run in range(RUNS):
        context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
        context.add_init_script(PROBE)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        page.goto(f"{base}/projects/{project_id}/traces/{trace_id}")
        wait_for_js(page, "window.__ui && window.__ui.rendered", timeout=15)
        rendered = page.evaluate("window.__ui.rendered")
        api = page.evaluate(
            "u => { const e = performance.getEntriesByType('resource').find(e => e.name.includes(u));"
            " return e ? [e.startTime, e.responseEnd] : [0, 0]; }",
            f"/records/{trace_id}?",
        )
        clicks = page.evaluate(CLICKS)
        frames = int(page.get_by_test_id("flame-graph").get_attribute("data-frames") or "0")
        rows_in_dom = page.locator("[data-testid=span-row]").count()
        if run == RUNS - 1:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "ui-big-trace.png"), full_page=True)
        context.close()
        assert not errors, errors
        assert frames == FUNCTIONS + 1, f"flame graph frames: {frames}"
        # A click on the flame graph's top row selects the request span.
        assert clicks.pop("flameName") == "GET /reports/{id}", clicks
        assert 0 < rows_in_dom < 200, f"the waterfall should render only the rows in view, not {rows_in_dom}"
        results.append(
            {
                "api_sent_ms": api[0],
                "api_ms": api[1] - api[0],
                "render_after_api_ms": rendered - api[1],
                "rendered_ms": rendered,
                **clicks,
                "interactive_ms": rendered + max(clicks["rowMs"], clicks["flameMs"]),
            }
        )

    # In-app navigation, as people mostly arrive: from the monitor's list to the trace, the app already loaded.
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    context.add_init_script(PROBE)
    page = context.new_page()
    navs = []
    for _ in range(IN_APP_RUNS):
        page.goto(f"{base}/projects/{project_id}/monitor")
        page.get_by_test_id("record-row").first.get_by_role("link").wait_for()
        page.evaluate(
            "() => { window.__ui = { start: performance.now() };"
            " document.querySelector('[data-testid=record-row] a').click(); }"
        )
        wait_for_js(page, "window.__ui.rendered", timeout=15)
        rendered_after = page.evaluate("window.__ui.rendered - window.__ui.start")
        clicks = page.evaluate(CLICKS)
        clicks.pop("flameName")
        navs.append(rendered_after + max(clicks["rowMs"], clicks["flameMs"]))
    context.close()

    report = {k: round(statistics.median(r[k] for r in results), 1) for k in results[0] if k != "rows"}
    report["in_app_interactive_ms"] = round(statistics.median(navs), 1)
    report["api_from_python_ms"] = round(statistics.median(direct), 1)
    print(f"\nWeb UI, {SPANS}-span trace ({FUNCTIONS} function spans), median of {RUNS} loads: {json.dumps(report)}")
    print("runs:", json.dumps([{k: round(v, 1) for k, v in r.items()} for r in results]))
    ui_ms = report["render_after_api_ms"] + max(report["rowMs"], report["flameMs"])
    assert ui_ms < UI_BOUND_MS, report
    assert report["rowMs"] < CLICK_BOUND_MS and report["flameMs"] < CLICK_BOUND_MS, report
    assert report["interactive_ms"] < TOTAL_BOUND_MS and report["in_app_interactive_ms"] < TOTAL_BOUND_MS, report
