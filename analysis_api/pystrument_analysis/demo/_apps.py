"""The demo's two sample apps, each started under ``opentelemetry-instrument`` as a real subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import httpx

from pystrument_analysis.demo._net import free_port

SAMPLE_APPS = "sample_apps"
REQUIRED_MODULES = {
    "flask": "flask",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "opentelemetry.instrumentation.flask": "opentelemetry-instrumentation-flask",
    "opentelemetry.instrumentation.fastapi": "opentelemetry-instrumentation-fastapi",
    "opentelemetry.instrumentation.sqlite3": "opentelemetry-instrumentation-sqlite3",
}


@dataclass
class SampleApp:
    """One sample app: which script, under which OTel service name, and its process once started."""

    service: str
    framework: str
    script: str
    extra_args: list[str] = field(default_factory=list)
    prepare_args: list[str] | None = None  # run once without instrumentation first (e.g. seed a database)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def missing_requirements() -> list[str]:
    """Distribution names the demo needs but this environment lacks."""
    import importlib.util

    missing = []
    for module, dist in REQUIRED_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(dist)
    if opentelemetry_instrument() is None:
        missing.append("opentelemetry-instrumentation (its opentelemetry-instrument script)")
    return missing


def opentelemetry_instrument() -> str | None:
    """The ``opentelemetry-instrument`` script of this interpreter's environment."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "opentelemetry-instrument"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("opentelemetry-instrument")


def install_sample_apps(target: Path) -> Path:
    """Copy the sample apps out of the package, so their code sits outside site-packages like a user's app."""
    target.mkdir(parents=True, exist_ok=True)
    source = resources.files("pystrument_analysis.demo").joinpath(SAMPLE_APPS)
    for name in ("shop_web.py", "catalog_api.py"):
        (target / name).write_bytes(source.joinpath(name).read_bytes())
    (target / "templates").mkdir(exist_ok=True)
    for name in ("sales_report.html",):
        (target / "templates" / name).write_bytes(source.joinpath("templates", name).read_bytes())
    return target


def default_apps(work_dir: Path) -> list[SampleApp]:
    return [
        SampleApp(
            "shop-web",
            "Flask",
            "shop_web.py",
            ["--db", str(work_dir / "shop.db")],
            prepare_args=["--db", str(work_dir / "shop.db"), "--seed-only"],
        ),
        SampleApp("catalog-api", "FastAPI", "catalog_api.py"),
    ]


def app_environment(service: str, server_url: str, project_key: str) -> dict[str, str]:
    """The standard OTel variables that point an app at pystrument, plus profiling of every request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=server_url.rstrip("/"),
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_HEADERS=f"x-project-key={project_key}",
        OTEL_BSP_SCHEDULE_DELAY="500",
        OTEL_PYTHON_EXCLUDED_URLS="health",  # readiness probes are not traffic
        PYSTRUMENT_PROFILE_RATE="1",  # profile every request ...
        PYSTRUMENT_KEEP_RATE="1",  # ... and keep every request's function spans, fast ones too,
        PYSTRUMENT_SPAN_BUDGET="1",  # ... however much CPU building them takes
        PYTHONUNBUFFERED="1",
    )
    return env


class SampleApps:
    """Starts the sample apps, waits until they answer, and stops them (SIGINT, then SIGKILL)."""

    def __init__(self, work_dir: Path, server_url: str, project_key: str) -> None:
        self.work_dir = work_dir
        self.server_url = server_url
        self.project_key = project_key
        self.apps = default_apps(work_dir)

    def start(self, timeout: float = 60.0) -> list[SampleApp]:
        app_dir = install_sample_apps(self.work_dir / "apps")
        log_dir = self.work_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        instrument = opentelemetry_instrument()
        if instrument is None:
            raise RuntimeError("opentelemetry-instrument was not found: pip install 'pystrument[demo]'")
        for app in self.apps:
            if app.prepare_args is not None:
                # Outside the instrumentation, so seeding queries do not show up as traffic.
                prepared = subprocess.run(
                    [sys.executable, str(app_dir / app.script), *app.prepare_args],
                    cwd=app_dir,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                if prepared.returncode != 0:
                    raise RuntimeError(f"preparing {app.service} failed:\n{prepared.stderr[-2000:]}")
            app.port = free_port()
            app.log_path = log_dir / f"{app.service}.log"
            with app.log_path.open("wb") as log:
                app.process = subprocess.Popen(
                    [instrument, sys.executable, str(app_dir / app.script), "--port", str(app.port), *app.extra_args],
                    cwd=app_dir,
                    env=app_environment(app.service, self.server_url, self.project_key),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        for app in self.apps:
            self._wait_ready(app, timeout)
        return self.apps

    def _wait_ready(self, app: SampleApp, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert app.process is not None
        while time.monotonic() < deadline:
            if app.process.poll() is not None:
                raise RuntimeError(f"{app.service} exited with {app.process.returncode}:\n{self.log_tail(app)}")
            try:
                if httpx.get(app.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{app.service} did not answer on {app.url} within {timeout:.0f} s:\n{self.log_tail(app)}")

    @staticmethod
    def log_tail(app: SampleApp, lines: int = 20) -> str:
        if app.log_path is None or not app.log_path.exists():
            return ""
        return "\n".join(app.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 8.0) -> None:
        """SIGINT lets each app flush its last spans; whatever is still running after ``timeout`` is killed."""
        running = [a.process for a in self.apps if a.process is not None and a.process.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
