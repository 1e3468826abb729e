"""Find or create the demo project through the REST API (the seed's ``{code, msg, data}`` envelope)."""

from __future__ import annotations

from typing import Any

import httpx

DEMO_PROJECT = "demo-shop"
PAGE_SIZE = 100
MAX_PAGES = 50


def _data(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400 or not isinstance(body, dict) or body.get("code") != 0:
        request = response.request
        raise RuntimeError(f"{request.method} {request.url.path} failed: {response.status_code} {response.text[:300]}")
    return body["data"]


def find_project(client: httpx.Client, name: str) -> dict[str, Any] | None:
    for page in range(1, MAX_PAGES + 1):
        data = _data(client.get("/api/v1/projects", params={"page": page, "size": PAGE_SIZE}))
        projects: list[dict[str, Any]] = data.get("projects", [])
        for project in projects:
            if project.get("name") == name:
                return project
        if len(projects) < PAGE_SIZE or page * PAGE_SIZE >= int(data.get("total", 0)):
            return None
    return None


def ensure_project(client: httpx.Client, name: str = DEMO_PROJECT) -> tuple[str, bool]:
    """The project key of the project called ``name``, created when missing; and whether it was created."""
    existing = find_project(client, name)
    if existing is not None:
        return str(existing["project_key"]), False
    created = _data(
        client.post(
            "/api/v1/projects",
            json={
                "name": name,
                "description": "pystrument demo: a Flask shop and a FastAPI catalog with deliberate bottlenecks",
                "framework": "flask",
            },
        )
    )
    return str(created["project_key"]), True


def record_total(client: httpx.Client, project_key: str) -> int | None:
    """How many request records the project holds, or None when the records endpoint is not there."""
    response = client.get("/api/v1/performance/records", params={"project_key": project_key, "page": 1, "size": 1})
    if response.status_code != 200:
        return None
    try:
        return int(response.json()["data"]["total"])
    except (ValueError, KeyError, TypeError):
        return None
