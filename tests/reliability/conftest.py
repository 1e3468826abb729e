"""Reliability fixtures: projects made in the database, real OTLP payloads, and a ``pystrument serve`` subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest


@pytest.fixture
def make_project(db: Any) -> Callable[..., Awaitable[tuple[int, str]]]:
    """Create a project row; returns ``(id, key)``."""
    from pystrument_collector.db.models import Project
    from pystrument_collector.keys import new_project_key

    async def make(name: str = "shop") -> tuple[int, str]:
        key = new_project_key()
        async with db.session() as s:
            project = Project(project_key=key, name=name)
            s.add(project)
            await s.flush()
            return project.id, key

    return make


@pytest.fixture
async def project(make_project: Callable[..., Awaitable[tuple[int, str]]]) -> tuple[int, str]:
    return await make_project()


@pytest.fixture
def count_spans(db: Any) -> Callable[..., Awaitable[int]]:
    """Spans stored (optionally for one project): rows of ``spans`` and function spans in ``function_spans`` packs."""
    from sqlalchemy import text

    async def count(project_id: int | None = None) -> int:
        where = "" if project_id is None else " WHERE project_id = :p"
        async with db.session() as s:
            rows = (await s.execute(text("SELECT count(*) FROM spans" + where), {"p": project_id})).scalar_one()
            packed = await s.execute(text("SELECT coalesce(sum(n), 0) FROM function_spans" + where), {"p": project_id})
            return int(rows) + int(packed.scalar_one())

    return count


def make_spans(n: int, *, service: str = "shop-api", attrs: dict[str, Any] | None = None) -> list[Any]:
    """``n`` real spans (one SERVER request span, the rest INTERNAL children) from a real TracerProvider."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("reliability")
    with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER) as req:
        req.set_attributes(
            {"http.request.method": "GET", "http.route": "/items/{id}", "url.path": "/items/1", **(attrs or {})}
        )
        for i in range(n - 1):
            with tracer.start_as_current_span(f"app.views.step_{i}") as fn:
                fn.set_attributes({"pystrument.synthetic": True, "code.function.name": f"step_{i}"})
    provider.shutdown()
    return list(memory.get_finished_spans())


def proto_body(spans: list[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return bytes(encode_spans(spans).SerializeToString())


@pytest.fixture(scope="session")
def otlp() -> SimpleNamespace:
    """Payload builders shared by the reliability tests (``--import-mode=importlib`` has no sibling imports)."""
    return SimpleNamespace(make_spans=make_spans, proto_body=proto_body)


class ServeProcess:
    """``pystrument serve`` as a real subprocess on a free port (SIGTERM-able, RSS-measurable)."""

    def __init__(self, database_url: str, port: int, data_dir: Path, **env: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = data_dir / f"serve-{port}.log"
        full_env = {
            **os.environ,
            "PYSTRUMENT_DATABASE_URL": database_url,
            "PYSTRUMENT_DATA_DIR": str(data_dir),
            "PYSTRUMENT_PORT": str(port),
            "PYSTRUMENT_HOST": "127.0.0.1",
            **env,
        }
        cmd = [sys.executable, "-c", "import sys; from pystrument_analysis.cli import main; sys.exit(main())", "serve"]
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout: float = 60) -> ServeProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pystrument serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"pystrument serve not healthy in {timeout} s: {self.log.read_text()[-2000:]}")

    def peak_rss_kib(self) -> int:
        """VmHWM of the server process: its peak resident set since it started."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM in /proc status")

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log_file.close()
        return int(self.proc.returncode)


@pytest.fixture
def serve(database_url: str, tmp_path: Path, get_free_port: Callable[[], int]) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``pystrument serve`` subprocesses on the test's database; all are stopped afterwards."""
    started: list[ServeProcess] = []

    def start(**env: str) -> ServeProcess:
        server = ServeProcess(database_url, get_free_port(), tmp_path, **env)
        started.append(server)
        return server.wait_healthy()

    yield start
    for server in started:
        server.terminate()
