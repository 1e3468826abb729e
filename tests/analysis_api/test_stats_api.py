"""Per-route statistics, the time series and hot functions, computed by Postgres over inserted records."""

from __future__ import annotations

from typing import Any

import pytest

WINDOW = {"start": "2024-08-24T10:00:00Z", "end": "2024-08-24T10:10:00Z"}


async def stats(client: Any, key: str, **params: Any) -> dict[str, Any]:
    r = await client.get("/api/v1/performance/stats", params={"project_key": key, **params})
    assert r.status_code == 200, r.text
    assert r.json()["code"] == 0
    return r.json()["data"]


async def seed(perf: Any, t: Any) -> Any:
    project = await perf.project()
    for i in range(10):  # /users/{id}: 0.1 .. 1.0 s, one a minute, the last one failed
        await perf.request(
            project, f"a{i:031x}", start=t(i * 60 + 1), duration=0.1 * (i + 1), status=500 if i == 9 else 200
        )
    for i in range(2):
        await perf.request(project, f"b{i:031x}", start=t(30 + i), duration=2.0, method="POST", route="/orders")
    await perf.request(project, "c" * 32, start=t(3600), duration=9.0)  # outside the window
    return project


async def test_summary_routes_and_percentiles(client: Any, perf: Any, t: Any) -> None:
    project = await seed(perf, t)
    data = await stats(client, project.project_key, bucket="1m", **WINDOW)
    assert (data["start"], data["end"], data["bucket"]) == ("2024-08-24T10:00:00Z", "2024-08-24T10:10:00Z", 60)
    summary = data["summary"]
    assert summary["count"] == 12 and summary["error_count"] == 1
    assert summary["error_rate"] == pytest.approx(1 / 12)
    assert summary["throughput"] == pytest.approx(12 / 600)
    assert summary["max"] == pytest.approx(2.0)

    routes = {(r["method"], r["route"]): r for r in data["routes"]}
    assert list(routes) == [("GET", "/users/{id}"), ("POST", "/orders")]  # by request count
    users = routes[("GET", "/users/{id}")]
    assert users["count"] == 10 and users["error_count"] == 1 and users["error_rate"] == pytest.approx(0.1)
    assert users["p50"] == pytest.approx(0.55)
    assert users["p95"] == pytest.approx(0.955)
    assert users["p99"] == pytest.approx(0.991)
    assert users["avg"] == pytest.approx(0.55)
    assert users["throughput"] == pytest.approx(10 / 600)
    assert [r["route"] for r in data["slowest_routes"]] == ["/orders", "/users/{id}"]


async def test_timeseries_buckets(client: Any, perf: Any, t: Any) -> None:
    project = await seed(perf, t)
    series = (await stats(client, project.project_key, bucket="60", **WINDOW))["timeseries"]
    assert len(series) == 10
    assert series[0]["time"] == "2024-08-24T10:00:00Z" and series[9]["time"] == "2024-08-24T10:09:00Z"
    assert [p["count"] for p in series] == [3, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert series[9]["error_rate"] == 1.0 and series[1]["error_rate"] == 0.0
    assert series[1]["p50"] == pytest.approx(0.2) and series[0]["throughput"] == pytest.approx(3 / 60)
    empty = (
        await stats(client, project.project_key, bucket="5m", start="2024-08-24T11:30:00Z", end="2024-08-24T12:00:00Z")
    )["timeseries"]
    assert len(empty) == 6 and all(p["count"] == 0 and p["p95"] is None for p in empty)


async def test_filters_and_defaults(client: Any, perf: Any, t: Any) -> None:
    project = await seed(perf, t)
    only_orders = await stats(client, project.project_key, route="/orders", **WINDOW)
    assert only_orders["summary"]["count"] == 2 and len(only_orders["routes"]) == 1
    default = await stats(client, project.project_key)  # last 24 hours: these 2024 rows are out
    assert default["summary"]["count"] == 0 and default["summary"]["p50"] is None
    assert default["bucket"] == 900 and len(default["timeseries"]) in (96, 97)
    limited = await stats(client, project.project_key, limit=1, slowest=1, **WINDOW)
    assert len(limited["routes"]) == 1 and limited["slowest_routes"][0]["route"] == "/orders"


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"bucket": "soon"}, "bucket"),
        ({"bucket": "0"}, "bucket"),
        ({"bucket": "1s"}, "points"),  # 86400 points over a day
        ({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "start must be before end"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "400 days"),
        ({"limit": 0}, "limit"),
    ],
)
async def test_bad_stats_query(client: Any, perf: Any, params: dict[str, Any], word: str) -> None:
    project = await perf.project()
    r = await client.get("/api/v1/performance/stats", params={"project_key": project.project_key, **params})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 40001 and word in r.json()["msg"]
    r = await client.get("/api/v1/performance/stats", params={"project_key": "proj_nope"})
    assert r.status_code == 404 and r.json()["code"] == 40401


async def test_hot_functions_for_a_route(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project()
    other = await perf.project("other")
    for i in range(3):
        trace = f"{i + 1:032x}"
        root = await perf.request(project, trace, start=t(i * 10), duration=0.2)
        outer = await perf.span(
            project,
            trace,
            "app.views.handler",
            t(i * 10),
            0.2,
            parent=root,
            synthetic=True,
            attributes={"code.file.path": "/app/views.py", "code.line.number": 10, "pystrument.self_time_ms": 20},
        )
        await perf.span(
            project,
            trace,
            "app.db.query_all",
            t(i * 10 + 0.05),
            0.15,
            parent=outer,
            synthetic=True,
            attributes={"code.file.path": "/app/db.py", "code.line.number": 3, "pystrument.self_time_ms": 150},
        )
        await perf.span(project, trace, "SELECT 1", t(i * 10 + 0.06), 0.1, parent=root, kind="CLIENT")
    other_root = await perf.request(project, "f" * 32, start=t(5), duration=1.0, route="/other")
    await perf.span(
        project, "f" * 32, "app.other", t(5), 1.0, parent=other_root, synthetic=True,
        attributes={"pystrument.self_time_ms": 1000},
    )  # fmt: skip
    await perf.request(other, "e" * 32, start=t(5), duration=1.0)

    r = await client.get(
        "/api/v1/performance/functions",
        params={"project_key": project.project_key, "route": "/users/{id}", **WINDOW},
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["route"] == "/users/{id}" and data["request_count"] == 3
    assert data["request_time"] == pytest.approx(0.6)
    names = [f["name"] for f in data["functions"]]
    assert names == ["app.db.query_all", "app.views.handler"]  # by self time; SELECT is not a function span
    top = data["functions"][0]
    assert (top["file"], top["line"], top["calls"], top["traces"]) == ("/app/db.py", 3, 3, 3)
    assert top["self_time"] == pytest.approx(0.45) and top["total_time"] == pytest.approx(0.45)
    assert top["avg_time"] == pytest.approx(0.15) and top["self_time_share"] == pytest.approx(0.75)

    everything = await client.get(
        "/api/v1/performance/functions", params={"project_key": project.project_key, "limit": 1, **WINDOW}
    )
    assert [f["name"] for f in everything.json()["data"]["functions"]] == ["app.other"]
