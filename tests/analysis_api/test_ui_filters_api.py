"""What the UI's whole-page filters need (issue 17): project ids, the service list, and the records list's
filters (status, error, path, duration) applied to statistics and hot functions too."""

from __future__ import annotations

from typing import Any

import pytest

WINDOW = {"start": "2024-08-24T10:00:00Z", "end": "2024-08-24T10:10:00Z"}


async def get(client: Any, url: str, **params: Any) -> dict[str, Any]:
    r = await client.get(url, params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def seed(perf: Any, t: Any) -> tuple[Any, Any]:
    project = await perf.project()
    other = await perf.project("other")
    for i in range(6):  # shop-web: 0.1 .. 0.6 s, the last two failed
        trace = f"a{i:031x}"
        root = await perf.request(
            project,
            trace,
            start=t(i * 60 + 1),
            duration=0.1 * (i + 1),
            status=500 if i >= 4 else 200,
            service="shop-web",
        )
        await perf.span(
            project, trace, "app.fail" if i >= 4 else "app.ok", t(i * 60 + 1), 0.05, parent=root, synthetic=True,
            attributes={"pystrument.self_time_ms": 50},
        )  # fmt: skip
    for i in range(3):
        await perf.request(
            project, f"b{i:031x}", start=t(30 + i), duration=2.0, route="/orders", path="/orders/1", service="billing"
        )
    await perf.request(other, "c" * 32, start=t(5), duration=1.0, service="elsewhere")
    return project, other


async def test_projects_carry_a_stable_id_that_survives_key_rotation(client: Any, perf: Any) -> None:
    project = await perf.project("stable")
    listed = await get(client, "/api/v1/projects", size=100)
    [item] = [p for p in listed["projects"] if p["project_key"] == project.project_key]
    assert item["id"] == project.id
    rotated = (await client.post(f"/api/v1/projects/{project.project_key}/rotate-key")).json()["data"]
    assert rotated["project_key"] != project.project_key and rotated["id"] == project.id
    again = await get(client, "/api/v1/projects", size=100)
    assert [p["id"] for p in again["projects"] if p["project_key"] == rotated["project_key"]] == [project.id]
    one = await get(client, f"/api/v1/projects/{rotated['project_key']}")
    assert one["id"] == project.id


async def test_services_of_one_project_busiest_first(client: Any, perf: Any, t: Any) -> None:
    project, other = await seed(perf, t)
    data = await get(client, "/api/v1/performance/services", project_key=project.project_key)
    assert data["services"] == [{"name": "shop-web", "count": 6}, {"name": "billing", "count": 3}]
    windowed = await get(
        client, "/api/v1/performance/services", project_key=project.project_key,
        start="2024-08-24T10:00:00Z", end="2024-08-24T10:00:40Z",
    )  # fmt: skip
    assert windowed["services"] == [{"name": "billing", "count": 3}, {"name": "shop-web", "count": 1}]
    theirs = await get(client, "/api/v1/performance/services", project_key=other.project_key)
    assert theirs["services"] == [{"name": "elsewhere", "count": 1}]
    r = await client.get("/api/v1/performance/services", params={"project_key": "proj_missing"})
    assert r.status_code == 404


async def test_stats_follow_every_records_filter(client: Any, perf: Any, t: Any) -> None:
    project, _ = await seed(perf, t)
    key = project.project_key
    url = "/api/v1/performance/stats"
    errors = await get(client, url, project_key=key, error="true", **WINDOW)
    assert errors["summary"]["count"] == 2 and errors["summary"]["error_count"] == 2
    assert [r["route"] for r in errors["routes"]] == ["/users/{id}"]
    by_service = await get(client, url, project_key=key, service="billing", **WINDOW)
    assert by_service["summary"]["count"] == 3 and [r["route"] for r in by_service["routes"]] == ["/orders"]
    slow = await get(client, url, project_key=key, min_duration=0.35, max_duration=1.0, **WINDOW)
    assert slow["summary"]["count"] == 3  # 0.4, 0.5, 0.6 s
    assert sum(p["count"] for p in slow["timeseries"]) == 3
    fives = await get(client, url, project_key=key, status_class="5xx", bucket="1m", **WINDOW)
    assert fives["summary"]["count"] == 2 and fives.get("approximate") in (None, False)
    by_path = await get(client, url, project_key=key, path="users", **WINDOW)
    assert by_path["summary"]["count"] == 6
    r = await client.get(url, params={"project_key": key, "error": "true", "mode": "rollup", **WINDOW})
    assert r.status_code == 400 and "rollup" in r.text


async def test_hot_functions_follow_every_records_filter(client: Any, perf: Any, t: Any) -> None:
    project, _ = await seed(perf, t)
    url = "/api/v1/performance/functions"
    failed = await get(client, url, project_key=project.project_key, error="true", **WINDOW)
    assert failed["request_count"] == 2
    assert [(f["name"], f["calls"], f["traces"]) for f in failed["functions"]] == [("app.fail", 2, 2)]
    fast = await get(client, url, project_key=project.project_key, max_duration=0.25, **WINDOW)
    assert [(f["name"], f["calls"]) for f in fast["functions"]] == [("app.ok", 2)]
    assert fast["request_time"] == pytest.approx(0.3)


async def test_differential_follows_the_service_and_status_filters(client: Any, perf: Any, t: Any) -> None:
    project, _ = await seed(perf, t)
    data = await get(
        client, "/api/v1/performance/routes/differential", project_key=project.project_key, route="/users/{id}",
        status_class="2xx", **WINDOW,
    )  # fmt: skip
    assert data["request_count"] == 4


async def test_records_of_given_traces_only_in_this_project(client: Any, perf: Any, t: Any) -> None:
    project, _ = await seed(perf, t)
    wanted = f"a{1:031x},B{0:031x},{'c' * 32}"  # the third is the other project's: not returned
    data = await get(client, "/api/v1/performance/records", project_key=project.project_key, trace_ids=wanted)
    assert sorted(r["trace_id"] for r in data["records"]) == [f"a{1:031x}", f"b{0:031x}"]
    r = await client.get(
        "/api/v1/performance/records", params={"project_key": project.project_key, "trace_ids": "nothex!"}
    )
    assert r.status_code == 400
