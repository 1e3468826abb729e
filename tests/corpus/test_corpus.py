"""The real-app corpus: published applications nobody on the team wrote, run zero-code under
``opentelemetry-instrument`` against a real pystrument server, under concurrent load, with every trace checked
against the fidelity invariants (invariants.py, docs/fidelity.md).

- ``django-admin``: ``django.contrib.admin`` over two models and 6,300 generated rows on SQLite, gunicorn threads
  (WSGI), Django templates; login (PBKDF2), changelists with search and filters, change forms.
- ``wagtail``: a site made by ``wagtail start`` with 60 generated pages and 40 generated photos, uvicorn (ASGI;
  Django's sync views in asgiref's thread); the front end, search, and Wagtail's admin, whose image pages make
  renditions on first view (Pillow).
- ``flask-admin``: Flask-Admin's model views (Jinja, WTForms) over Flask-SQLAlchemy on SQLite, gunicorn threads.
- ``fastapi-sqladmin``: SQLAdmin's views (``async def``, Jinja) over SQLModel on the test Postgres (psycopg, run in
  worker threads) plus SQLModel endpoints, ``def`` (threadpool) and ``async def`` (asyncpg), uvicorn.

The apps' code is the packages' own; tests/corpus/apps holds only settings, models, data generation and a module
that mounts the published views. Each app's traces are all checked; the test fails (after checking every trace, so
the counts are known) on the first violation and prints that trace. For each app's dominant cost the builtin
analysis runs on the slowest such trace and the summary says whether its top finding names that cost; it is
recorded, not asserted (issue #13, deliverable 3, is the analysis's). ``pytest -s`` shows the summary table.
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from corpus import invariants as inv
from e2e.test_frameworks_zero_code import BIN, GUNICORN, UVICORN, wait_until

pytestmark = pytest.mark.e2e

APPS = Path(__file__).parent / "apps"
PASSWORD = "corpus-" + secrets.token_hex(6)
WORKERS = 8  # requests in flight
LOAD_DEADLINE_S = 150  # per app; the load stops sending after this
REQUEST_TIMEOUT_S = 90
SETTLE_READS = 2  # reads a second apart with the same span count: a trace is complete
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass(frozen=True)
class Request:
    """One request of the load: ``kind`` groups requests for the summary and the dominant-cost checks."""

    kind: str
    path: str
    template: bool = True  # the page renders a template (Django or Jinja)
    method: str = "GET"


@dataclass(frozen=True)
class Dominant:
    """An app's dominant cost: the slowest trace of ``kind`` is analysed and its top finding must match ``names``."""

    what: str
    kind: str
    names: re.Pattern[str]


@dataclass
class Sent:
    trace_id: str
    request: Request
    status: int
    ms: float


@dataclass
class AppResult:
    app: str
    served: str
    traces: int = 0
    requests_sent: int = 0
    load_s: float = 0.0
    total_s: float = 0.0
    violations: Counter[str] = field(default_factory=Counter)
    traces_violating: int = 0
    first: str = ""
    verdicts: list[str] = field(default_factory=list)


RESULTS: dict[str, AppResult] = {}


@dataclass
class CorpusApp:
    served: str
    command: list[str]
    prepare: Callable[[Path, dict[str, str]], Path]  # (work dir, env) -> the app's directory, data generated
    requests: Callable[[random.Random], list[Request]]
    login: str | None  # login page path (Django's form) when the views need a session
    ready: str  # a path answering 2xx/3xx once the app is up
    env: dict[str, str] = field(default_factory=dict)
    dominant: list[Dominant] = field(default_factory=list)
    needs_postgres: bool = False


# ---------------------------------------------------------------- preparing the apps


