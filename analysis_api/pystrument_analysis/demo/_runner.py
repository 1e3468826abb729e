"""``pystrument demo``: server, demo project, two instrumented sample apps, bounded traffic, then serve."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from pystrument_collector.settings import Settings

from pystrument_analysis.api.access import client_headers
from pystrument_analysis.demo._apps import SampleApps, missing_requirements
from pystrument_analysis.demo._net import port_in_use
from pystrument_analysis.demo._project import DEMO_PROJECT, ensure_project, find_project, record_total
from pystrument_analysis.demo._traffic import Progress, drive

DEMO_HOST = "127.0.0.1"
SERVER_START_TIMEOUT = 180.0  # a first run initialises the embedded Postgres cluster
RECORDS_WAIT = 20.0


@dataclass(frozen=True)
class DemoOptions:
    """What ``pystrument demo`` was asked to do."""

    requests: int = 300
    duration: float = 60.0
    server_url: str | None = None  # use a running pystrument instead of starting one

    def __post_init__(self) -> None:
        if self.requests < 0:
            raise ValueError(f"--requests {self.requests}: give 0 (no traffic) or more")
        if self.duration <= 0:
            raise ValueError(f"--duration {self.duration}: give a number of seconds above 0")


def say(message: str) -> None:
    """A line of narration on stdout; a closed stdout (terminal gone, pipe closed) must not stop the shutdown."""
    with contextlib.suppress(OSError):
        print(message, flush=True)


class _Stop:
    """SIGINT/SIGTERM/SIGHUP set a flag that every wait checks, so shutdown runs in order (apps, then server).

    SIGHUP matters: closing the terminal must not orphan the apps and the embedded Postgres.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        signals = [signal.SIGINT, signal.SIGTERM]
        if hasattr(signal, "SIGHUP"):
            signals.append(signal.SIGHUP)
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _: FrameType | None) -> None:
        self.event.set()

    def __call__(self) -> bool:
        return self.event.is_set()


def run_demo(settings: Settings, options: DemoOptions) -> int:
    """Run the demo until SIGINT/SIGTERM; returns the process exit code."""
    missing = missing_requirements()
    if missing:
        print(
            "pystrument demo needs the demo extra: pip install 'pystrument[demo]'\n  missing: " + ", ".join(missing),
            file=sys.stderr,
        )
        return 2
    # The demo narrates on stdout; INFO logs (each HTTP call, each pg_ctl run, each migration step) would bury it.
    for name in ("", "httpx", "pgserver", "alembic", "pystrument_analysis", "pystrument_collector"):
        logging.getLogger(name).setLevel(logging.WARNING)
    stop = _Stop()
    stop.install()
    try:
        return _run(settings, options, stop)
    except InterruptedError:
        return 0
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"pystrument demo: {exc}", file=sys.stderr)
        return 1
    finally:
        stop.restore()


def _run(settings: Settings, options: DemoOptions, stop: _Stop) -> int:
    from pystrument_analysis.demo._server import EmbeddedServer, wait_healthy

    settings = dataclasses.replace(settings, host=DEMO_HOST)
    work_dir = Path(settings.data_dir).expanduser().resolve() / "demo"
    server: EmbeddedServer | None = None
    apps: SampleApps | None = None
    try:
        if options.server_url:
            url = options.server_url.rstrip("/")
            say(f"using the pystrument server at {url}")
            wait_healthy(url, SERVER_START_TIMEOUT, stop)
        else:
            if port_in_use(settings.host, settings.port):
                raise RuntimeError(
                    f"port {settings.port} on {settings.host} is in use: pass --port N, or "
                    f"--server http://{settings.host}:{settings.port} to use a pystrument already running there"
                )
            where = "PYSTRUMENT_DATABASE_URL" if settings.database_url else f"embedded Postgres in {settings.data_dir}"
            say(f"starting pystrument on http://{settings.host}:{settings.port} ({where}) ...")
            server = EmbeddedServer(settings)
            server.start()
            url = server.url
            wait_healthy(url, SERVER_START_TIMEOUT, stop, server.alive)
        headers = client_headers()
        with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
            project_key, created = ensure_project(client)
            say(f"project {DEMO_PROJECT} ({'created' if created else 'reused'}): key {project_key}")
            found = find_project(client, DEMO_PROJECT)
            # The UI addresses a project by its id: a link with the key would stop working once the key is rotated.
            page = f"/projects/{found['id']}" if found and found.get("id") is not None else f"/projects/{project_key}"
            apps = SampleApps(work_dir, url, project_key)
            for app in apps.start():
                assert app.process is not None
                say(f"{app.service} ({app.framework}) on {app.url}  pid {app.process.pid}  log {app.log_path}")
            if options.requests > 0 and not stop():
                _traffic(client, apps, project_key, options, stop)
        if stop():
            raise InterruptedError("stopped during start-up")
        say("")
        say(f"pystrument demo is ready: open {url}{page}  (project {DEMO_PROJECT}, key {project_key})")
        if headers:
            say("the API needs PYSTRUMENT_API_TOKEN: open the link once with ?token=<your token> appended")
        say("Press Ctrl-C to stop the apps" + (" and the server." if server is not None else "."))
        while not stop.event.wait(0.5):
            if server is not None and not server.alive():
                raise RuntimeError("the pystrument server stopped unexpectedly")
        say("stopping ...")
        return 0
    finally:
        if apps is not None:
            apps.stop()
        if server is not None:
            server.stop()
        if stop():
            say("stopped")


def _traffic(client: httpx.Client, apps: SampleApps, project_key: str, options: DemoOptions, stop: _Stop) -> None:
    before = record_total(client, project_key) or 0
    say(f"sending {options.requests} requests (at most {options.duration:.0f} s) ...")
    result = drive(
        {app.service: app.url for app in apps.apps},
        options.requests,
        options.duration,
        stop,
        Progress(options.requests),
    )
    per_service = ", ".join(f"{svc} {n}" for svc, n in sorted(result.by_service.items()))
    say(f"sent {result.sent} requests in {result.elapsed:.1f} s ({per_service}); {result.failed} failed")
    deadline = time.monotonic() + RECORDS_WAIT
    stored = 0
    while time.monotonic() < deadline and not stop():
        total = record_total(client, project_key)
        if total is None:
            break
        stored = total - before
        if stored >= result.sent:
            break
        stop.event.wait(0.5)
    say(f"traffic done: {stored} new request records stored")
