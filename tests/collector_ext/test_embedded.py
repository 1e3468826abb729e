"""The embedded Postgres stops with the last ``serve`` that uses it, even after an earlier one was killed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
from pystrument_collector.db.embedded import HANDLES_FILE, EmbeddedPostgres, forget_dead_users

STARTER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pystrument_collector.db.embedded import EmbeddedPostgres
    EmbeddedPostgres(Path(sys.argv[1])).start()
    print("started", flush=True)
    time.sleep(600)
    """
)


def _postmaster(pgdata: Path) -> psutil.Process | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return psutil.Process(pid) if psutil.pid_exists(pid) else None


def test_forget_dead_users_keeps_live_ones(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / HANDLES_FILE
    path.write_text(f"[{dead.pid}, {psutil.Process().pid}]")
    assert forget_dead_users(path) == [dead.pid]
    assert path.read_text() == f"[{psutil.Process().pid}]"
    assert forget_dead_users(tmp_path / "missing.json") == []


def test_postgres_stops_after_a_killed_user() -> None:
    # Outside pytest's basetemp, whose 0700 modes lock out the cluster's own system user when run as root.
    data_dir = Path(tempfile.mkdtemp(prefix="pystrument-embedded-"))
    pgdata = data_dir / "pg"
    try:
        killed = subprocess.Popen([sys.executable, "-c", STARTER, str(data_dir)], stdout=subprocess.PIPE, text=True)
        assert killed.stdout is not None and killed.stdout.readline().strip() == "started"
        killed.send_signal(signal.SIGKILL)  # dies without releasing the cluster
        killed.wait()
        postmaster = _postmaster(pgdata)
        assert postmaster is not None and postmaster.is_running()

        embedded = EmbeddedPostgres(data_dir)
        embedded.start()  # joins the running cluster
        assert _postmaster(pgdata) is not None
        embedded.stop()
        deadline = time.monotonic() + 30
        while postmaster.is_running() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not postmaster.is_running(), "Postgres outlived its last user"
    finally:
        leftover = _postmaster(pgdata)
        if leftover is not None:
            leftover.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
