"""Performance records: seed 5.2.2 shape, paging, filters, sorting, trace detail and project isolation."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

SEED_RECORD = {
    "trace_id": "trace_xyz789",
    "request_path": "/api/users/123",
    "duration": 0.856,
    "status_code": 200,
    "timestamp": "2024-08-24T10:15:00Z",
}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def assert_error(r: Any, status: int, code: int, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert (body["code"], body["data"]) == (code, None)
    for word in words:
        assert word in body["msg"], body["msg"]


async def records(client: Any, key: str, **params: Any) -> dict[str, Any]:
    r = await client.get("/api/v1/performance/records", params={"project_key": key, **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["code"], body["msg"]) == (0, "success")
    return body["data"]


async def test_list_matches_seed_shape(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project()
    await perf.request(project, "trace_xyz789", start=t(900), duration=0.856, path="/api/users/123")
    data = await records(client, project.project_key, page=1, size=20)
    assert set(data) == {"records", "total", "page", "size", "total_estimated", "next_cursor"}
    assert (data["total"], data["page"], data["size"]) == (1, 1, 20)
    record = data["records"][0]
    assert set(SEED_RECORD) <= set(record)
    for key, example in SEED_RECORD.items():
        assert type(record[key]) is type(example), key
    assert {k: record[k] for k in SEED_RECORD} == SEED_RECORD
    assert record["method"] == "GET" and record["route"] == "/users/{id}"
    assert record["service_name"] == "svc" and record["cpu_time"] == 0.01 and record["is_error"] is False


async def test_newest_first_and_paging(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project()
    for i in range(5):
        await perf.request(project, f"{i:032x}", start=t(i * 10), duration=0.1 * (5 - i))
    data = await records(client, project.project_key, page=1, size=2)
    assert data["total"] == 5
    assert [r["trace_id"] for r in data["records"]] == [f"{4:032x}", f"{3:032x}"]
    assert ISO_Z.match(data["records"][0]["timestamp"])
    last = await records(client, project.project_key, page=3, size=2)
    assert [r["trace_id"] for r in last["records"]] == [f"{0:032x}"]
    assert (await records(client, project.project_key, page=4, size=2))["records"] == []
    default = await records(client, project.project_key)
    assert (default["page"], default["size"], len(default["records"])) == (1, 20, 5)

    by_duration = await records(client, project.project_key, sort="duration", order="desc")
    assert [r["duration"] for r in by_duration["records"]] == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1])
    oldest = await records(client, project.project_key, sort="timestamp", order="asc", size=1)
    assert oldest["records"][0]["trace_id"] == f"{0:032x}"


async def test_filters(client: Any, perf: Any, t: Any) -> None:
    p = await perf.project()
    await perf.request(p, "1" * 32, start=t(0), duration=0.05, path="/users/1", status=200)
    await perf.request(p, "2" * 32, start=t(60), duration=0.5, path="/users/2", status=404)
    await perf.request(p, "3" * 32, start=t(120), duration=1.5, route="/orders", path="/orders", status=503)
    await perf.request(p, "4" * 32, start=t(180), duration=0.2, method="POST", route="/orders", path="/orders")
    await perf.request(p, "5" * 32, start=t(240), duration=0.3, service="billing", path="/50%_off")
    key = p.project_key

    async def ids(**params: Any) -> list[str]:
        return sorted(r["trace_id"][0] for r in (await records(client, key, **params))["records"])

    assert await ids(route="/orders") == ["3", "4"]
    assert await ids(path="users") == ["1", "2"]
    assert await ids(path="50%_") == ["5"]  # LIKE wildcards are literal
    assert await ids(path="%") == ["5"]
    assert await ids(method="post") == ["4"]
    assert await ids(status_code=404) == ["2"]
    assert await ids(status_class="5xx") == ["3"]
    assert await ids(status_class="2xx") == ["1", "4", "5"]
    assert await ids(error="true") == ["3"]
    assert await ids(min_duration=0.3) == ["2", "3", "5"]
    assert await ids(max_duration=0.2) == ["1", "4"]
    assert await ids(min_duration=0.2, max_duration=0.5) == ["2", "4", "5"]
    assert await ids(start="2024-08-24T10:01:00Z", end="2024-08-24T10:03:00Z") == ["2", "3"]
    assert await ids(start="2024-08-24T12:01:00+02:00") == ["2", "3", "4", "5"]  # offsets honoured
    assert await ids(service="billing") == ["5"]
    assert (await records(client, key, route="/orders", size=1))["total"] == 2


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({}, "project_key"),
        ({"project_key": ""}, "project_key"),
        ({"page": 0}, "page"),
        ({"size": 101}, "size"),
        ({"size": 0}, "size"),
        ({"sort": "name"}, "sort"),
        ({"order": "up"}, "order"),
        ({"status_class": "6xx"}, "status_class"),
        ({"status_code": 42}, "status_code"),
        ({"min_duration": -1}, "min_duration"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2024-08-24T10:00:00Z", "end": "2024-08-24T09:00:00Z"}, "start must be before end"),
        ({"min_duration": 2, "max_duration": 1}, "min_duration"),
    ],
)
async def test_bad_query_is_400(client: Any, perf: Any, params: dict[str, Any], word: str) -> None:
    project = await perf.project()
    full = {"project_key": project.project_key, **params} if "project_key" not in params else params
    if params == {}:
        full = {}
    r = await client.get("/api/v1/performance/records", params=full)
    assert_error(r, 400, 40001, word)


async def test_unknown_project_is_404(client: Any) -> None:
    r = await client.get("/api/v1/performance/records", params={"project_key": "proj_unknown"})
    assert_error(r, 404, 40401, "project not found")
    r = await client.get("/api/v1/performance/records/" + "a" * 32, params={"project_key": "proj_unknown"})
    assert_error(r, 404, 40401, "project not found")


async def build_trace(perf: Any, project: Any, t: Any, trace_id: str = "ab" * 16) -> dict[str, str]:
    """A request with nested function spans and real DB/HTTP spans parented to the request span."""
    root = await perf.request(
        project, trace_id, start=t(0), duration=1.0, attributes={"pystrument.profile.interval_ms": 1}
    )
    ids = {"root": root}
    fn = {"synthetic": True}
    ids["view"] = await perf.span(project, trace_id, "app.view", t(0.01), 0.95, parent=root, **fn)
    ids["load"] = await perf.span(project, trace_id, "app.load_users", t(0.02), 0.5, parent=ids["view"], **fn)
    ids["render"] = await perf.span(project, trace_id, "app.render", t(0.6), 0.3, parent=ids["view"], **fn)
    # real spans, as the SDK exports them: children of the request span
    ids["db1"] = await perf.span(project, trace_id, "SELECT users", t(0.1), 0.1, parent=root, kind="CLIENT")
    ids["db2"] = await perf.span(project, trace_id, "SELECT users", t(0.3), 0.1, parent=root, kind="CLIENT")
    # pokes 0.5 ms past app.render: within one sampling interval, still nested there
    ids["http"] = await perf.span(project, trace_id, "GET", t(0.85), 0.0505, parent=root, kind="CLIENT")
    # outside every function span: stays under the request
    ids["late"] = await perf.span(project, trace_id, "cleanup", t(0.97), 0.02, parent=root)
    # a real child of a real span keeps its parent
    ids["nested"] = await perf.span(project, trace_id, "connect", t(0.31), 0.01, parent=ids["db2"])
    return ids


async def test_record_detail_with_span_tree(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project()
    ids = await build_trace(perf, project, t)
    trace_id = "ab" * 16
    r = await client.get(f"/api/v1/performance/records/{trace_id}", params={"project_key": project.project_key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["code"], body["msg"]) == (0, "success")
    data = body["data"]
    assert {"record", "spans"} <= set(data)
    assert (data["span_total"], data["spans_truncated"], data["next_span_offset"]) == (len(data["spans"]), False, None)
    record = data["record"]
    assert set(SEED_RECORD) | {"method", "route", "cpu_time", "memory", "service_name", "span_id"} <= set(record)
    assert record["trace_id"] == trace_id and record["span_id"] == ids["root"]
    assert record["memory"] == {"peak_memory": 45}

    spans = data["spans"]
    assert len(spans) == len(ids)
    required = {"span_id", "parent_span_id", "name", "kind", "start_time", "duration", "attributes"}
    for s in spans:
        assert required <= set(s)
        assert isinstance(s["duration"], float) and ISO_Z.match(s["start_time"])
    starts = [datetime.fromisoformat(s["start_time"]) for s in spans]
    assert starts == sorted(starts)
    by_id = {s["span_id"]: s for s in spans}
    name_of = {v: k for k, v in ids.items()}

    def display(key: str) -> str | None:
        parent = by_id[ids[key]]["display_parent_span_id"]
        return None if parent is None else name_of[parent]

    assert by_id[ids["root"]]["parent_span_id"] is None and display("root") is None
    assert display("view") == "root" and display("load") == "view" and display("render") == "view"
    assert display("db1") == "load" and display("db2") == "load"
    assert display("http") == "render"
    assert display("late") == "root"
    assert display("nested") == "db2"
    for key in ("db1", "db2", "http", "late"):  # the stored parent is kept as received
        assert by_id[ids[key]]["parent_span_id"] == ids["root"]
    assert by_id[ids["db1"]]["depth"] == 3 and by_id[ids["nested"]]["depth"] == 4
    assert by_id[ids["view"]]["synthetic"] is True and by_id[ids["db1"]]["synthetic"] is False
    assert by_id[ids["db1"]]["offset"] == pytest.approx(0.1)
    assert by_id[ids["view"]]["attributes"]["pystrument.synthetic"] is True


async def test_record_detail_reads_interval_and_json_as_stored(client: Any, perf: Any, t: Any) -> None:
    """The interval that sets the nesting slack is read in SQL (numbers only); JSON columns come back intact."""
    key_for: dict[str, str] = {}
    for trace_id, interval in (("c1" * 16, 10), ("c2" * 16, "10"), ("c3" * 16, 5000)):
        project = await perf.project(trace_id[:2])
        key_for[trace_id] = project.project_key
        root = await perf.request(
            project, trace_id, start=t(0), duration=1.0, attributes={"pystrument.profile.interval_ms": interval}
        )
        fn = await perf.span(project, trace_id, "app.f", t(0.1), 0.2, parent=root, synthetic=True)
        await perf.span(project, trace_id, "SELECT", t(0.095), 0.21, parent=root, kind="CLIENT", span_id="d" * 16)
        key_for[trace_id + "fn"] = fn
    odd = {"text": 'naïve 🚀 "quoted"', "nested": {"list": [1, 2.5, None, True]}, "big": 12345678901234567}
    project = await perf.project("json")
    root = await perf.request(project, "c4" * 16, start=t(0), duration=1.0, attributes=odd)

    async def spans(trace_id: str, key: str) -> dict[str, Any]:
        r = await client.get(f"/api/v1/performance/records/{trace_id}", params={"project_key": key})
        assert r.status_code == 200, r.text
        return {s["span_id"]: s for s in r.json()["data"]["spans"]}

    # 5 ms out on each side: inside a 10 ms interval; a string or an absurd interval falls back to 1 ms
    assert (await spans("c1" * 16, key_for["c1" * 16]))["d" * 16]["display_parent_span_id"] == key_for["c1" * 16 + "fn"]
    for trace_id in ("c2" * 16, "c3" * 16):
        db_span = (await spans(trace_id, key_for[trace_id]))["d" * 16]
        assert db_span["display_parent_span_id"] == db_span["parent_span_id"] != key_for[trace_id + "fn"]
    stored = (await spans("c4" * 16, project.project_key))[root]
    assert stored["attributes"] == {"http.route": "/users/{id}", **odd} and stored["events"] == []


async def test_record_detail_isolated_by_project(client: Any, perf: Any, t: Any) -> None:
    a = await perf.project("a")
    b = await perf.project("b")
    await build_trace(perf, a, t)
    trace_id = "ab" * 16
    r = await client.get(f"/api/v1/performance/records/{trace_id}", params={"project_key": b.project_key})
    assert_error(r, 404, 40401, "trace not found")
    assert (await records(client, b.project_key))["total"] == 0
    r = await client.get(f"/api/v1/performance/records/{'cd' * 16}", params={"project_key": a.project_key})
    assert_error(r, 404, 40401, "trace not found")
    r = await client.get(f"/api/v1/performance/records/{trace_id}")
    assert_error(r, 400, 40001, "project_key")


async def test_trace_across_two_services(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project()
    trace_id = "ef" * 16
    front = await perf.request(project, trace_id, start=t(0), duration=0.5, service="front", route="/checkout")
    call = await perf.span(project, trace_id, "app.call_billing", t(0.01), 0.45, parent=front, synthetic=True)
    client_span = await perf.span(project, trace_id, "POST", t(0.05), 0.3, parent=front, kind="CLIENT")
    back = await perf.request(
        project, trace_id, start=t(0.06), duration=0.28, service="billing", route="/charge", parent=client_span
    )
    inner = await perf.span(project, trace_id, "SELECT", t(0.1), 0.05, parent=back, kind="CLIENT", service="billing")
    data = (
        await client.get(f"/api/v1/performance/records/{trace_id}", params={"project_key": project.project_key})
    ).json()["data"]
    assert data["record"]["span_id"] == front  # the first request span of the trace
    by_id = {s["span_id"]: s for s in data["spans"]}
    assert by_id[client_span]["display_parent_span_id"] == call
    assert by_id[back]["display_parent_span_id"] == client_span  # its parent has no function spans
    assert by_id[inner]["display_parent_span_id"] == back
    chosen = (
        await client.get(
            f"/api/v1/performance/records/{trace_id}", params={"project_key": project.project_key, "span_id": back}
        )
    ).json()["data"]
    assert chosen["record"]["service_name"] == "billing" and chosen["record"]["route"] == "/charge"
    listed = await records(client, project.project_key)
    assert listed["total"] == 2
