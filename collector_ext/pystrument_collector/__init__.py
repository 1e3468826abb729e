"""pystrument's OTLP/HTTP receiver: decode, authenticate the project, map spans, write to Postgres.

Owns the storage schema and migrations. Install with ``pip install 'pystrument[server]'``.
"""

try:
    import litestar  # noqa: F401
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("pystrument_collector needs the server extra: pip install 'pystrument[server]'") from exc

__all__: list[str] = []
