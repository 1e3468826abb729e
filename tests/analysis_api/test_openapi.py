"""The OpenAPI schema at /schema: every operation has a stable, unique operationId and declares its auth."""

from __future__ import annotations

from typing import Any

# Clients (the web UI's generated types, scripts) call these by name: renaming one is a breaking change.
API_OPERATIONS = {
    ("GET", "/api/v1/projects"): "listProjects",
    ("POST", "/api/v1/projects"): "createProject",
    ("GET", "/api/v1/projects/{project_key}"): "getProject",
    ("PATCH", "/api/v1/projects/{project_key}"): "updateProject",
    ("PUT", "/api/v1/projects/{project_key}"): "replaceProject",
    ("DELETE", "/api/v1/projects/{project_key}"): "deleteProject",
    ("POST", "/api/v1/projects/{project_key}/rotate-key"): "rotateProjectKey",
    ("GET", "/api/v1/performance/records"): "listRecords",
    ("GET", "/api/v1/performance/records/{trace_id}"): "getRecord",
    ("GET", "/api/v1/performance/records/{trace_id}/speedscope"): "exportSpeedscope",
    ("GET", "/api/v1/performance/stats"): "getStats",
    ("GET", "/api/v1/performance/functions"): "getHotFunctions",
    ("GET", "/api/v1/performance/services"): "listServices",
    ("GET", "/api/v1/performance/routes/differential"): "getRouteDifferential",
    ("GET", "/api/v1/performance/flame"): "getFlameTree",
    ("GET", "/api/v1/performance/function"): "getFunctionView",
    ("POST", "/api/v1/analysis/trigger"): "triggerAnalysis",
    ("GET", "/api/v1/analysis/results/{analysis_id}"): "getAnalysisResult",
    ("GET", "/api/v1/analysis/results"): "listAnalysisResults",
    ("GET", "/api/v1/auth/status"): "getAuthStatus",
    ("POST", "/api/v1/auth/login"): "login",
    ("POST", "/api/v1/auth/logout"): "logout",
}
OPEN_OPERATIONS = {"getAuthStatus", "login", "logout"}
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


async def test_every_operation_has_a_stable_unique_id(client: Any) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    ops = operations(schema)
    ids = [op.get("operationId") for op in ops.values()]
    assert all(ids), [key for key, op in ops.items() if not op.get("operationId")]
    assert len(ids) == len(set(ids)), "duplicate operationId"
    api = {
        key: op["operationId"] for key, op in ops.items() if key[1].startswith("/api/v1/") and "/collect" not in key[1]
    }
    assert api == API_OPERATIONS
    for key, op in ops.items():
        if key in API_OPERATIONS and API_OPERATIONS[key] not in OPEN_OPERATIONS:
            assert op.get("security") == [{"apiToken": []}, {"apiCookie": []}], key
            assert op.get("summary"), key
    assert all("security" not in ops[k] for k, v in API_OPERATIONS.items() if v in OPEN_OPERATIONS)
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiToken"] == {**schemes["apiToken"], "type": "http", "scheme": "bearer"}
    assert (schemes["apiCookie"]["in"], schemes["apiCookie"]["name"]) == ("cookie", "pystrument_token")
    stats_params = {p["name"] for p in ops[("GET", "/api/v1/performance/stats")]["parameters"]}
    assert {"mode", "bucket", "start", "end", "route"} <= stats_params
    assert "cursor" in {p["name"] for p in ops[("GET", "/api/v1/performance/records")]["parameters"]}