def python(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> None:
    """Run the venv's Python (not instrumented) in the app's directory: migrations and data generation."""
    result = subprocess.run(
        [str(BIN / "python"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def copy_app(name: str, work: Path) -> Path:
    target = work / name
    shutil.copytree(APPS / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def prepare_django_admin(work: Path, env: dict[str, str]) -> Path:
    app = copy_app("djadmin", work)
    python(["-m", "django", "migrate", "--run-syncdb", "-v0"], app, env)
    python(["seed.py"], app, env)
    return app


def prepare_wagtail(work: Path, env: dict[str, str]) -> Path:
    app = work / "wagtail"
    app.mkdir()
    subprocess.run([str(BIN / "wagtail"), "start", "corpussite", str(app)], check=True, capture_output=True)
    glue = APPS / "wagtail_glue"
    shutil.copy(glue / "local.py", app / "corpussite" / "settings" / "local.py")
    shutil.copy(glue / "asgi.py", app / "corpussite" / "asgi.py")
    shutil.copy(glue / "seed.py", app / "seed.py")
    (work / "media").mkdir()
    python(["manage.py", "migrate", "-v0"], app, env)
    python(["seed.py"], app, env)
    return app


def prepare_flask_admin(work: Path, env: dict[str, str]) -> Path:
    app = copy_app("flaskadmin", work)
    python(["seed.py"], app, env)
    return app


def prepare_fastapi(work: Path, env: dict[str, str]) -> Path:
    app = copy_app("fastapi_sqladmin", work)
    python(["seed.py"], app, env)
    return app


# ---------------------------------------------------------------- each app's load


def django_admin_requests(rng: random.Random) -> list[Request]:
    books = [Request("book change form", f"/admin/library/book/{rng.randrange(1, 6001)}/change/") for _ in range(8)]
    return [
        *[Request("admin index", "/admin/") for _ in range(6)],
        *[Request("book changelist", "/admin/library/book/") for _ in range(10)],
        *[Request("book changelist", f"/admin/library/book/?p={rng.randrange(2, 60)}") for _ in range(6)],
        *[Request("book search", f"/admin/library/book/?q={w}") for w in ("river", "stone", "crown", "glass")],
        *[Request("book search", "/admin/library/book/?in_stock__exact=1&author__country=Japan") for _ in range(3)],
        *books,
        *[Request("author changelist", "/admin/library/author/?q=son") for _ in range(4)],
    ]


def wagtail_requests(rng: random.Random) -> list[Request]:
    images = rng.sample(range(1, 41), 12)
    return [
        *[Request("page", "/") for _ in range(3)],
        *[Request("page", f"/page-{rng.randrange(60)}/") for _ in range(8)],
        *[Request("search", f"/search/?query={w}") for w in ("harbour", "lantern", "meadow", "quartz", "falcon")],
        *[Request("admin dashboard", "/admin/") for _ in range(3)],
        *[Request("admin page explorer", "/admin/pages/3/") for _ in range(4)],
        *[Request("admin image index", "/admin/images/") for _ in range(3)],
        *[Request("admin image index", "/admin/images/?p=2") for _ in range(2)],
        *[Request("admin image edit", f"/admin/images/{i}/") for i in images],
        *[Request("admin page edit", f"/admin/pages/{rng.randrange(4, 64)}/edit/") for _ in range(4)],
    ]


def flask_admin_requests(rng: random.Random) -> list[Request]:
    return [
        *[Request("admin index", "/admin/") for _ in range(4)],
        *[Request("order list", "/admin/order/") for _ in range(10)],
        *[Request("order list", f"/admin/order/?page={rng.randrange(1, 150)}&sort=4") for _ in range(6)],
        *[Request("order search", f"/admin/order/?search={w}") for w in ("pending", "amber", "shipped", "kelp")],
        *[Request("order edit", f"/admin/order/edit/?id={rng.randrange(1, 8001)}") for _ in range(8)],
        *[Request("customer list", "/admin/customer/") for _ in range(5)],
        *[Request("product list", "/admin/product/") for _ in range(3)],
    ]


def fastapi_requests(rng: random.Random) -> list[Request]:
    return [
        *[Request("admin index", "/admin/") for _ in range(2)],
        *[Request("hero list", "/admin/hero/list") for _ in range(8)],
        *[Request("hero list", f"/admin/hero/list?page={rng.randrange(2, 100)}&sortBy=age") for _ in range(4)],
        *[Request("hero search", f"/admin/hero/list?search={w}") for w in ("spark", "nova", "frost", "rune")],
        *[Request("hero details", f"/admin/hero/details/{rng.randrange(1, 6001)}") for _ in range(6)],
        *[Request("hero edit", f"/admin/hero/edit/{rng.randrange(1, 6001)}") for _ in range(4)],
        *[Request("team list", "/admin/team/list") for _ in range(3)],
        *[Request("api heroes (def)", f"/api/heroes?offset={rng.randrange(5900)}", template=False) for _ in range(10)],
        *[Request("api team (async def)", f"/api/teams/{rng.randrange(1, 41)}", template=False) for _ in range(10)],
    ]


PASSWORD_HASH = re.compile(r"pbkdf2|password|hash", re.IGNORECASE)
CORPUS: dict[str, CorpusApp] = {
    "django-admin": CorpusApp(
        served="gunicorn, 1 worker x 8 threads (WSGI)",
        command=[*GUNICORN, "corpus_admin.wsgi:application"],
        prepare=prepare_django_admin,
        requests=django_admin_requests,
        login="/admin/login/",
        ready="/admin/login/",
        env={"DJANGO_SETTINGS_MODULE": "corpus_admin.settings"},
        dominant=[
            Dominant("password hashing on login", "login", PASSWORD_HASH),
            Dominant(
                "the book changelist (query + change_list.html)",
                "book changelist",
                re.compile(r"change_?list|ChangeList|SELECT", re.IGNORECASE),
            ),
        ],
    ),
    "wagtail": CorpusApp(
        served="uvicorn (ASGI; Django sync views in asgiref's thread)",
        command=[*UVICORN, "corpussite.asgi:application"],
        prepare=prepare_wagtail,
        requests=wagtail_requests,
        login="/admin/login/",
        ready="/admin/login/",
        env={"DJANGO_SETTINGS_MODULE": "corpussite.settings.production"},
        dominant=[
            Dominant(
                "image rendition on first view",
                "admin image edit",
                re.compile(r"rendition|willow|PIL|resize|thumbnail|jpeg", re.IGNORECASE),
            ),
            Dominant("password hashing on login", "login", PASSWORD_HASH),
        ],
    ),
    "flask-admin": CorpusApp(
        served="gunicorn, 1 worker x 8 threads (WSGI)",
        command=[*GUNICORN, "shop_admin:app"],
        prepare=prepare_flask_admin,
        requests=flask_admin_requests,
        login=None,
        ready="/admin/",
        dominant=[
            Dominant(
                "the order list (query + list.html)",
                "order list",
                re.compile(r"index_view|get_list|list\.html|SELECT", re.IGNORECASE),
            )
        ],
    ),
    "fastapi-sqladmin": CorpusApp(
        served="uvicorn (ASGI; SQLAdmin async views, sync queries in worker threads; def and async def endpoints)",
        command=[*UVICORN, "heroes:app"],
        prepare=prepare_fastapi,
        requests=fastapi_requests,
        login=None,
        ready="/admin/",
        needs_postgres=True,
        dominant=[
            Dominant(
                "the hero list (query + list.html)",
                "hero list",
                re.compile(r"list\.html|ModelView\.list|get_model_objects|_run_query|SELECT", re.IGNORECASE),
            )
        ],
    ),
}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    """Print the corpus's figures after the last app (``pytest -s`` shows them)."""
    yield
    if not RESULTS:
        return
    lines = [
        "",
        "corpus summary",
        f"{'app':18} {'traces':>6} {'violating':>9} {'load s':>7} {'total s':>7}  violations by invariant",
    ]
    for r in RESULTS.values():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.violations.items())) or "none"
        lines.append(f"{r.app:18} {r.traces:6} {r.traces_violating:9} {r.load_s:7.1f} {r.total_s:7.1f}  {counts}")
    lines.append("dominant costs (builtin analysis, slowest trace of the kind):")
    for r in RESULTS.values():
        lines.extend(f"  {r.app}: {verdict}" for verdict in r.verdicts)
    print("\n".join(lines))


@pytest.fixture
def postgres_app_urls(pg_admin_url: str) -> Iterator[dict[str, str]]:
    """A database of its own on the test Postgres for an app, as psycopg and asyncpg SQLAlchemy URLs."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(pg_admin_url)
    name = f"corpus_{uuid.uuid4().hex[:10]}"
    conninfo = {
        "user": admin.username,
        "password": admin.password,
        "host": admin.query.get("host") or admin.host,
        "port": admin.port,
        "dbname": admin.database,
    }
    conninfo = {k: v for k, v in conninfo.items() if v is not None}
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name)
    yield {
        "CORPUS_PG_SYNC": url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
        "CORPUS_PG_ASYNC": url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
    }
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- running an app


def app_env(name: str, work: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_", "DJANGO_", "CORPUS_"))}
    env.update(
        HOME=str(work),  # gunicorn keeps a control socket under $HOME
        CORPUS_DB=str(work / f"{name}.sqlite3"),
        CORPUS_MEDIA=str(work / "media"),
        CORPUS_PASSWORD=PASSWORD,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def start_instrumented(
    app: CorpusApp, app_dir: Path, env: dict[str, str], port: int, receiver: str, key: str, log: Path
) -> subprocess.Popen[bytes]:
    env = dict(env)
    env.update(
        PYTHONPATH=str(app_dir),
        OTEL_SERVICE_NAME=app_dir.name,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_HEADERS=f"x-project-key={key}",
        OTEL_BSP_SCHEDULE_DELAY="200",
        PYSTRUMENT_PROFILE_RATE="1",
        PYSTRUMENT_SLOW_MS="0",
        # Every request keeps its function spans (the corpus checks them all), however many there are.
        PYSTRUMENT_SPAN_BUDGET="1",
    )
    command = [arg.format(port=port) for arg in app.command]
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "opentelemetry-instrument"), *command],
            cwd=app_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Sender:
    """Sends the load's requests, each in a trace of its own (``traceparent``), and remembers them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def send(self, client: httpx.Client, request: Request, data: dict[str, str] | None = None) -> httpx.Response:
        trace_id = secrets.token_hex(16)
        headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        started = time.perf_counter()
        response = client.request(request.method, self.url + request.path, headers=headers, data=data)
        ms = (time.perf_counter() - started) * 1000
        assert response.status_code < 400, (request, response.status_code, response.text[:2000])
        with self._lock:
            self.sent.append(Sent(trace_id, request, response.status_code, ms))
        return response

    def login(self, client: httpx.Client, path: str) -> None:
        """Django's login form (the admin's, Wagtail's): the form page, then the credentials."""
        page = self.send(client, Request("login form", path))
        match = CSRF_FIELD.search(page.text)
        assert match, page.text[:2000]
        form = {"csrfmiddlewaretoken": html.unescape(match.group(1)), "username": "admin", "password": PASSWORD}
        response = self.send(client, Request("login", path, template=False, method="POST"), data=form)
        assert response.status_code == 302, response.text[:2000]


def run_load(app: CorpusApp, url: str, rng: random.Random) -> Sender:
    """The app's requests from ``WORKERS`` clients at once (each logs in first when the app needs it)."""
    sender = Sender(url)
    requests = app.requests(rng)
    rng.shuffle(requests)
    deadline = time.monotonic() + LOAD_DEADLINE_S
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with httpx.Client(timeout=REQUEST_TIMEOUT_S, follow_redirects=False) as client:
                if app.login:
                    sender.login(client, app.login)
                for request in requests[index::WORKERS]:
                    if time.monotonic() > deadline:
                        return
                    sender.send(client, request)
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(worker, range(WORKERS)))
    if errors:
        raise errors[0]
    return sender


# ---------------------------------------------------------------- reading traces back


def api(receiver: str, path: str, **params: Any) -> Any:
    response = httpx.get(receiver + path, params=params, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def all_trace_ids(receiver: str, key: str) -> list[str]:
    ids: list[str] = []
    for page in range(1, 100):
        data = api(receiver, "/api/v1/performance/records", project_key=key, size=100, page=page)
        ids.extend(r["trace_id"] for r in data["records"])
        if len(data["records"]) < 100:
            break
    return ids


def settled_details(receiver: str, key: str, trace_ids: list[str], timeout: float = 90) -> dict[str, Any]:
    """Each trace once stored and settled: its span count stayed the same over ``SETTLE_READS`` reads a second apart
    (function spans are built after the request and arrive later; longer when the request kept function spans and
    none has arrived yet)."""
    details: dict[str, Any] = {}
    counts: dict[str, tuple[int, int]] = {}  # trace -> (span count, reads it stayed so)
    pending = list(trace_ids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        still: list[str] = []
        for trace_id in pending:
            response = httpx.get(
                f"{receiver}/api/v1/performance/records/{trace_id}", params={"project_key": key}, timeout=30
            )
            if response.status_code != 200:
                still.append(trace_id)
                continue
            detail = response.json()["data"]
            n = len(detail["spans"])
            request = inv.request_span(detail)
            no_functions_yet = (
                request is not None
                and inv.attrs(request).get(inv.FUNCTION_SPANS)
                and not any(inv.is_function(s) for s in detail["spans"])
            )
            count, reads = counts.get(trace_id, (-1, 0))
            reads = reads + 1 if count == n else 0
            counts[trace_id] = (n, reads)
            if reads >= (SETTLE_READS * 3 if no_functions_yet else SETTLE_READS):
                details[trace_id] = detail
            else:
                still.append(trace_id)
        pending = still
        if pending:
            time.sleep(1.0)
    for trace_id in pending:  # never settled: check what is there (its invariants will say what is missing)
        response = httpx.get(f"{receiver}/api/v1/performance/records/{trace_id}", params={"project_key": key})
        assert response.status_code == 200, f"trace {trace_id} never stored: {response.text[:500]}"
        details[trace_id] = response.json()["data"]
    return details


def dump(name: str, details: dict[str, Any], found: dict[str, list[inv.Violation]], log: str) -> None:
    """With ``PYSTRUMENT_CORPUS_DUMP=<dir>``: every violating trace (its violations and its detail JSON) and the
    app's log, for a closer look."""
    target = os.environ.get("PYSTRUMENT_CORPUS_DUMP")
    if not target:
        return
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    violating = {
        trace_id: {"violations": [str(v) for v in found[trace_id]], "trace": inv.format_trace(detail), "detail": detail}
        for trace_id, detail in details.items()
        if found.get(trace_id)
    }
    (folder / f"{name}.json").write_text(json.dumps(violating, indent=1, default=str))
    (folder / f"{name}.log").write_text(log)


def analyse(receiver: str, key: str, trace_id: str) -> dict[str, Any]:
    body = {"trace_id": trace_id, "project_key": key, "analysis_type": "manual", "ai_service": "builtin"}
    response = httpx.post(receiver + "/api/v1/analysis/trigger", json=body, timeout=30)
    assert response.status_code in (200, 201, 202), response.text
    analysis_id = response.json()["data"]["analysis_id"]

    def done() -> dict[str, Any] | None:
        data: dict[str, Any] = api(receiver, f"/api/v1/analysis/results/{analysis_id}")
        return data if data["status"] in ("completed", "failed") else None

    result: dict[str, Any] = wait_until(done, 60, f"analysis {analysis_id}")
    return result


def verdict(receiver: str, key: str, dominant: Dominant, sent: list[Sent], details: dict[str, Any]) -> str:
    candidates = [s for s in sent if s.request.kind == dominant.kind and s.trace_id in details]
    if not candidates:
        return f"{dominant.what}: no trace of kind {dominant.kind!r}"
    slowest = max(candidates, key=lambda s: details[s.trace_id]["record"]["duration"])
    result = analyse(receiver, key, slowest.trace_id)
    ms = details[slowest.trace_id]["record"]["duration"] * 1000
    findings = sorted(result.get("bottleneck_analysis") or [], key=lambda f: -(f.get("impact") or 0))
    if result["status"] != "completed":
        return f"{dominant.what}: analysis {result['status']} on {slowest.trace_id} ({ms:.0f} ms)"
    if not findings:
        return f"{dominant.what}: NOT NAMED: no finding, score {result.get('performance_score')} ({ms:.0f} ms)"
    top = findings[0]
    text = f"{top.get('function')} {top.get('description')}"
    named = "NAMED" if dominant.names.search(text) else "NOT NAMED"
    return (
        f"{dominant.what}: {named}: score {result.get('performance_score')}, top finding "
        f"[{top.get('type')}/{top.get('severity')}] {top.get('function')!r}: {str(top.get('description'))[:160]!r} "
        f"(trace {slowest.trace_id}, {ms:.0f} ms)"
    )


# ---------------------------------------------------------------- the test


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_app_traces_keep_the_fidelity_invariants(
    name: str,
    live_server: Any,
    tmp_path: Path,
    get_free_port: Callable[[], int],
    request: pytest.FixtureRequest,
) -> None:
    started = time.monotonic()
    app = CORPUS[name]
    result = RESULTS[name] = AppResult(name, app.served)
    extra = dict(app.env)
    if app.needs_postgres:
        extra.update(request.getfixturevalue("postgres_app_urls"))
    env = app_env(name, tmp_path, extra)
    app_dir = app.prepare(tmp_path, env)
    timings = {"prepare": time.monotonic() - started}

    r = httpx.post(live_server.url + "/api/v1/projects", json={"name": f"corpus {name}", "framework": "mixed"})
    assert r.status_code in (200, 201), r.text
    key: str = r.json()["data"]["project_key"]

    port = get_free_port()
    log = tmp_path / f"{name}.log"
    proc = start_instrumented(app, app_dir, env, port, live_server.url, key, log)
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text(errors="replace")[-5000:]
            return httpx.get(url + app.ready, timeout=10).status_code < 400

        wait_until(up, 60, f"{name} to answer {app.ready}")
        load_started = time.monotonic()
        sender = run_load(app, url, random.Random(13))
        result.load_s = time.monotonic() - load_started
        result.requests_sent = len(sender.sent)
        sent = {s.trace_id: s for s in sender.sent}
        stored_started = time.monotonic()
        settled_details(live_server.url, key, list(sent), timeout=60)  # ours are stored: now every trace
        details = settled_details(live_server.url, key, all_trace_ids(live_server.url, key), timeout=60)
        timings["stored"] = time.monotonic() - stored_started
    finally:
        stop(proc)
    app_log = log.read_text(errors="replace")

    first: tuple[inv.Violation, str] | None = None
    found: dict[str, list[inv.Violation]] = {}
    for trace_id, detail in details.items():
        s = sent.get(trace_id)
        violations = found[trace_id] = inv.check_trace(
            detail,
            expected_path=s.request.path.split("?")[0] if s else None,
            renders_template=bool(s and s.request.template),
        )
        if violations:
            result.traces_violating += 1
            result.violations.update(v.invariant for v in violations)
            if first is None:
                text = inv.format_trace(detail, mark=[v.span_id for v in violations if v.span_id])
                first = (violations[0], "\n".join(str(v) for v in violations[:20]) + "\n" + text)
    log_violations = inv.sampler_errors(app_log)
    dump(name, details, found, app_log)
    result.violations.update(v.invariant for v in log_violations)
    result.traces = len(details)
    kinds = Counter(s.request.kind for s in sender.sent)
    result.verdicts = [verdict(live_server.url, key, d, sender.sent, details) for d in app.dominant]
    result.total_s = time.monotonic() - started
    print(
        f"\n{name}: {len(details)} traces ({len(sent)} sent: {dict(kinds)}); prepare {timings['prepare']:.1f} s, "
        f"load {result.load_s:.1f} s, traces stored {timings['stored']:.1f} s, total {result.total_s:.1f} s"
    )
    problems = []
    if first is not None:
        result.first = first[1]
        problems.append(
            f"{result.traces_violating} of {len(details)} traces break fidelity invariants "
            f"({dict(result.violations)}); the first:\n{first[1]}"
        )
    if log_violations:
        lines = "\n".join(str(v) for v in log_violations[:10])
        problems.append(f"{len(log_violations)} SDK error lines in the app's log:\n{lines}")
    if problems:
        pytest.fail(f"{name}: " + "\n".join(problems), pytrace=False)
