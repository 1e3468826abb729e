"""Secret scrubbing for stored attributes: credentials never reach the database.

Values of sensitive keys (authorization, cookies, passwords, API keys, the project key) become
``[REDACTED]``; in URL-like attributes, token-like query values and URL passwords are replaced.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"

# Matched against the whole attribute key, e.g. ``http.request.header.authorization``.
_SENSITIVE_KEY = re.compile(
    r"authorization|cookie|password|passwd|secret|api[-_.]?key|access[-_.]?token|refresh[-_.]?token"
    r"|auth[-_.]?token|id[-_.]?token|bearer|session[-_.]?id|project[-_.]?key|x-auth",
    re.IGNORECASE,
)
# Query parameter names whose values are credentials.
_SENSITIVE_PARAM = (
    r"(?:[^=&#;?\s]*token|(?:[^=&#;?\s]*[_.\-])?"
    r"(?:api[_-]?key|apikey|key|secret|password|passwd|pwd|sig|signature|auth|jwt|session(?:[_.-]?id)?|sid|credentials?))"
)
_QUERY_VALUE = re.compile(r"((?:^|[?&;])" + _SENSITIVE_PARAM + r"=)[^&#;]*", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:?#]*):[^/@?#]*@")
URL_KEYS = frozenset({"url.query", "url.full", "http.target", "http.url", "url.original", "http.request.uri"})

_key_cache: dict[str, bool] = {}


def is_sensitive_key(key: str) -> bool:
    """Whether an attribute key names a credential (cached: keys repeat across spans)."""
    hit = _key_cache.get(key)
    if hit is None:
        hit = _SENSITIVE_KEY.search(key) is not None
        if len(_key_cache) < 10_000:
            _key_cache[key] = hit
    return hit


def scrub_url(value: str) -> str:
    """Replace token-like query values and a URL's password with ``[REDACTED]``."""
    if "=" in value:
        value = _QUERY_VALUE.sub(r"\1" + REDACTED, value)
    if "@" in value:
        value = _URL_PASSWORD.sub(r"\1:" + REDACTED + "@", value)
    return value


def scrub_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """Redact sensitive values in place and return the dict."""
    for key, value in attrs.items():
        if is_sensitive_key(key):
            attrs[key] = REDACTED
        elif key in URL_KEYS and isinstance(value, str):
            attrs[key] = scrub_url(value)
    return attrs
