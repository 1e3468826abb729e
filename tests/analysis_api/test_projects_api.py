"""Projects API against the seed contract (5.1.1, 5.1.2) and the extra project endpoints."""

from __future__ import annotations

import re
from typing import Any

import pytest

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ISO_Z_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

SEED_CREATE_REQUEST = {"name": "用户管理系统", "description": "主要负责用户注册、登录等功能", "framework": "flask"}
SEED_CREATE_DATA = {
    "project_key": "proj_abc123def456",
    "name": "用户管理系统",
    "status": "active",
    "created_at": "2024-08-24T10:00:00Z",
}
SEED_LIST_ITEM = {
    "project_key": "proj_abc123def456",
    "name": "用户管理系统",
    "framework": "flask",
    "status": "active",
    "last_activity": "2024-08-24T09:30:00Z",
}


def assert_error(r: Any, status: int, code: int, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "msg", "data"}
    assert body["code"] == code
    assert body["data"] is None
    assert isinstance(body["msg"], str) and body["msg"]
    for word in words:
        assert word in body["msg"], body["msg"]


async def create(client: Any, **overrides: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/projects", json={**SEED_CREATE_REQUEST, **overrides})
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def test_create_matches_seed_shape(client: Any) -> None:
    r = await client.post("/api/v1/projects", json=SEED_CREATE_REQUEST)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["code", "msg", "data"]  # the seed's order
    assert body["code"] == 0 and body["msg"] == "success"
    data = body["data"]
    assert set(data) == set(SEED_CREATE_DATA)
    for key, example in SEED_CREATE_DATA.items():
        assert type(data[key]) is type(example), key
    assert re.fullmatch(r"proj_[0-9a-f]{24}", data["project_key"])
    assert data["name"] == "用户管理系统"
    assert data["status"] == "active"
    assert ISO_Z_SECONDS.match(data["created_at"]), data["created_at"]


async def test_create_minimal_and_normalised(client: Any) -> None:
    r = await client.post("/api/v1/projects", json={"name": "  shop  "})
    assert r.status_code == 200
    key = r.json()["data"]["project_key"]
    assert r.json()["data"]["name"] == "shop"
    detail = (await client.get(f"/api/v1/projects/{key}")).json()["data"]
    assert detail["framework"] == "" and detail["description"] == ""
    other = await create(client, name="x", framework="FastAPI")
    detail = (await client.get(f"/api/v1/projects/{other['project_key']}")).json()["data"]
    assert detail["framework"] == "fastapi"
    free = await create(client, name="y", framework="Sanic")
    detail = (await client.get(f"/api/v1/projects/{free['project_key']}")).json()["data"]
    assert detail["framework"] == "Sanic"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, ["name"]),
        ({"name": ""}, ["name"]),
        ({"name": "   "}, ["name", "empty"]),
        ({"name": "x" * 201}, ["name", "200"]),
        ({"name": 5}, ["name"]),
        ({"name": "ok", "framework": "f" * 51}, ["framework", "50"]),
        ({"name": "ok", "description": 3}, ["description"]),
        ([1, 2], []),
    ],
)
async def test_create_rejects_bad_body(client: Any, body: Any, words: list[str]) -> None:
    r = await client.post("/api/v1/projects", json=body)
    assert_error(r, 400, 40001, *words)


async def test_create_rejects_malformed_json(client: Any) -> None:
    r = await client.post("/api/v1/projects", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 400, 40001)


