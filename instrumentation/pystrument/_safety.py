"""Never raise into the host: failures inside the SDK are logged once per site and swallowed."""

from __future__ import annotations

import logging
import threading

_logger = logging.getLogger("pystrument")
_seen: set[str] = set()
_lock = threading.Lock()


def log_once(site: str, message: str, *, exc_info: bool = True, level: int = logging.WARNING) -> None:
    """Log ``message`` (with the current exception) the first time ``site`` fails, at debug level after that.
    ``level``: notices that are no failure (the cost budget at work) go at INFO, not to the host's warnings."""
    with _lock:
        first = site not in _seen
        _seen.add(site)
    if first:
        _logger.log(level, message, exc_info=exc_info)
    else:
        _logger.debug(message, exc_info=exc_info)


def reset() -> None:
    """Forget which sites already logged (tests)."""
    with _lock:
        _seen.clear()
