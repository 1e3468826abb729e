"""Secret scrubbing: credentials never reach the database. The one list of what counts as a secret.

Every ingest path calls this module (OTLP/HTTP protobuf and JSON, OTLP/gRPC, logs, the seed's ``/collect``):
attributes (nested maps and lists included), span and event names, status and exception messages, log bodies,
URL paths and queries. Two kinds of rules, each a documented list below:

- **Names** (``SENSITIVE_NAMES``): an attribute whose key contains one of these has its whole value replaced by
  ``[REDACTED]``, at any depth (``http.request.header.x-api-token``, a ``headers`` map inside a kvlist, ...).
- **Values** (``VALUE_RULES``): in any text, the secret part of what looks like a credential is replaced, the
  rest kept: URL passwords, credential query parameters (OAuth ``code`` too), ``password='...'`` literals and
  ``Password=...;`` connection-string parts, ``Bearer``/``Basic`` credentials, JWTs, well-known token formats,
  project keys, and the path segment after a word such as ``reset-password`` or ``token``.

``scrub_attributes`` (a dict of attributes), ``scrub_text`` (any text), ``scrub_url`` (a URL or path, and log
bodies: ``scrub_text`` plus ``PATH_RULE``) and ``scrub_name`` (span names and messages: ``scrub_url``, cached)
are the entry points.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"

# Attribute names (matched anywhere in the key, any case) whose values are credentials.
SENSITIVE_NAMES = (
    r"authorization",
    r"cookie",  # cookie and set-cookie
    r"passw(?:or)?d",
    r"secret",
    r"api[-_.]?key",
    r"token(?![a-z])",  # x-api-token, x-csrf-token, x-amz-security-token, private-token, x-vault-token; not "tokens"
    r"bearer",
    r"session[-_.]?id",
    r"project[-_.]?key",
    r"x-auth",
    r"credential",
    r"private[-_.]?key",
    r"signature",
)
_SENSITIVE_KEY = re.compile("|".join(SENSITIVE_NAMES), re.IGNORECASE)

# Query parameter names (the whole name) whose values are credentials; ``code`` is the OAuth authorization code.
SENSITIVE_PARAMS = (
    r"[^=&#;?\s]*token",
    r"(?:[^=&#;?\s]*[_.\-])?(?:api[_-]?key|apikey|key|secret|password|passwd|pwd|sig|signature|auth|jwt"
    r"|session(?:[_.-]?id)?|sid|credentials?)",
    r"code",
)
# Words after which a path segment is a secret: ``/reset-password/<token>``, ``/invite/<token>``.
PATH_WORDS = (
    r"reset[-_]?password",
    r"password[-_]?reset",
    r"reset",
    r"verify",
    r"verification",
    r"confirm(?:ation)?",
    r"activate",
    r"activation",
    r"magic[-_]?link",
    r"invite",
    r"invitation",
    r"unsubscribe",
    r"tokens?",
    r"api[-_]?keys?",
    r"secrets?",
)
# Names in ``name=value`` / ``name: value`` text (SQL literals, connection strings, log lines).
ASSIGNED_NAMES = r"passw(?:or)?d|pwd|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token"

# (pattern, replacement): applied in order to every text value.
VALUE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:?#\s]*):[^/@?#\s]*@"), r"\1:" + REDACTED + "@"),
    # ?token=...&code=...
    (re.compile(r"((?:^|[?&;])(?:" + "|".join(SENSITIVE_PARAMS) + r")=)[^&#;\s]*", re.IGNORECASE), r"\1" + REDACTED),
    # password='...', Password=...; api_key: "..."
    (
        re.compile(r"(\b(?:" + ASSIGNED_NAMES + r")\b\s*(?:=|:)\s*)('[^']*'|\"[^\"]*\"|[^\s&;,'\")]+)", re.IGNORECASE),
        r"\1" + REDACTED,
    ),
    # Authorization-style credentials
    (re.compile(r"\b([Bb]earer|BEARER|Basic|Digest)\s+[A-Za-z0-9._~+/-]{8,}=*"), r"\1 " + REDACTED),
    # JSON Web Tokens
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # well-known token formats and pystrument's own project keys
    (
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
            r"|sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|glpat-[A-Za-z0-9_-]{20,}|proj_[0-9a-f]{24})\b"
        ),
        REDACTED,
    ),
)
# In URLs, URL paths and span names only (a file path such as ``app/verify/handlers.py`` is not a URL):
# the segment after a PATH_WORDS word, e.g. ``/reset-password/<token>``.
PATH_RULE = (re.compile(r"(/(?:" + "|".join(PATH_WORDS) + r")/)([^/?#\s]{8,})", re.IGNORECASE), r"\1" + REDACTED)
# Cheap pre-check: text without any of these characters or words cannot match a value rule.
_MAYBE = re.compile(r"[=@:/]|bearer|basic|token|digest|eyJ|gh[pousr]_|github_pat|xox|sk-|AKIA|glpat|proj_", re.I)

# Attributes that hold URLs or URL paths: PATH_RULE applies to them too.
URL_KEYS = frozenset(
    {"url.query", "url.full", "url.path", "http.target", "http.url", "url.original", "http.request.uri"}
)
MAX_DEPTH = 32

_key_cache: dict[str, bool] = {}
_text_cache: dict[str, str] = {}
_MAX_CACHED_TEXT = 256
_MAX_CACHE = 10_000


def is_sensitive_key(key: str) -> bool:
    """Whether an attribute key names a credential (cached: keys repeat across spans)."""
    hit = _key_cache.get(key)
    if hit is None:
        hit = _SENSITIVE_KEY.search(key) is not None
        if len(_key_cache) < _MAX_CACHE and len(key) <= 256:  # bounded in bytes as well as in count
            _key_cache[key] = hit
    return hit


def scrub_text(value: str) -> str:
    """``value`` with the secret part of anything that looks like a credential replaced by ``[REDACTED]``."""
    if not value or _MAYBE.search(value) is None:
        return value
    for pattern, replacement in VALUE_RULES:
        value = pattern.sub(replacement, value)
    return value


def scrub_url(value: str) -> str:
    """:func:`scrub_text` plus the URL path rule (``/reset-password/<token>``), for URLs, paths and log bodies."""
    value = scrub_text(value)
    if "/" in value:
        value = PATH_RULE[0].sub(PATH_RULE[1], value)
    return value


def scrub_name(value: str) -> str:
    """:func:`scrub_url` for span names and status/exception messages, cached for the short ones (they repeat)."""
    hit = _text_cache.get(value)
    if hit is not None:
        return hit
    out = scrub_url(value)
    if len(value) <= _MAX_CACHED_TEXT:
        if len(_text_cache) >= _MAX_CACHE:
            _text_cache.clear()
        _text_cache[value] = out
    return out


def scrub_value(value: Any, depth: int = 0) -> Any:
    """A decoded attribute value with the rules applied at every depth (maps by name and value, lists, text)."""
    if isinstance(value, str):
        return scrub_text(value)
    if depth >= MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if is_sensitive_key(k) else scrub_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, depth + 1) for v in value]
    return value


def scrub_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """Redact sensitive values in place (names and values, nested ones too) and return the dict."""
    for key, value in attrs.items():
        if is_sensitive_key(key):
            attrs[key] = REDACTED
        elif key in URL_KEYS and isinstance(value, str):
            attrs[key] = scrub_url(value)
        elif isinstance(value, str | dict | list):
            attrs[key] = scrub_value(value)
    return attrs