async def test_list_matches_seed_shape_and_pages(client: Any) -> None:
    keys = [(await create(client, name=f"p{i}"))["project_key"] for i in range(3)]
    r = await client.get("/api/v1/projects", params={"page": 1, "size": 10})
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 0 and body["msg"] == "success"
    data = body["data"]
    assert set(data) == {"projects", "total", "page", "size"}
    assert (data["total"], data["page"], data["size"]) == (3, 1, 10)
    assert [p["project_key"] for p in data["projects"]] == keys[::-1]  # newest first
    item = data["projects"][0]
    assert set(SEED_LIST_ITEM) <= set(item)
    assert item["framework"] == "flask" and item["status"] == "active"
    assert item["last_activity"] is None  # nothing received yet

    page2 = (await client.get("/api/v1/projects", params={"page": 2, "size": 2})).json()["data"]
    assert [p["project_key"] for p in page2["projects"]] == [keys[0]]
    assert (page2["total"], page2["page"], page2["size"]) == (3, 2, 2)
    beyond = (await client.get("/api/v1/projects", params={"page": 9, "size": 2})).json()["data"]
    assert beyond["projects"] == [] and beyond["total"] == 3

    defaults = (await client.get("/api/v1/projects")).json()["data"]
    assert (defaults["page"], defaults["size"]) == (1, 10)


async def test_list_last_activity_from_records(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project("busy")
    await perf.request(project, "a" * 32, start=t(0))
    await perf.request(project, "b" * 32, start=t(90.5))
    item = (await client.get("/api/v1/projects")).json()["data"]["projects"][0]
    assert item["last_activity"] == "2024-08-24T10:01:30Z"
    for key, example in SEED_LIST_ITEM.items():
        assert type(item[key]) is type(example), key


async def test_list_search_and_status_filter(client: Any) -> None:
    await create(client, name="Billing API")
    shop = await create(client, name="shop")
    await client.patch(f"/api/v1/projects/{shop['project_key']}", json={"status": "archived"})
    found = (await client.get("/api/v1/projects", params={"q": "billing"})).json()["data"]
    assert [p["name"] for p in found["projects"]] == ["Billing API"]
    archived = (await client.get("/api/v1/projects", params={"status": "archived"})).json()["data"]
    assert [p["name"] for p in archived["projects"]] == ["shop"]
    assert (await client.get("/api/v1/projects", params={"q": "%"})).json()["data"]["total"] == 0


@pytest.mark.parametrize(
    "params", [{"page": 0}, {"page": -1}, {"size": 0}, {"size": 101}, {"page": "x"}, {"status": "gone"}]
)
async def test_list_rejects_bad_paging(client: Any, params: dict[str, Any]) -> None:
    r = await client.get("/api/v1/projects", params=params)
    assert_error(r, 400, 40001, next(iter(params)))


async def test_get_update_replace(client: Any) -> None:
    created = await create(client)
    key = created["project_key"]
    r = await client.get(f"/api/v1/projects/{key}")
    assert r.status_code == 200
    detail = r.json()["data"]
    assert detail["record_count"] == 0
    assert detail["description"] == SEED_CREATE_REQUEST["description"]
    assert detail["created_at"] == created["created_at"]
    assert ISO_Z.match(detail["updated_at"])

    r = await client.patch(f"/api/v1/projects/{key}", json={"name": "renamed", "status": "paused"})
    assert r.status_code == 200
    patched = r.json()["data"]
    assert (patched["name"], patched["status"], patched["framework"]) == ("renamed", "paused", "flask")
    assert patched["description"] == SEED_CREATE_REQUEST["description"]  # untouched

    r = await client.put(f"/api/v1/projects/{key}", json={"name": "replaced"})
    assert r.status_code == 200
    replaced = r.json()["data"]
    assert (replaced["name"], replaced["status"], replaced["framework"], replaced["description"]) == (
        "replaced",
        "active",
        "",
        "",
    )
    assert (await client.get(f"/api/v1/projects/{key}")).json()["data"]["name"] == "replaced"


async def test_update_validation(client: Any) -> None:
    key = (await create(client))["project_key"]
    assert_error(await client.patch(f"/api/v1/projects/{key}", json={"status": "deleted"}), 400, 40001, "status")
    assert_error(await client.patch(f"/api/v1/projects/{key}", json={"name": " "}), 400, 40001, "name")
    assert_error(await client.put(f"/api/v1/projects/{key}", json={"framework": "flask"}), 400, 40001, "name")


async def test_unknown_project_is_404(client: Any) -> None:
    for r in (
        await client.get("/api/v1/projects/proj_nope"),
        await client.patch("/api/v1/projects/proj_nope", json={"name": "a"}),
        await client.delete("/api/v1/projects/proj_nope"),
        await client.post("/api/v1/projects/proj_nope/rotate-key"),
    ):
        assert_error(r, 404, 40401, "project not found")


async def test_delete_removes_project_and_data(client: Any, perf: Any, db: Any) -> None:
    from pystrument_collector.db.models import PerformanceRecord, Span
    from sqlalchemy import func, select

    doomed = await perf.project("doomed")
    kept = await perf.project("kept")
    await perf.request(doomed, "d" * 32)
    await perf.request(kept, "k" * 32)
    r = await client.delete(f"/api/v1/projects/{doomed.project_key}")
    assert r.status_code == 200
    assert r.json() == {"code": 0, "msg": "success", "data": {"project_key": doomed.project_key, "deleted": True}}
    assert (await client.get(f"/api/v1/projects/{doomed.project_key}")).status_code == 404
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Span)) == 1
        assert await s.scalar(select(func.count()).select_from(PerformanceRecord)) == 1
    assert (await client.get(f"/api/v1/projects/{kept.project_key}")).json()["data"]["record_count"] == 1


