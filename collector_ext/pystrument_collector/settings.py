"""Server settings: explicit arguments beat ``PYSTRUMENT_*`` environment variables, which beat defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pystrument_collector.retention import DEFAULT_RETENTION_DAYS, retention_days_from_env

ENV_DATABASE_URL = "PYSTRUMENT_DATABASE_URL"
ENV_DATA_DIR = "PYSTRUMENT_DATA_DIR"
ENV_HOST = "PYSTRUMENT_HOST"
ENV_PORT = "PYSTRUMENT_PORT"
ENV_CORS_ORIGINS = "PYSTRUMENT_CORS_ORIGINS"
ENV_GRPC_PORT = "PYSTRUMENT_GRPC_PORT"
ENV_ALLOWED_HOSTS = "PYSTRUMENT_ALLOWED_HOSTS"
ENV_WORKERS = "PYSTRUMENT_WORKERS"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_GRPC_PORT = 4317  # OTLP/gRPC's registered port: what every OpenTelemetry SDK exports to by default
DRIVER = "postgresql+asyncpg"
URL_EXAMPLE = f"{DRIVER}://user:password@host:5432/dbname"


def workers_from_env() -> int:
    """``PYSTRUMENT_WORKERS``: server processes sharing the port (default 1)."""
    text = os.environ.get(ENV_WORKERS, "").strip()
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{ENV_WORKERS}={text!r} must be a positive whole number of processes, e.g. 2")
    return int(text)


def normalize_database_url(url: str | None) -> str | None:
    """A plain ``postgres://`` or ``postgresql://`` URL (libpq's form) gets the asyncpg driver the server uses."""
    if url is None:
        return None
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return f"{DRIVER}://" + url[len(scheme) :]
    return url


def default_data_dir() -> Path:
    """Where the embedded Postgres lives when no ``--data-dir`` or ``PYSTRUMENT_DATA_DIR`` is given."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pystrument"


@dataclass(frozen=True)
class Settings:
    """Everything the receiver and the API need to start; built once, passed to ``create_app``."""

    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    cors_origins: tuple[str, ...] = ()
    # PYSTRUMENT_ALLOWED_HOSTS: the Host names served (``*.example.com`` patterns, ``*`` for any); empty: the
    # loopback names plus the bind address (see pystrument_analysis.api.shield)
    allowed_hosts: tuple[str, ...] = ()
    retention_days: int = DEFAULT_RETENTION_DAYS  # PYSTRUMENT_RETENTION_DAYS; 0 keeps data forever
    # OTLP/gRPC port on ``host``; 0 is off. Off here so apps built in code (tests, embedding) take no fixed port;
    # ``from_env`` (the CLI) defaults to 4317. ``grpc_required``: a port that cannot be bound fails start-up
    # (False for the default port: the server warns and serves HTTP).
    grpc_port: int = 0
    grpc_required: bool = True

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read ``PYSTRUMENT_*``; keyword arguments that are not None win."""
        env = os.environ
        port_text = env.get(ENV_PORT, str(DEFAULT_PORT))
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"{ENV_PORT}={port_text!r} is not a port number; set it to e.g. 8000") from None
        grpc_text = env.get(ENV_GRPC_PORT, "").strip()
        try:
            grpc_port = int(grpc_text) if grpc_text else None
        except ValueError:
            raise ValueError(
                f"{ENV_GRPC_PORT}={grpc_text!r} is not a port number; set it to e.g. 4317, or 0 to turn gRPC off"
            ) from None
        if overrides.get("grpc_port") is not None:
            grpc_port = overrides.pop("grpc_port")  # type: ignore[assignment]
        values: dict[str, object] = {
            "database_url": normalize_database_url(env.get(ENV_DATABASE_URL) or None),
            "data_dir": Path(env[ENV_DATA_DIR]) if env.get(ENV_DATA_DIR) else default_data_dir(),
            "host": env.get(ENV_HOST, DEFAULT_HOST),
            "port": port,
            "cors_origins": tuple(o.strip() for o in env.get(ENV_CORS_ORIGINS, "").split(",") if o.strip()),
            "allowed_hosts": tuple(h.strip() for h in env.get(ENV_ALLOWED_HOSTS, "").split(",") if h.strip()),
            "retention_days": retention_days_from_env(),
            "grpc_port": DEFAULT_GRPC_PORT if grpc_port is None else grpc_port,
            "grpc_required": grpc_port is not None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["database_url"], str):
            values["database_url"] = normalize_database_url(values["database_url"])
        if isinstance(values["data_dir"], str):
            values["data_dir"] = Path(values["data_dir"])
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ``ValueError`` naming the fix for a setting that cannot work."""
        if self.database_url is not None and not self.database_url.startswith(f"{DRIVER}://"):
            scheme = self.database_url.partition("://")[0] if "://" in self.database_url else self.database_url[:20]
            raise ValueError(
                f"{ENV_DATABASE_URL} must be a Postgres URL for the asyncpg driver, such as {URL_EXAMPLE} "
                f"(postgresql:// is accepted too), not {scheme!r}"
            )
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range; use 1-65535")
        if not 0 <= self.grpc_port < 65536:
            raise ValueError(f"gRPC port {self.grpc_port} is out of range; use 1-65535, or 0 to turn gRPC off")
        if self.grpc_port and self.grpc_port == self.port:
            raise ValueError(f"the gRPC port and the HTTP port are both {self.port}; give --grpc-port another port")
        if self.retention_days < 0:
            raise ValueError(f"retention_days={self.retention_days} is negative; use 0 to keep data forever")
