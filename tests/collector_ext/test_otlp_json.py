"""OTLP/JSON bodies: hex ids, enums as names or ints, int64 as strings, AnyValue flattening, partial success."""

from __future__ import annotations

import gzip
import json
import time

import httpx

TRACE = "5B8EFFF798038103D269B633813FC60C"
ROOT = "EEE19B7EC3C1B174"
CHILD = "EEE19B7EC3C1B173"


def otlp_json(project_key: str | None = None) -> dict:
    now = time.time_ns()
    resource_attrs = [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
    if project_key:
        resource_attrs.append({"key": "pystrument.project_key", "value": {"stringValue": project_key}})
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": resource_attrs},
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": ROOT,
                                "parentSpanId": "",
                                "name": "POST /orders",
                                "kind": "SPAN_KIND_SERVER",
                                "startTimeUnixNano": str(now - 250_000_000),
                                "endTimeUnixNano": str(now),
                                "attributes": [
                                    {"key": "http.method", "value": {"stringValue": "post"}},
                                    {"key": "http.target", "value": {"stringValue": "/orders?session_id=abc&x=1"}},
                                    {"key": "http.status_code", "value": {"intValue": "503"}},
                                    {"key": "pystrument.cpu_time_ms", "value": {"doubleValue": 80}},
                                    {"key": "retry", "value": {"boolValue": True}},
                                    {
                                        "key": "tags",
                                        "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 2}]}},
                                    },
                                    {
                                        "key": "nested",
                                        "value": {
                                            "kvlistValue": {"values": [{"key": "k", "value": {"doubleValue": 1.5}}]}
                                        },
                                    },
                                    {"key": "cookie", "value": {"stringValue": "sid=123"}},
                                    {"key": "nul", "value": {"stringValue": "a\u0000b"}},
                                ],
                                "status": {"code": "STATUS_CODE_ERROR", "message": "upstream down"},
                                "events": [
                                    {
                                        "timeUnixNano": now - 1000,
                                        "name": "exception",
                                        "attributes": [{"key": "exception.type", "value": {"stringValue": "E"}}],
                                    }
                                ],
                            },
                            {
                                "traceId": TRACE.lower(),
                                "spanId": CHILD,
                                "parentSpanId": ROOT,
                                "name": "orders.create",
                                "kind": 1,
                                "startTimeUnixNano": now - 200_000_000,
                                "endTimeUnixNano": now - 100_000_000,
                                "attributes": [{"key": "pystrument.synthetic", "value": {"boolValue": True}}],
                                "status": {"code": 0},
                            },
                        ],
                    }
                ],
            }
        ]
    }


async def test_json_body_is_mapped(live_server, project, rows) -> None:
    r = httpx.post(
        live_server.url + "/v1/traces",
        json=otlp_json(),
        headers={"x-project-key": project[1]},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json") and r.json() == {}
    root, child = sorted(await rows("spans"), key=lambda s: s["span_id"], reverse=True)
    assert (root["trace_id"], root["span_id"], root["parent_span_id"]) == (TRACE.lower(), ROOT.lower(), None)
    assert child["parent_span_id"] == ROOT.lower()
    assert (root["kind"], child["kind"]) == ("SERVER", "INTERNAL")
    assert (root["status_code"], root["status_message"]) == (2, "upstream down")
    assert child["synthetic"] is True
    assert abs(root["duration"] - 0.25) < 1e-6 and abs(child["duration"] - 0.1) < 1e-6
    attrs = root["attributes"]
    assert attrs["tags"] == ["a", 2] and attrs["nested"] == {"k": 1.5} and attrs["retry"] is True
    assert attrs["http.status_code"] == 503
    assert attrs["cookie"] == "[REDACTED]"
    assert attrs["nul"] == "ab"  # Postgres JSONB refuses NUL characters
    assert attrs["http.target"] == "/orders?session_id=[REDACTED]&x=1"
    assert root["events"][0]["name"] == "exception"
    assert root["events"][0]["attributes"] == {"exception.type": "E"}
    [record] = await rows("performance_records")
    assert (record["method"], record["path"], record["status_code"], record["is_error"]) == (
        "POST",
        "/orders",
        503,
        True,
    )
    assert record["cpu_time"] == 0.08 and record["service_name"] == "json-svc"


async def test_gzip_json_with_resource_key(live_server, project, rows) -> None:
    body = gzip.compress(json.dumps(otlp_json(project[1])).encode())
    r = httpx.post(
        live_server.url + "/v1/traces",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    assert len(await rows("spans")) == 2


async def test_invalid_ids_give_partial_success(live_server, project, rows) -> None:
    doc = otlp_json()
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({**spans[1], "spanId": "xyz", "name": "bad span id"})
    spans.append({**spans[1], "spanId": "0123456789abcdef", "traceId": "", "name": "no trace id"})
    r = httpx.post(live_server.url + "/v1/traces", json=doc, headers={"x-project-key": project[1]})
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2" and "bad span id" in partial["errorMessage"]
    assert len(await rows("spans")) == 2
    stats = httpx.get(live_server.url + "/v1/stats").json()
    assert stats["spans"]["rejected"] == {"invalid_span_id": 1, "invalid_trace_id": 1}
    assert stats["spans"]["accepted"] == 2


async def test_resource_keys_route_spans_to_their_projects(live_server, make_project, rows) -> None:
    a_id, a_key = await make_project("a")
    b_id, b_key = await make_project("b")
    doc = otlp_json(a_key)
    other = otlp_json(b_key)["resourceSpans"][0]
    for span in other["scopeSpans"][0]["spans"]:
        span["traceId"] = "1" * 32
    doc["resourceSpans"].append(other)
    r = httpx.post(live_server.url + "/v1/traces", json=doc)
    assert r.status_code == 200, r.text
    by_project = {(s["project_id"], s["trace_id"]) for s in await rows("spans")}
    assert by_project == {(a_id, TRACE.lower()), (b_id, "1" * 32)}

    # One resource without a key refuses the whole request.
    doc = otlp_json(a_key)
    doc["resourceSpans"].append(otlp_json()["resourceSpans"][0])
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "2" * 32
    r = httpx.post(live_server.url + "/v1/traces", json=doc)
    assert r.status_code == 401 and "pystrument.project_key" in r.json()["message"]
    assert len(await rows("spans")) == 4
