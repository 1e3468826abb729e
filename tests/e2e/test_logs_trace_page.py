"""Log lines on the trace page, in Debian's Chromium: a trace (request span, function spans, a DB span) and its
logs sent over OTLP/HTTP; each line is a marker on the waterfall row of the span it belongs to (the function
running when it was written) and is listed, with its attributes, in that span's details."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from browser import ARTIFACTS, checked_page, require_built_ui
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

pytestmark = pytest.mark.browser

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
REQUEST, VIEW, CHARGE, DB = (bytes([i]) * 8 for i in (1, 2, 3, 4))
T0 = 1_780_000_000_000_000_000  # ns
MS = 1_000_000


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def trace_body() -> bytes:
    def span(sid: bytes, parent: bytes, name: str, start_ms: int, end_ms: int, **kw: Any) -> Span:
        return Span(
            trace_id=TRACE,
            span_id=sid,
            parent_span_id=parent,
            name=name,
            start_time_unix_nano=T0 + start_ms * MS,
            end_time_unix_nano=T0 + end_ms * MS,
            **kw,
        )

    fn = [kv("pystrument.synthetic", True)]
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "log-shop"))
    rs.scope_spans.add().spans.extend(
        [
            span(REQUEST, b"", "POST /checkout", 0, 100, kind=Span.SPAN_KIND_SERVER,
                 attributes=[kv("http.route", "/checkout"), kv("http.request.method", "POST")]),
            span(VIEW, REQUEST, "app.views.checkout", 5, 95, attributes=[*fn, kv("code.function.name", "checkout")]),
            span(CHARGE, VIEW, "app.payments.charge", 50, 90, attributes=[*fn, kv("code.function.name", "charge")]),
            span(DB, REQUEST, "SELECT cart", 10, 20, kind=Span.SPAN_KIND_CLIENT),
        ]
    )  # fmt: skip
    return request.SerializeToString()


def logs_body() -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", "log-shop"))
    scope = rl.scope_logs.add()
    scope.scope.name = "shop.payments"
    for at_ms, severity, text, attrs in (
        (30, 9, "cart loaded", []),
        (70, 17, "card declined by issuer", [kv("card.last4", "4242"), kv("password", "hunter2")]),
    ):
        record = scope.log_records.add(
            time_unix_nano=T0 + at_ms * MS, severity_number=severity, trace_id=TRACE, span_id=REQUEST
        )
        record.severity_text = "ERROR" if severity == 17 else "INFO"
        record.body.string_value = text
        record.attributes.extend(attrs)
    return request.SerializeToString()


def test_log_lines_beside_their_spans(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)
    key = httpx.post(live_server.url + "/api/v1/projects", json={"name": "logs"}).json()["data"]["project_key"]
    headers = {"content-type": "application/x-protobuf", "x-project-key": key}
    assert httpx.post(live_server.url + "/v1/traces", content=trace_body(), headers=headers).status_code == 200
    assert httpx.post(live_server.url + "/v1/logs", content=logs_body(), headers=headers).status_code == 200

    with checked_page(900, 20_000) as page:
        page.goto(f"{live_server.url}/projects/{key}/traces/{TRACE.hex()}")
        page.wait_for_selector('[data-testid="waterfall"]')
        assert page.get_by_test_id("log-count").inner_text() == "2"
        markers = page.locator('[data-testid="log-marker"]')
        assert markers.count() == 2
        charge = page.locator('[data-testid="span-row"][data-span-name="app.payments.charge"]')
        view = page.locator('[data-testid="span-row"][data-span-name="app.views.checkout"]')
        assert charge.get_attribute("data-logs") == "1" and view.get_attribute("data-logs") == "1"
        assert "card declined" in (charge.locator('[data-testid="log-marker"]').get_attribute("title") or "")

        charge.click()
        details = page.get_by_test_id("span-details")
        entries = details.locator('[data-testid="span-log"]')
        assert entries.count() == 1
        text = entries.first.inner_text()
        assert "card declined by issuer" in text and "ERROR" in text and "shop.payments" in text
        assert f"written in span {REQUEST.hex()}" in text  # the OTel context named the request span
        entries.first.locator("summary").click()
        assert "[REDACTED]" in entries.first.inner_text() and "hunter2" not in page.content()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "trace-logs.png"), full_page=True)
