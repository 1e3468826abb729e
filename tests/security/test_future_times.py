"""Finding 7: far-future timestamps (2200, uint64 max) were stored, topped every newest-first list, set the
project's last activity to 2554 and never expired. Now refused per span through partial success."""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

YEAR_2200_NS = 7_258_118_400 * 10**9
UINT64_MAX = 2**64 - 1


def spans_json(now: int) -> list[dict[str, Any]]:
    def span(name: str, start: int, end: int) -> dict[str, Any]:
        return {"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": name, "kind": 2,
                "startTimeUnixNano": str(start), "endTimeUnixNano": str(end)}  # fmt: skip

    return [
        span("GET /now", now - 10**6, now),
        span("GET /2200", YEAR_2200_NS, YEAR_2200_NS + 10**6),
        span("GET /max", now, UINT64_MAX),
        span("GET /max-start", UINT64_MAX - 10, UINT64_MAX),
    ]


async def test_far_future_spans_are_refused_one_by_one(client: Any) -> None:
    key = (await client.post("/api/v1/projects", json={"name": "future"})).json()["data"]["project_key"]
    headers = {"X-Project-Key": key}
    now = time.time_ns()
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans_json(now)}]}]}
    r = await client.post("/v1/traces", json=doc, headers=headers)
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "3" and "a day ahead" in partial["errorMessage"]

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for item in spans_json(now):
        s = spans.add(trace_id=bytes.fromhex(item["traceId"]), span_id=bytes.fromhex(item["spanId"]), kind=2,
                      name=item["name"], start_time_unix_nano=int(item["startTimeUnixNano"]),
                      end_time_unix_nano=int(item["endTimeUnixNano"]))  # fmt: skip
        assert s.name
    r = await client.post(
        "/v1/traces", content=request.SerializeToString(), headers={**headers, "Content-Type": "application/x-protobuf"}
    )
    assert r.status_code == 200
    answer = ExportTraceServiceResponse.FromString(r.content)
    assert answer.partial_success.rejected_spans == 3, answer

    records = (await client.get("/api/v1/performance/records", params={"project_key": key})).json()["data"]
    assert [x["request_path"] or "" for x in records["records"]] and records["total"] == 2
    for x in records["records"]:
        assert x["timestamp"] < "2100", x
    project = (await client.get(f"/api/v1/projects/{key}")).json()["data"]
    assert (project.get("last_activity") or "") < "2100", project


async def test_collect_refuses_far_future_and_absurd_numbers(client: Any) -> None:
    key = (await client.post("/api/v1/projects", json={"name": "future"})).json()["data"]["project_key"]
    headers = {"X-Project-Key": key}
    base = {"request_info": {"method": "GET", "path": "/x"}, "performance_metrics": {"total_duration": 0.1}}
    for bad, word in (
        ({**base, "timestamp": "2200-01-01T00:00:00Z"}, "a day ahead"),
        ({**base, "timestamp": 1e300}, "a day ahead"),
        ({**base, "performance_metrics": {"total_duration": 1e308}}, "at most"),
        ({**base, "function_calls": [{"function": "f", "duration": 0.1, "start_time": -1e308}]}, "negative"),
    ):
        r = await client.post("/api/v1/performance/collect", json=bad, headers=headers)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["code"] == 40001 and word in r.json()["msg"], r.text
