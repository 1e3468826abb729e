"""Finding 8: analyses listed or read without ``project_key`` showed every project's; a trigger with only a
trace id answered with the owning project's key; repeated query parameters (the last won); the trigger's body
key beat its header."""

from __future__ import annotations

from typing import Any

REPORT = {
    "trace_id": "scope_trace_1",
    "request_info": {"method": "GET", "path": "/x", "status_code": 200},
    "performance_metrics": {"total_duration": 0.1},
    "function_calls": [{"function": "f", "duration": 0.05}],
}


async def project_with_trace(client: Any, name: str, trace_id: str = "scope_trace_1") -> str:
    key = (await client.post("/api/v1/projects", json={"name": name})).json()["data"]["project_key"]
    report = {**REPORT, "trace_id": trace_id}
    r = await client.post("/api/v1/performance/collect", json=report, headers={"X-Project-Key": key})
    assert r.status_code == 200, r.text
    return str(key)


async def test_analyses_are_scoped_to_a_project(client: Any) -> None:
    mine = await project_with_trace(client, "mine")
    theirs = await project_with_trace(client, "theirs", "scope_trace_2")
    r = await client.post("/api/v1/analysis/trigger", json={"trace_id": "scope_trace_2", "project_key": theirs})
    assert r.status_code == 200, r.text
    their_analysis = r.json()["data"]["analysis_id"]
    r = await client.post("/api/v1/analysis/trigger", json={"trace_id": "scope_trace_1", "project_key": mine})
    assert r.json()["data"]["project_key"] == mine

    everyone = await client.get("/api/v1/analysis/results")
    assert everyone.status_code == 400 and "project_key" in everyone.json()["msg"]
    listed = (await client.get("/api/v1/analysis/results", params={"project_key": mine})).json()["data"]
    assert listed["total"] == 1 and theirs not in str(listed)

    by_id = (await client.get(f"/api/v1/analysis/results/{their_analysis}")).json()["data"]
    assert by_id["project_key"] is None  # the id reads the result (seed 5.3.2), not whose it is
    wrong = await client.get(f"/api/v1/analysis/results/{their_analysis}", params={"project_key": mine})
    assert wrong.status_code == 404
    right = await client.get(f"/api/v1/analysis/results/{their_analysis}", params={"project_key": theirs})
    assert right.json()["data"]["project_key"] == theirs


async def test_a_trigger_does_not_tell_whose_trace_it_is(client: Any) -> None:
    key = await project_with_trace(client, "only")
    r = await client.post("/api/v1/analysis/trigger", json={"trace_id": "scope_trace_1"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["project_key"] is None and key not in r.text


async def test_conflicting_keys_and_repeated_parameters_are_a_400(client: Any) -> None:
    mine = await project_with_trace(client, "a")
    theirs = await project_with_trace(client, "b", "scope_trace_2")
    r = await client.post(
        "/api/v1/analysis/trigger",
        json={"trace_id": "scope_trace_1", "project_key": mine},
        headers={"X-Project-Key": theirs},
    )
    assert r.status_code == 400 and "differ" in r.json()["msg"]
    r = await client.get(f"/api/v1/performance/records?project_key={mine}&project_key={theirs}")
    assert r.status_code == 400 and "more than once" in r.json()["msg"]
    r = await client.get(f"/api/v1/analysis/results?project_key={theirs}&project_key={mine}")
    assert r.status_code == 400