async def test_rotate_key_keeps_data_and_retires_old_key(client: Any, perf: Any) -> None:
    project = await perf.project("rotating")
    await perf.request(project, "r" * 32)
    old = project.project_key
    r = await client.post(f"/api/v1/projects/{old}/rotate-key")
    assert r.status_code == 200
    new = r.json()["data"]["project_key"]
    assert new != old and new.startswith("proj_")
    assert r.json()["data"]["record_count"] == 1
    assert (await client.get(f"/api/v1/projects/{old}")).status_code == 404
    records = (await client.get("/api/v1/performance/records", params={"project_key": new})).json()["data"]
    assert records["total"] == 1


async def test_openapi_is_typed_with_stable_operation_ids(client: Any) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    operations = {op["operationId"]: op for methods in schema["paths"].values() for op in methods.values()}
    wanted = {
        "createProject", "listProjects", "getProject", "updateProject", "replaceProject", "deleteProject",
        "rotateProjectKey", "listRecords", "getRecord", "exportSpeedscope", "getStats", "getHotFunctions",
    }  # fmt: skip
    assert wanted <= set(operations)
    components = schema["components"]["schemas"]
    created = components["ProjectCreatedResponse"]["properties"]
    assert set(created) == {"code", "msg", "data"}
    assert created["data"]["$ref"].endswith("/ProjectCreated")
    assert components["ProjectCreated"]["properties"]["created_at"]["format"] == "date-time"
    assert components["RecordItem"]["properties"]["duration"]["type"] == "number"
    page = {p["name"]: p for p in operations["listRecords"]["parameters"]}
    assert page["project_key"]["required"] is True
    assert page["size"]["schema"]["maximum"] == 100


def test_seed_flow_over_loopback_http(live_server: Any) -> None:
    import httpx

    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        created = http.post("/api/v1/projects", json=SEED_CREATE_REQUEST)
        assert created.status_code == 200 and created.json()["code"] == 0
        key = created.json()["data"]["project_key"]
        listed = http.get("/api/v1/projects", params={"page": 1, "size": 10}).json()
        assert [p["project_key"] for p in listed["data"]["projects"]] == [key]
        records = http.get("/api/v1/performance/records", params={"project_key": key, "page": 1, "size": 20})
        assert records.json() == {
            "code": 0,
            "msg": "success",
            "data": {"records": [], "total": 0, "page": 1, "size": 20, "total_estimated": False, "next_cursor": None},
        }
        bad = http.post("/api/v1/projects", json={"description": "no name"})
        assert bad.status_code == 400 and bad.json()["code"] == 40001
