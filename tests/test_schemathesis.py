"""Schemathesis over the served OpenAPI schema: over 1,000 generated requests, not one 5xx, and every answer
as documented (status code, content type and body schema: ``not_a_server_error``, ``status_code_conformance``,
``content_type_conformance``, ``response_schema_conformance``).

The real app (with an API token, so the guard runs on every request) serves on a loopback port over a
fresh database seeded through its own API. For every operation in ``/schema/openapi.json`` Hypothesis
generates schema-valid (positive) and schema-violating (negative) requests; about half of the read requests
are pointed at the seeded project and trace, so the handlers get past "project not found" into their
queries. Generation is derandomized: a failure reproduces on the next run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

TOKEN = "schemathesis-token-0123456789abcdef"
MIN_CASES = 1000
EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 30}
MUTATING = {"PATCH", "PUT", "DELETE", "POST"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class Server:
    """``create_app(settings, api_token=TOKEN)`` under uvicorn on a free loopback port."""

    def __init__(self, app_settings: Any, port: int) -> None:
        import uvicorn
        from pystrument_analysis.app import create_app

        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(app_settings, api_token=TOKEN),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def server(database_url: str, tmp_path: Any, get_free_port: Any) -> Iterator[Server]:
    from pystrument_collector.settings import Settings

    with Server(Settings(database_url=database_url, data_dir=tmp_path, retention_days=0), get_free_port()) as s:
        yield s


def seed(http: httpx.Client) -> dict[str, str]:
    """A project with a few requests (with function spans) stored through the seed's collect endpoint."""
    created = http.post("/api/v1/projects", json={"name": "fuzzed", "framework": "flask"})
    assert created.status_code == 200, created.text
    key = created.json()["data"]["project_key"]
    trace = "0af7651916cd43dd8448eb211c803100"
    for i in range(6):
        report = {
            "trace_id": trace if i == 0 else f"{i:032x}",
            "request_info": {"method": "GET", "path": f"/users/{i}", "status_code": 500 if i == 5 else 200},
            "performance_metrics": {"total_duration": 0.1 * (i + 1), "cpu_time": 0.01},
            "function_calls": [
                {"function": "view", "module": "app", "duration": 0.09 * (i + 1), "children": [
                    {"function": "query", "module": "app.db", "duration": 0.05 * (i + 1), "start_time": 0.01},
                ]},
            ],
        }  # fmt: skip
        r = http.post("/api/v1/performance/collect", json=report, headers={"X-Project-Key": key})
        assert r.status_code == 200, r.text
    return {"project_key": key, "trace_id": trace, "route": "/users/0"}


def point_at_seed(case: Any, known: dict[str, str], http: httpx.Client) -> None:
    """Use the seeded project and trace instead of generated ones (a fresh project for mutations)."""
    method = case.operation.method.upper()
    if method in MUTATING and "project_key" in case.path_parameters:
        fresh = http.post("/api/v1/projects", json={"name": "to change"}).json()["data"]["project_key"]
        case.path_parameters["project_key"] = fresh
        return
    if method in MUTATING:
        if isinstance(case.body, dict) and "trace_id" in case.body:
            case.body["trace_id"], case.body["project_key"] = known["trace_id"], known["project_key"]
        return
    for params in (case.path_parameters, case.query):
        if isinstance(params, dict):
            for name in ("project_key", "trace_id", "route"):
                if name in params:
                    params[name] = known[name]


class Errors(logging.Handler):
    """Collects the server's logged exceptions (``api.errors`` logs every 500 with its traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(self.format(record))


def _bound(call: Any) -> Any:
    """A two-argument function for ``@given`` (which refuses defaults) that calls ``call``."""

    def example(case: Any, seeded: bool) -> None:
        call(case, seeded)

    return example


def test_no_generated_request_gets_a_5xx(server: Server) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    errors = Errors()
    logging.getLogger("pystrument_analysis").addHandler(errors)
    try:
        run_all(server, auth, errors)
    finally:
        logging.getLogger("pystrument_analysis").removeHandler(errors)


def run_all(server: Server, auth: dict[str, str], errors: Errors) -> None:
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
        known = seed(http)
        schema = schemathesis.openapi.from_url(server.url + "/schema/openapi.json")
        session = requests.Session()
        counts: Counter[str] = Counter()
        failures: list[str] = []
        started = time.monotonic()
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode, examples in EXAMPLES.items():
                label = f"{mode} {operation.label}"

                def call(case: Any, seeded: bool, label: str = label) -> None:
                    if seeded:
                        point_at_seed(case, known, http)
                    response = case.call(base_url=server.url, session=session, headers=auth, timeout=30)
                    counts[label] += 1
                    try:
                        case.validate_response(response, checks=CHECKS)
                    except Exception as exc:  # schemathesis' FailureGroup: one entry per failed check
                        checks = getattr(exc, "exceptions", [exc])
                        why = "; ".join(f"{type(c).__name__}: {str(c).strip()[:200]}" for c in checks)
                        failures.append(
                            f"{label}: {case.as_curl_command()} -> {response.status_code} {response.text[:200]}\n"
                            f"    {why}"
                        )

                run = given(case=operation.as_strategy(generation_mode=mode), seeded=st.booleans())(
                    settings(
                        max_examples=examples,
                        deadline=None,
                        database=None,
                        derandomize=True,
                        phases=[Phase.explicit, Phase.generate],
                        suppress_health_check=list(HealthCheck),
                    )(_bound(call))
                )
                with contextlib.suppress(Unsatisfiable):  # e.g. nothing to violate in an operation without parameters
                    run()
        elapsed = time.monotonic() - started
    print(f"\nschemathesis: {sum(counts.values())} requests over {len(counts)} operations in {elapsed:.1f} s")
    assert not failures, "\n".join(failures[:20] + errors.seen[:3])
    assert sum(counts.values()) >= MIN_CASES, counts
    exercised = {label.split(" ", 1)[1] for label in counts}
    assert exercised == {op.ok().label for op in schema.get_all_operations()}  # every operation ran
