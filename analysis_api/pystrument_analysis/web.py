"""Serves the built SvelteKit UI (adapter-static) at ``/`` with a single-page-app fallback.

The build lives in ``pystrument_analysis/web_dist`` (``nox -s web`` writes it); ``PYSTRUMENT_WEB_DIR``
points elsewhere. Unknown paths without a file extension get the fallback page (``200.html`` or
``index.html``) so client-side routes survive a reload; the API, OTLP, schema and health paths are never
shadowed: under them an unknown path is a plain 404. HTML pages carry a Content-Security-Policy (their inline
start-up script allowed by hash); ``api.shield`` adds nosniff, X-Frame-Options and Referrer-Policy to everything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import mimetypes
import os
import re
from pathlib import Path

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import File
from litestar.types import ControllerRouterHandler

ENV_WEB_DIR = "PYSTRUMENT_WEB_DIR"
DEFAULT_WEB_DIR = Path(__file__).resolve().parent / "web_dist"
RESERVED_PREFIXES = ("api", "v1", "schema", "health")
FALLBACK_PAGES = ("200.html", "index.html")
IMMUTABLE_PREFIX = "_app/immutable/"

# The platform's mime table varies (and some map .js to text/plain); these are what browsers need.
# Litestar adds "; charset=utf-8" to text/* itself: spelled here too, browsers would get it twice.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".txt": "text/plain",
}

NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pystrument</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>pystrument</h1>
<p><strong>UI not built: run nox -s web</strong></p>
<p>(or <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>, or set <code>PYSTRUMENT_WEB_DIR</code>
to a built UI), then reload.</p>
<p>The server itself is running: the REST API is under <a href="/api/v1/projects">/api/v1/</a>,
the OpenAPI schema at <a href="/schema">/schema</a>, OTLP at <code>POST /v1/traces</code>.</p>
<p>Looked for the UI in: <code>{directory}</code></p>
</body></html>
"""


def web_dir() -> Path:
    """Where the built UI is: ``PYSTRUMENT_WEB_DIR`` or the package's ``web_dist``."""
    configured = os.environ.get(ENV_WEB_DIR)
    return Path(configured).expanduser() if configured else DEFAULT_WEB_DIR


def content_type(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it is a file inside ``root`` (no ``..`` escapes, no symlinks out)."""
    if "\x00" in relative:
        return None
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def _resolve(root: Path, relative: str) -> Path | None:
    """The file for a URL path: itself, its prerendered page (``x.html``, ``x/index.html``), else None."""
    relative = relative.strip("/")
    if not relative:
        return _inside(root, "index.html")
    for option in (relative, f"{relative}.html", f"{relative}/index.html"):
        found = _inside(root, option)
        if found is not None:
            return found
    return None


_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_script_hashes: dict[tuple[str, float], tuple[str, ...]] = {}


def content_security_policy(script_hashes: tuple[str, ...]) -> str:
    """The UI's CSP: its own files only, plus the page's inline bootstrap scripts by hash; no framing."""
    scripts = " ".join(["'self'", *(f"'sha256-{h}'" for h in script_hashes)])
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def inline_script_hashes(file: Path) -> tuple[str, ...]:
    """Base64 SHA-256 of each inline ``<script>`` of an HTML file (SvelteKit's start-up script), cached by mtime."""
    key = (str(file), file.stat().st_mtime)
    found = _script_hashes.get(key)
    if found is None:
        bodies = _INLINE_SCRIPT.findall(file.read_bytes())
        found = tuple(base64.b64encode(hashlib.sha256(body).digest()).decode() for body in bodies)
        if len(_script_hashes) > 1000:
            _script_hashes.clear()
        _script_hashes[key] = found
    return found


def _serve(file: Path, root: Path) -> File:
    relative = file.relative_to(root).as_posix()
    cache = "public, max-age=31536000, immutable" if relative.startswith(IMMUTABLE_PREFIX) else "no-cache"
    headers = {"Cache-Control": cache}
    if file.suffix.lower() == ".html":
        headers["Content-Security-Policy"] = content_security_policy(inline_script_hashes(file))
    return File(
        path=file,
        media_type=content_type(file),
        content_disposition_type="inline",
        headers=headers,
    )


def _page(configured: Path, relative: str) -> File | Response[str]:
    """The response for one UI path (``relative`` has no leading slash)."""
    if relative.split("/", 1)[0] in RESERVED_PREFIXES:
        raise NotFoundException(f"no route for /{relative}")
    if not configured.is_dir():
        return Response(
            NOT_BUILT_PAGE.replace("{directory}", html.escape(str(configured))),
            media_type="text/html",
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": content_security_policy(())},
        )
    root = configured.resolve()
    found = _resolve(root, relative)
    if found is not None:
        return _serve(found, root)
    last = relative.rsplit("/", 1)[-1]
    if "." not in last:  # a client-side route, not a missing asset
        for page in FALLBACK_PAGES:
            fallback = _inside(root, page)
            if fallback is not None:
                return _serve(fallback, root)
    raise NotFoundException(f"not found: /{relative}")


def web_handlers() -> list[ControllerRouterHandler]:
    """The UI's route handlers; the directory is looked up per request, so a later build is picked up."""
    configured = web_dir()

    @get("/", operation_id="webIndex", include_in_schema=False, sync_to_thread=False)
    def index() -> File | Response[str]:
        return _page(configured, "")

    @get("/{path:path}", operation_id="webPage", include_in_schema=False, sync_to_thread=False)
    def page(path: FromPath[str]) -> File | Response[str]:
        return _page(configured, path.lstrip("/"))

    return [index, page]
