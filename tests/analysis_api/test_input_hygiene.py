"""Inputs Postgres cannot take are 400s with a clear message, never 500s (found by schemathesis)."""

from __future__ import annotations

from typing import Any

import pytest


def assert_400(r: Any, *words: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == 40001 and body["data"] is None
    for word in words:
        assert word in body["msg"], body["msg"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a\x00b"},
        {"name": "ok", "description": "x\x00"},
        {"name": "ok", "framework": "\x00flask"},
    ],
)
async def test_nul_in_a_project_body(client: Any, body: dict[str, Any]) -> None:
    assert_400(await client.post("/api/v1/projects", json=body), "NUL")
    created = (await client.post("/api/v1/projects", json={"name": "fine"})).json()["data"]["project_key"]
    assert_400(await client.patch(f"/api/v1/projects/{created}", json=body), "NUL")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/performance/records?project_key=proj_%00",
        "/api/v1/performance/records?project_key=proj_x&path=%00",
        "/api/v1/performance/stats?project_key=proj_x&route=/a%00b",
        "/api/v1/projects/proj_%00",
        "/api/v1/performance/records/ab%00cd?project_key=proj_x",
    ],
)
async def test_nul_in_a_query_or_path(client: Any, path: str) -> None:
    assert_400(await client.get(path), "NUL character")


async def test_pages_beyond_the_limit(client: Any, perf: Any) -> None:
    project = await perf.project()
    for path, params in (
        ("/api/v1/projects", {}),
        ("/api/v1/performance/records", {"project_key": project.project_key}),
        ("/api/v1/analysis/results", {"project_key": project.project_key}),
    ):
        assert_400(await client.get(path, params={**params, "page": 10**19}), "page")
        assert (await client.get(path, params={**params, "page": 1_000_000})).status_code == 200


async def test_stats_mode_is_checked(client: Any, perf: Any) -> None:
    project = await perf.project()
    r = await client.get("/api/v1/performance/stats", params={"project_key": project.project_key, "mode": "fast"})
    assert_400(r, "mode")
