"""pystrument's REST API, AI analysis and web UI server. Install with ``pip install 'pystrument[server]'``."""

try:
    import litestar  # noqa: F401
    import pystrument_collector  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("pystrument_analysis needs the server extra: pip install 'pystrument[server]'") from exc

__all__: list[str] = []
