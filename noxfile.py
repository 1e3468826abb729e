"""Sessions for pystrument: the README's two commands are ``nox -s serve`` and ``nox -s tests``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
WEB = ROOT / "web"
WEB_DIST = ROOT / "analysis_api" / "pystrument_analysis" / "web_dist"
CHROMIUM = "/usr/bin/chromium"

nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "typecheck", "tests"]

# Supported versions come from pyproject's requires-python; day-to-day sessions use the
# interpreter nox runs on, so the README's commands work with whatever Python 3 the machine has.
PYTHONS = nox.project.python_versions(PYPROJECT, max_version="3.13")


def _install_server(session: nox.Session, *groups: str) -> None:
    """One resolver run for the package and its groups, so OpenTelemetry's lockstep versions stay consistent."""
    session.install("--upgrade", "pip>=25.1")
    session.install("-e", ".[server,demo]", *nox.project.dependency_groups(PYPROJECT, *groups))


def _web_sources_newer_than_build() -> bool:
    index = WEB_DIST / "index.html"
    if not index.exists():
        return True
    built = index.stat().st_mtime
    for path in WEB.rglob("*"):
        if "node_modules" in path.parts or ".svelte-kit" in path.parts:
            continue
        if path.is_file() and path.stat().st_mtime > built:
            return True
    return False


def _build_web(session: nox.Session, force: bool = False) -> None:
    if not force and not _web_sources_newer_than_build():
        session.log("web UI is up to date")
        return
    if shutil.which("npm") is None:
        session.error("building the web UI needs Node.js and npm (Node 20+)")
    with session.chdir(WEB):
        if not (WEB / "node_modules").exists():
            session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
        session.run("npm", "run", "build", external=True)


def _ensure_chromium(session: nox.Session) -> None:
    """The browser tests drive Debian's Chromium; install it where we can (root on Debian)."""
    if Path(CHROMIUM).exists():
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-q", external=True)
        session.run(
            "apt-get", "install", "-y", "-q", "chromium", external=True, env={"DEBIAN_FRONTEND": "noninteractive"}
        )
    else:
        session.warn(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) for the UI tests")


@nox.session(python=None)
def tests(session: nox.Session) -> None:
    """Run the whole suite on real Postgres, real servers and Debian's Chromium."""
    _install_server(session, "test")
    _build_web(session)
    _ensure_chromium(session)
    with session.chdir(WEB):
        session.run("npm", "run", "check", external=True)
        session.run("npm", "test", external=True)
    session.run("python", "-m", "pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHONS, default=False)
def tests_matrix(session: nox.Session) -> None:
    """The Python suite on every supported interpreter present on this machine."""
    _install_server(session, "test")
    session.run("python", "-m", "pytest", "-q", "-m", "not browser", *session.posargs)


@nox.session(python=None)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=None)
def typecheck(session: nox.Session) -> None:
    """mypy on the three packages."""
    _install_server(session, "typecheck")
    session.run("mypy")


@nox.session(python=None, default=False)
def web(session: nox.Session) -> None:
    """Build the Svelte UI into the server package (web_dist)."""
    _build_web(session, force=True)


@nox.session(python=None, default=False)
def serve(session: nox.Session) -> None:
    """Build the UI and run ``pystrument demo``: the server on an embedded Postgres at http://127.0.0.1:8000,
    plus sample Flask and FastAPI apps and bounded traffic, so the dashboard has data at once."""
    _install_server(session)
    _build_web(session)
    # Ctrl-C: give the demo time to stop its apps and the embedded Postgres (nox kills after 0.3 s by default).
    session.run("pystrument", "demo", *session.posargs, interrupt_timeout=60, terminate_timeout=10)


@nox.session(python=None, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: ratios against a baseline run side by side in one process."""
    _install_server(session, "test")
    bench_dir = ROOT / "benchmarks"
    scripts = sorted(bench_dir.glob("bench_*.py")) if bench_dir.exists() else []
    if not scripts:
        session.error("no benchmarks/bench_*.py yet")
    for script in scripts:
        session.run("python", str(script), *session.posargs)


@nox.session(python=None, default=False)
def soak(session: nox.Session) -> None:
    """Sustained ingest at half the measured maximum (default 3 minutes, ``-- --minutes N``): nothing lost."""
    _install_server(session, "test")
    session.run("python", "benchmarks/soak.py", *session.posargs)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run with: python3 -m nox")
