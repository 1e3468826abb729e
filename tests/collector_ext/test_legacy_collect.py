"""``POST /api/v1/performance/collect`` (seed 5.2.1): stored as a request span + record + function spans."""

from __future__ import annotations

from datetime import datetime

import httpx

SEED_REPORT = {
    "trace_id": "trace_xyz789",
    "request_info": {
        "method": "GET",
        "path": "/api/users/123",
        "query_params": {"verbose": "1", "token": "abc"},
        "headers": {"User-Agent": "curl/8", "Authorization": "Bearer secret"},
        "status_code": 200,
    },
    "performance_metrics": {"total_duration": 0.856, "cpu_time": 0.234, "memory_usage": {"peak_memory": 45}},
    "function_calls": [
        {
            "function": "get_user",
            "module": "app.views",
            "line": 42,
            "duration": 0.8,
            "children": [
                {"function": "query_user", "file": "app/db.py", "line": 10, "duration": 0.5, "start_time": 0.1},
                {"name": "render", "duration": 0.2},
            ],
        },
        {"function": "app.middleware.log", "duration": 0.01},
    ],
}


def post(server, body, key: str | None = None) -> httpx.Response:
    headers = {"x-project-key": key} if key else {}
    return httpx.post(server.url + "/api/v1/performance/collect", json=body, headers=headers)


async def test_seed_report_is_stored_as_spans_and_record(live_server, project, rows) -> None:
    project_id, key = project
    r = post(live_server, SEED_REPORT, key)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["code"] == 0 and doc["msg"] == "success"
    assert doc["data"]["trace_id"] == "trace_xyz789"
    assert datetime.fromisoformat(doc["data"]["recorded_at"].replace("Z", "+00:00")).tzinfo is not None

    spans = {s["name"]: s for s in await rows("spans")}
    assert set(spans) == {
        "GET /api/users/123",
        "app.views.get_user",
        "query_user",
        "render",
        "app.middleware.log",
    }
    req = spans["GET /api/users/123"]
    assert req["trace_id"] == "trace_xyz789" and req["kind"] == "SERVER" and req["parent_span_id"] is None
    assert req["project_id"] == project_id and abs(req["duration"] - 0.856) < 1e-6
    assert req["attributes"]["http.request.header.authorization"] == "[REDACTED]"
    assert req["attributes"]["url.query"] == "verbose=1&token=[REDACTED]"
    fn = spans["app.views.get_user"]
    assert fn["kind"] == "INTERNAL" and fn["synthetic"] is True and fn["parent_span_id"] == req["span_id"]
    assert fn["attributes"]["code.function.name"] == "app.views.get_user"
    assert fn["attributes"]["code.line.number"] == 42
    query = spans["query_user"]
    assert query["parent_span_id"] == fn["span_id"]
    assert query["attributes"]["code.file.path"] == "app/db.py"
    assert abs((query["start_time"] - req["start_time"]).total_seconds() - 0.1) < 1e-3
    # Without start times, siblings are laid out one after another.
    log = spans["app.middleware.log"]
    assert (
        log["start_time"] >= fn["start_time"]
        and abs((log["start_time"] - fn["start_time"]).total_seconds() - 0.8) < 1e-3
    )

    [record] = await rows("performance_records")
    assert (record["trace_id"], record["method"], record["path"], record["status_code"]) == (
        "trace_xyz789",
        "GET",
        "/api/users/123",
        200,
    )
    assert abs(record["duration"] - 0.856) < 1e-9 and abs(record["cpu_time"] - 0.234) < 1e-9
    assert record["memory"] == {"peak_memory": 45} and record["is_error"] is False

    # The same report again stores nothing new.
    assert post(live_server, SEED_REPORT, key).status_code == 200
    assert len(await rows("spans")) == 5 and len(await rows("performance_records")) == 1


async def test_collect_errors_use_the_envelope(live_server, project, rows) -> None:
    key = project[1]
    r = post(live_server, {**SEED_REPORT, "trace_id": "t" * 33}, key)
    assert r.status_code == 400
    assert r.json()["code"] == 40001 and "at most 32" in r.json()["msg"]
    r = post(live_server, {**SEED_REPORT, "performance_metrics": {}}, key)
    assert r.status_code == 400 and "total_duration" in r.json()["msg"]
    r = post(live_server, {**SEED_REPORT, "function_calls": [{"duration": 1}]}, key)
    assert r.status_code == 400 and "function_calls[0]" in r.json()["msg"]
    r = post(live_server, SEED_REPORT, "proj_unknown")
    assert r.status_code == 401 and r.json()["code"] == 40101
    r = post(live_server, SEED_REPORT)
    assert r.status_code == 401 and "X-Project-Key" in r.json()["msg"]
    assert await rows("spans") == [] and await rows("performance_records") == []
