"""An embedded Postgres cluster in the data directory, for ``serve`` with no database URL.

Uses the ``pgserver`` package's own Postgres binaries; when run as root, pgserver creates a
system user to own the cluster (Postgres refuses to run as root).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Start (or join) the cluster in ``data_dir/pg``; stop it when the last user leaves."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = Path(data_dir).expanduser().resolve() / "pg"
        self._server: Any = None

    def start(self) -> str:
        """Start the cluster and return an asyncpg SQLAlchemy URL for it."""
        try:
            import pgserver
        except ImportError as exc:  # pragma: no cover
            raise RuntimeError(
                "no PYSTRUMENT_DATABASE_URL and no embedded Postgres: pip install 'pystrument[server]' "
                "or set PYSTRUMENT_DATABASE_URL=postgresql+asyncpg://..."
            ) from exc
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        logger.info("starting embedded Postgres in %s", self.pgdata)
        from pgserver.postgres_server import PostgresServer

        with PostgresServer._lock:  # pgserver's own inter-process lock around its list of users
            forget_dead_users(self.pgdata / HANDLES_FILE)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        return to_asyncpg_url(self._server.get_uri())

    def stop(self) -> None:
        """Release the cluster; pgserver stops it once no other process uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


HANDLES_FILE = ".handle_pids.json"


def forget_dead_users(path: Path) -> list[int]:
    """Drop processes that died without releasing the cluster from pgserver's list of its users.

    pgserver stops Postgres when the last process on that list releases it; a killed ``serve`` stays on the
    list, and Postgres would then outlive every later clean shutdown. Returns the pids removed.
    """
    try:
        pids = [int(pid) for pid in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    dead = [pid for pid in pids if not _alive(pid)]
    if dead:
        path.write_text(json.dumps([pid for pid in pids if pid not in dead]))
        logger.info("embedded Postgres: forgot users that exited without releasing it: %s", dead)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def to_asyncpg_url(uri: str) -> str:
    """Turn pgserver's ``postgresql://user:@/db?host=/socket/dir`` into a SQLAlchemy asyncpg URL."""
    parsed = urlparse(uri)
    host = parse_qs(parsed.query).get("host", [""])[0]
    user = parsed.username or "postgres"
    db = parsed.path.lstrip("/") or "postgres"
    if host.startswith("/"):
        return f"postgresql+asyncpg://{user}@/{db}?host={host}"
    port = f":{parsed.port}" if parsed.port else ""
    return f"postgresql+asyncpg://{user}@{parsed.hostname}{port}/{db}"
