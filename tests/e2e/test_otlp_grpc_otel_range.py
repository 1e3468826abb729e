"""The supported OpenTelemetry range, tested at both ends (docs/installation.md): a fresh virtual environment
with the lowest (API/SDK/exporters 1.27.0, instrumentation/distro 0.48b0) or the newest OpenTelemetry release,
pystrument installed from this checkout with that venv's own pip, and a script run under
``opentelemetry-instrument`` on the distro's defaults (OTLP/gRPC, three signals) exporting a request span with
function spans to the live server. PyPI must be reachable."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import LiveServer, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LOWEST = {
    "opentelemetry-api": "1.27.0",
    "opentelemetry-sdk": "1.27.0",
    "opentelemetry-proto": "1.27.0",
    "opentelemetry-exporter-otlp": "1.27.0",
    "opentelemetry-exporter-otlp-proto-grpc": "1.27.0",
    "opentelemetry-exporter-otlp-proto-http": "1.27.0",
    "opentelemetry-exporter-otlp-proto-common": "1.27.0",
    "opentelemetry-semantic-conventions": "0.48b0",
    "opentelemetry-instrumentation": "0.48b0",
    "opentelemetry-distro": "0.48b0",
}

SCRIPT = """
import time
from opentelemetry import trace
from opentelemetry.trace import SpanKind

def crunch():
    deadline = time.perf_counter() + 0.06
    while time.perf_counter() < deadline:
        sum(i * i for i in range(500))

def handler():
    crunch()
    time.sleep(0.03)

tracer = trace.get_tracer("range")
with tracer.start_as_current_span("GET /range", kind=SpanKind.SERVER) as span:
    span.set_attribute("http.route", "/range")
    handler()
"""


@pytest.fixture
async def project(db: Any) -> tuple[int, str]:
    from pystrument_collector.db.models import Project
    from pystrument_collector.keys import new_project_key

    key = new_project_key()
    async with db.session() as s:
        row = Project(project_key=key, name="range")
        s.add(row)
        await s.flush()
        return row.id, key


async def spans_of(db: Any) -> list[dict[str, Any]]:
    import stored_spans

    async with db.session() as s:
        return await stored_spans.stored_spans(s)


def _venv_with_pystrument(root: Path, constraints: dict[str, str]) -> dict[str, str]:
    """A venv (its bundled pip, 23.2 on Python 3.11) with pystrument from the checkout; its OpenTelemetry versions."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    args = [str(ROOT)]
    if constraints:
        pins = root / "constraints.txt"
        pins.write_text("".join(f"{name}=={version}\n" for name, version in constraints.items()))
        args += ["-c", str(pins)]
    done = subprocess.run([*pip, "install", *args], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The plain install built the sampler's compiled helper from source (issue #14), with this machine's compiler.
    helper = [str(venv / "bin" / "python"), "-c", "import pystrument._native as n; print(n.__file__)"]
    built = subprocess.run(helper, capture_output=True, text=True, timeout=60)
    assert built.returncode == 0 and built.stdout.strip().endswith(".so"), built.stderr[-2000:]
    listed = subprocess.run([*pip[:-1], "list", "--format=json"], capture_output=True, text=True, check=True)
    return {p["name"].lower(): p["version"] for p in json.loads(listed.stdout) if "opentelemetry" in p["name"]}


@pytest.mark.parametrize("end", ["lowest", "newest"])
async def test_sdk_exports_over_grpc_at_both_ends(end: str, settings: Any, db: Any, project, tmp_path: Path) -> None:
    versions = _venv_with_pystrument(tmp_path, LOWEST if end == "lowest" else {})
    print(f"{end}: {versions}")
    if end == "lowest":
        assert versions["opentelemetry-sdk"] == "1.27.0" and versions["opentelemetry-distro"] == "0.48b0"
    else:
        assert tuple(int(x) for x in versions["opentelemetry-sdk"].split(".")[:2]) >= (1, 45)
    _, key = project
    port = free_port()
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_", "VIRTUAL_ENV"))}
    env.update(
        OTEL_SERVICE_NAME=f"range-{end}",
        OTEL_EXPORTER_OTLP_HEADERS=f"x-project-key={key}",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        PYSTRUMENT_PROFILE_RATE="1",
        PYSTRUMENT_SLOW_MS="0",
    )
    bin_dir = tmp_path / "venv" / "bin"
    with LiveServer(dataclasses.replace(settings, grpc_port=port)):
        done = subprocess.run(
            [str(bin_dir / "opentelemetry-instrument"), str(bin_dir / "python"), str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stored = await spans_of(db)
            if any(s["synthetic"] for s in stored):
                break
            time.sleep(0.3)
    assert "Failed to export" not in output and "Traceback" not in output, output
    names = {s["name"] for s in stored}
    assert "GET /range" in names, names
    functions = [s for s in stored if s["synthetic"]]
    assert any(s["name"].endswith("crunch") for s in functions), sorted(names)
    assert {s["service_name"] for s in stored} == {f"range-{end}"}
