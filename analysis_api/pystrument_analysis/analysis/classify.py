"""What a frame or a call is: the name and path lists behind the builtin rules, and the normalisers of calls.

The SDK names a frame by its ``co_qualname`` and collapses a chain of library calls into the first library
function entered, so the file path is the reliable clue; module-qualified names (``json.dumps``) from other SDKs
match too.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pystrument_analysis.analysis.trace import TSpan

# Library frames by what they do. The SDK names a frame by its ``co_qualname`` and collapses a chain of
# library calls into the first library function entered, so the file path is the reliable clue; module-
# qualified names (``json.dumps``) from other SDKs match too.
BLOCKING_NAMES = (
    "time.sleep",
    "socket.",
    "ssl.",
    "select.",
    "selectors.",
    "requests.",
    "urllib3.",
    "urllib.request.",
    "http.client.",
    "subprocess.",
    "psycopg2.",
    "pymysql.",
    "MySQLdb.",
    "sqlite3.",
    "redis.client.",
    "smtplib.",
)
BLOCKING_PATHS = (
    "/socket.py",
    "/ssl.py",
    "/selectors.py",
    "/subprocess.py",
    "/http/client.py",
    "/urllib/request.py",
    "/requests/",
    "/urllib3/",
    "/psycopg2/",
    "/pymysql/",
    "/MySQLdb/",
    "/sqlite3/",
    "/redis/client.py",
    "/smtplib.py",
)
# built-in (C) functions as the precise profiler shows them: file "<built-in>", bare name
BLOCKING_BUILTINS = (
    "sleep",
    "recv",
    "recv_into",
    "recvfrom",
    "send",
    "sendall",
    "connect",
    "accept",
    "select",
    "poll",
    "getaddrinfo",
    "do_handshake",
)
SERIALIZATION_NAMES = (
    "json.",
    "simplejson.",
    "ujson.",
    "orjson.",
    "pickle.",
    "_pickle.",
    "copyreg.",
    "marshal.",
    "yaml.",
    "msgpack.",
    "marshmallow.",
    "xml.etree.",
    "xml.dom.",
    "rest_framework.serializers.",
    "jsonable_encoder",
)
SERIALIZATION_PATHS = (
    "/json/",
    "/pickle.py",
    "/copyreg.py",
    "/simplejson/",
    "/yaml/",
    "/marshmallow/",
    "/xml/etree/",
    "/xml/dom/",
    "/rest_framework/serializers.py",
    "/rest_framework/renderers.py",
    "/fastapi/encoders.py",
    "/msgpack/",
)
# serialising entry points of libraries that also do other things (pydantic validates too)
SERIALIZATION_FUNCTION = re.compile(
    r"(?:^|\.)(dump_json|dump_python|model_dump|model_dump_json|to_json|to_jsonable_python|jsonable_encoder|"
    r"serialize_response|render)$"
)
SERIALIZATION_OWNERS = ("/pydantic/", "/pydantic_core/", "/fastapi/", "/starlette/responses.py", "/rest_framework/")
TEMPLATE_NAMES = ("jinja2.", "django.template.", "mako.", "chameleon.", "genshi.", "flask.templating.")
TEMPLATE_PATHS = (
    "/jinja2/",
    "/django/template/",
    "/django/shortcuts.py",
    "/flask/templating.py",
    "/starlette/templating.py",
    "/mako/",
    "/chameleon/",
)
REGEX_NAMES = ("re.", "sre_compile.", "sre_parse.", "regex.")
REGEX_PATHS = ("/re/", "/re.py", "/sre_compile.py", "/sre_parse.py", "/regex/")

LOCK_NAMES = ("threading.", "queue.", "asyncio.locks.", "multiprocessing.synchronize.", "filelock.", "fasteners.")
LOCK_PATHS = (
    "/threading.py",
    "/queue.py",
    "/asyncio/locks.py",
    "/asyncio/queues.py",
    "/multiprocessing/synchronize.py",
    "/filelock/",
    "/fasteners/",
)
LOCK_FUNCTIONS = ("acquire", "wait", "wait_for", "get", "put", "join", "__enter__", "__aenter__")
# built-in lock calls as the precise profiler shows them (file "<built-in>")
LOCK_BUILTINS = ("acquire", "acquire_lock")
# Deliberately slow by design: password hashing and key derivation. Matched on any frame, the app's own too.
DELIBERATE_NAME = re.compile(
    r"(?:^|[._])(check_password_hash|generate_password_hash|check_password|make_password|set_password|"
    r"hash_password|verify_password|pbkdf2\w*|bcrypt\w*|hashpw|checkpw|scrypt\w*|argon2\w*|kdf\w*)$",
    re.I,
)
DELIBERATE_PATHS = (
    "/passlib/",
    "/bcrypt/",
    "/argon2/",
    "/django/contrib/auth/hashers.py",
    "/werkzeug/security.py",
    "/cryptography/hazmat/primitives/kdf/",
)
# What only a debug configuration runs: Django's DEBUG query log (on sqlite, one SELECT QUOTE(?) per parameter),
# debug toolbars, the Werkzeug debugger.
DEBUG_FRAMES = re.compile(
    r"(?:^|\.)(last_executed_query|CursorDebugWrapper\.\w+|_quote_params_for_last_executed_query)$"
)
DEBUG_PATHS = ("/debug_toolbar/", "/flask_debugtoolbar/", "/werkzeug/debug/")
DEBUG_STATEMENT = re.compile(r"^\s*select\s+quote\s*\(", re.I)


def _matches(span: TSpan, names: tuple[str, ...], paths: tuple[str, ...]) -> bool:
    name = span.function
    if any(name == n.rstrip(".") or name.startswith(n) for n in names):
        return True
    file = (span.file or "").replace("\\", "/")
    return bool(file) and any(p in file for p in paths)


def frame_label(span: TSpan) -> str:
    """``Session.request (requests/sessions.py)``: the frame's name and where it lives, without the prefix."""
    file = (span.file or "").replace("\\", "/")
    for marker in ("site-packages/", "dist-packages/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    else:
        parts = file.split("/")
        file = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{span.function} ({file})" if file else span.function


def is_deliberate(span: TSpan) -> bool:
    """Password hashing or key derivation: slow on purpose (any function span, the app's own too)."""
    if not span.is_function or span.is_gc_pause:
        return False
    if DELIBERATE_NAME.search(span.function):
        return True
    file = (span.file or "").replace("\\", "/")
    return bool(file) and any(p in file for p in DELIBERATE_PATHS)


def is_debug_frame(span: TSpan) -> bool:
    """A frame only a debug configuration runs (Django's DEBUG query log, a debug toolbar)."""
    if not span.is_function:
        return False
    file = (span.file or "").replace("\\", "/")
    return bool(DEBUG_FRAMES.search(span.function)) or (bool(file) and any(p in file for p in DEBUG_PATHS))


def is_debug_statement(statement: str) -> bool:
    """Django's DEBUG query log on sqlite quotes each parameter with a query of its own."""
    return bool(DEBUG_STATEMENT.match(statement))


def _serializing_entry(span: TSpan) -> bool:
    file = (span.file or "").replace("\\", "/")
    return bool(SERIALIZATION_FUNCTION.search(span.function)) and any(p in file for p in SERIALIZATION_OWNERS)


def _is_lock(span: TSpan, builtin: bool) -> bool:
    last = span.function.rsplit(".", 1)[-1]
    if builtin:
        return last in LOCK_BUILTINS
    return last in LOCK_FUNCTIONS and _matches(span, LOCK_NAMES, LOCK_PATHS)


def frame_category(span: TSpan) -> str | None:
    """What a frame does: deliberate (password hashing, any frame), and for library frames debug, lock, blocking,
    serialization, template or regex (None: anything else)."""
    if is_deliberate(span):
        return "deliberate"
    if not span.is_library:
        return None
    if is_debug_frame(span):
        return "debug"
    builtin = (span.file or "").startswith("<") or span.file is None
    if _is_lock(span, builtin):
        return "lock"
    if _matches(span, BLOCKING_NAMES, BLOCKING_PATHS) or (
        builtin and span.function.rsplit(".", 1)[-1] in BLOCKING_BUILTINS
    ):
        return "blocking"
    if _matches(span, SERIALIZATION_NAMES, SERIALIZATION_PATHS) or _serializing_entry(span):
        return "serialization"
    if _matches(span, TEMPLATE_NAMES, TEMPLATE_PATHS):
        return "template"
    if _matches(span, REGEX_NAMES, REGEX_PATHS):
        return "regex"
    return None


def normalize_sql(statement: str) -> str:
    """Literals and placeholders to ``?`` so the same query with other parameters compares equal."""
    s = re.sub(r"'(?:[^']|'')*'", "?", statement)
    s = re.sub(r"\$\d+|%s|%\(\w+\)s|(?<!:):\w+", "?", s)
    s = re.sub(r"(?<![\w.])-?\d+(?:\.\d+)?\b", "?", s)
    s = re.sub(r"\(\s*\?(?:\s*,\s*\?)*\s*\)", "(?)", s)
    return re.sub(r"\s+", " ", s).strip()


_ID_SEGMENT = re.compile(r"^(?:\d+|[0-9a-fA-F-]{8,}|[0-9a-fA-F]{16,}|.*\d.*\d.*\d.*)$")


def http_target(span: TSpan) -> str:
    """``METHOD host/path`` with id-like path segments as ``{id}`` and no query string."""
    attrs = span.attributes
    url = str(attrs.get("url.full") or attrs.get("http.url") or "")
    parts = urlsplit(url) if url else None
    host = str(attrs.get("server.address") or attrs.get("net.peer.name") or (parts.hostname if parts else "") or "")
    port = attrs.get("server.port") or (parts.port if parts else None)
    path = (parts.path if parts else "") or str(attrs.get("url.path") or attrs.get("url.template") or "")
    segments = ["{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/")]
    where = f"{host}:{port}" if port else host
    return f"{(span.http_method or 'GET').upper()} {where}{'/'.join(segments) or '/'}"
