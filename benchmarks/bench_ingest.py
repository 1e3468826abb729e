"""Ingest throughput: raw asyncpg COPY of N span rows vs end-to-end OTLP/HTTP and OTLP/gRPC ingest of the same spans.

One run, one Postgres (embedded in a temp dir, or ``PYSTRUMENT_DATABASE_URL``; a fresh database is made on it):

1. raw: the N rows (flattened beforehand, not timed) binary-COPY'd into ``spans`` on one connection, then on
   two, in chunks of ``--chunk`` rows per COPY and transaction;
2. end to end: the same spans as pre-encoded ``ExportTraceServiceRequest`` bodies (``--batch`` spans each, as
   the SDK's BatchSpanProcessor sends them) posted to ``pystrument serve`` running in its own process, by
   ``--processes`` client processes with ``--concurrency`` keep-alive connections each (a minimal HTTP/1.1
   client, so the load generator leaves the 2 cores to the server and Postgres; 503s are retried after
   Retry-After, as exporters do). Timed from the first request to the last response; then every span and
   request record is counted in the database;
3. the same over OTLP/gRPC (``TraceService/Export`` on the server's gRPC port, the same bodies as raw bytes,
   ``--concurrency`` channels per process with a call in flight on each; UNAVAILABLE retried after its RetryInfo).

Prints rows, seconds, spans/s, the ratio end-to-end / raw and the server's peak RSS. Unknown arguments are
ignored (``nox -s bench -- …`` passes the same ones to every script); positional words select benchmarks:
this one runs when there are none or one of them is ``ingest``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

N_FUNCTIONS = 400
SPANS_PER_TRACE = 20  # 1 request span, 18 function spans, 1 database span


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", nargs="*", help="benchmark names to run (this one is 'ingest')")
    parser.add_argument("--spans", type=int, default=200_000, help="spans to write (default 200000)")
    parser.add_argument("--batch", type=int, default=512, help="spans per OTLP request (default 512)")
    parser.add_argument("--processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight per process (default 4)")
    parser.add_argument("--chunk", type=int, default=2048, help="rows per raw COPY (default 2048)")
    parser.add_argument("--write-connections", type=int, default=None, help="the server's PYSTRUMENT_WRITE_CONNECTIONS")
    parser.add_argument(
        "--workers",
        default="1",
        help="comma-separated `serve --workers` counts to run end to end over OTLP/HTTP in this run (default 1)",
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="use PYSTRUMENT_DATABASE_URL's database itself (e.g. a Citus coordinator's), not a new one; "
        "its spans and records are truncated",
    )
    parser.add_argument("--skip-raw", action="store_true", help="skip the raw COPY baseline")
    parser.add_argument("--skip-grpc", action="store_true", help="skip the OTLP/gRPC run")
    args, _unknown = parser.parse_known_args(argv)
    return args


# -- data ---------------------------------------------------------------------------------------------------


def make_bodies(n_spans: int, batch: int, seed: int = 7) -> list[bytes]:
    """Realistic pystrument traffic: per trace a SERVER span, function spans and a DB span, ``batch`` a body."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    rnd = random.Random(seed)

    def kv(key: str, value: Any) -> KeyValue:
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        if isinstance(value, float):
            return KeyValue(key=key, value=AnyValue(double_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    functions = [
        (f"app.module_{i % 40}.handler_{i}", f"/srv/app/module_{i % 40}.py", 10 + 7 * i, i % 5 == 0)
        for i in range(N_FUNCTIONS)
    ]
    routes = [f"/api/v1/items/{{id}}/part_{i}" for i in range(30)]
    resource = Resource(attributes=[kv("service.name", "bench-shop"), kv("telemetry.sdk.language", "python")])
    now_ns = time.time_ns()
    spans: list[Any] = []
    while len(spans) < n_spans:
        trace_id, root_id = rnd.randbytes(16), rnd.randbytes(8)
        start = now_ns - rnd.randrange(3_600_000_000_000)
        route = rnd.choice(routes)
        status = 500 if rnd.random() < 0.02 else 200
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=root_id,
                name=f"GET {route}",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=start,
                end_time_unix_nano=start + rnd.randrange(5_000_000, 400_000_000),
                status=Status(code=Status.STATUS_CODE_ERROR if status == 500 else Status.STATUS_CODE_UNSET),
                attributes=[
                    kv("http.request.method", "GET"),
                    kv("http.route", route),
                    kv("url.path", route.replace("{id}", str(rnd.randrange(100_000)))),
                    kv("url.scheme", "http"),
                    kv("http.response.status_code", status),
                    kv("server.address", "127.0.0.1"),
                    kv("server.port", 8000),
                    kv("user_agent.original", "python-requests/2.32.3"),
                    kv("network.protocol.version", "1.1"),
                    kv("pystrument.cpu_time_ms", round(rnd.random() * 80, 3)),
                    kv("pystrument.profile.interval_ms", 1.0),
                    kv("pystrument.memory.peak_mb", rnd.randrange(40, 400)),
                ],
            )
        )
        for j in range(SPANS_PER_TRACE - 2):
            name, file, line, library = rnd.choice(functions)
            s = start + j * 1_000_000
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=rnd.randbytes(8),
                    parent_span_id=root_id,
                    name=name,
                    kind=Span.SPAN_KIND_INTERNAL,
                    start_time_unix_nano=s,
                    end_time_unix_nano=s + rnd.randrange(1_000_000, 50_000_000),
                    status=Status(),
                    attributes=[
                        kv("code.function.name", name),
                        kv("code.file.path", file),
                        kv("code.line.number", line),
                        kv("pystrument.synthetic", True),
                        kv("pystrument.samples", rnd.randrange(1, 60)),
                        kv("pystrument.self_time_ms", round(rnd.random() * 20, 3)),
                        kv("pystrument.library", library),
                        kv("pystrument.time_precision_ms", 1.0),
                    ],
                )
            )
        s = start + 2_000_000
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=rnd.randbytes(8),
                parent_span_id=root_id,
                name="SELECT shop",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=s,
                end_time_unix_nano=s + rnd.randrange(200_000, 9_000_000),
                status=Status(),
                attributes=[
                    kv("db.system", "postgresql"),
                    kv("db.name", "shop"),
                    kv("db.statement", f"SELECT * FROM items WHERE id = %s AND part = {rnd.randrange(30)}"),
                    kv("server.address", "db.internal"),
                ],
            )
        )
    spans = spans[:n_spans]
    bodies = []
    for i in range(0, len(spans), batch):
        request = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans[i : i + batch])])]
        )
        bodies.append(request.SerializeToString())
    return bodies


def flatten(bodies: list[bytes], project_id: int) -> list[tuple[Any, ...]]:
    """The rows the receiver would write for these bodies (its own mapping; not timed)."""
    from pystrument_collector.ingest import ProtoTraces

    rows: list[tuple[Any, ...]] = []
    for body in bodies:
        traces = ProtoTraces(body)
        for batch in traces.batches([project_id] * len(traces.message.resource_spans), 1 << 30):
            rows.extend(batch.rows)
    return rows


# -- database -----------------------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _connect_params(url: str) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    _, params = engine.dialect.create_connect_args(engine.url)
    return dict(params)


async def prepare_database(admin_url: str, in_place: bool = False) -> tuple[str, int, str]:
    """A fresh database (or, ``in_place``, the given one), migrated, with one project and today's partitions;
    returns (url, project id, key)."""
    import asyncpg
    from pystrument_collector.db import Database
    from pystrument_collector.db.models import Project
    from pystrument_collector.keys import new_project_key
    from pystrument_collector.retention import ensure_partitions

    if in_place:
        url = admin_url
    else:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(**_connect_params(admin_url))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = _with_database(admin_url, name)
    db = Database(url)
    await db.start()
    try:
        await db.migrate()
        await ensure_partitions(db)
        key = new_project_key()
        async with db.session() as s:
            project = Project(project_key=key, name="bench")
            s.add(project)
            await s.flush()
            project_id = project.id
    finally:
        await db.stop()
    return url, project_id, key


async def drop_database(admin_url: str, url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    conn = await asyncpg.connect(**_connect_params(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


async def reset_tables(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(**_connect_params(url))
    try:
        await conn.execute("TRUNCATE spans, performance_records")
        await conn.execute("VACUUM ANALYZE spans")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def count_rows(url: str) -> tuple[int, int]:
    import asyncpg

    conn = await asyncpg.connect(**_connect_params(url))
    try:
        spans = await conn.fetchval("SELECT count(*) FROM spans")
        spans += await conn.fetchval("SELECT coalesce(sum(n), 0) FROM function_spans")  # packed function spans
        records = await conn.fetchval("SELECT count(*) FROM performance_records")
        return int(spans), int(records)
    finally:
        await conn.close()


async def raw_copy(
    url: str, rows: list[tuple[Any, ...]], connections: int, chunk: int, postmaster: int | None
) -> tuple[float, float | None]:
    """Seconds to COPY ``rows`` into ``spans`` over ``connections`` connections (same codecs as the writer),
    and the CPU seconds Postgres spent meanwhile (read before the connections close)."""
    import asyncpg
    from pystrument_collector.ingest import Batch
    from pystrument_collector.ingest._writer import _init_connection

    conns = [await asyncpg.connect(**_connect_params(url)) for _ in range(connections)]
    for conn in conns:
        await _init_connection(conn)
    chunks = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]

    async def worker(conn: Any, mine: list[list[tuple[Any, ...]]]) -> None:
        for part in mine:
            async with conn.transaction():
                await conn.copy_records_to_table("spans", records=part, columns=Batch.SPAN_COLUMNS)

    try:
        pg0 = postgres_cpu_seconds(postmaster)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c, chunks[i::connections]) for i, c in enumerate(conns)))
        seconds = time.perf_counter() - t0
        pg1 = postgres_cpu_seconds(postmaster)
        return seconds, None if pg0 is None or pg1 is None else pg1 - pg0
    finally:
        for conn in conns:
            await conn.close()


# -- end to end ---------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    url: str, port: int, data_dir: Path, write_connections: int | None, grpc_port: int = 0, workers: int = 1
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYSTRUMENT_DATABASE_URL": url, "PYSTRUMENT_RETENTION_DAYS": "0"}
    if write_connections:
        env["PYSTRUMENT_WRITE_CONNECTIONS"] = str(write_connections)
    code = "import sys; from pystrument_analysis.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--grpc-port", str(grpc_port), "--workers", str(workers)]
    log = data_dir / "server.log"  # a file, not a pipe nobody reads: a full pipe would stall the server
    with log.open("wb") as err:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become healthy in 60 s")


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field in bytes (VmHWM is the peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _tree(pid: int) -> list[int]:
    """The process and its children (``serve --workers N``'s worker processes), from /proc."""
    tree = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            tree.append(int(stat.parent.name))
    return tree


def proc_cpu_seconds(pid: int) -> float:
    """CPU time of the process and its children."""
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def tree_rss(pid: int, field: str) -> int:
    """``proc_status`` summed over the process and its children."""
    total = 0
    for p in _tree(pid):
        try:
            total += proc_status(p, field)
        except OSError:
            continue
    return total


def postgres_cpu_seconds(postmaster: int | None) -> float | None:
    """CPU time of the benchmark's Postgres (the postmaster and its children), when it runs on this machine."""
    if postmaster is None:
        return None
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster or stat.parent.name == str(postmaster):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _exporter(port: int, key: str, bodies: list[bytes], concurrency: int, go: Any, out: Any) -> None:
    """One client process: ``concurrency`` keep-alive HTTP/1.1 connections posting its bodies; 503s are retried
    after Retry-After, as exporters do. A minimal client, so the load generator takes little of the 2 cores."""

    async def post(reader: Any, writer: Any, body: bytes) -> tuple[int, float]:
        head = (
            f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\n"
            f"X-Project-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        status_line = await reader.readline()
        if not status_line:  # the server closed the connection (e.g. after a 503): reconnect and send again
            return 0, 0.0
        status = int(status_line.split()[1])
        length, retry_after = 0, 1.0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "retry-after":
                retry_after = float(value)
        await reader.readexactly(length)
        return status, retry_after

    async def run() -> tuple[float, int, int, float]:
        queue = list(reversed(bodies))
        retries = failures = 0

        async def worker() -> None:
            nonlocal retries, failures
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while queue:
                    body = queue.pop()
                    for _ in range(20):
                        status, retry_after = await post(reader, writer, body)
                        if status == 0:
                            retries += 1
                            writer.close()
                            reader, writer = await asyncio.open_connection("127.0.0.1", port)
                            continue
                        if status == 200:
                            break
                        if status != 503:
                            failures += 1
                            break
                        retries += 1
                        await asyncio.sleep(retry_after)
            finally:
                writer.close()

        go.wait()
        cpu0 = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.monotonic(), retries, failures, time.process_time() - cpu0

    out.put(asyncio.run(run()))


def _grpc_exporter(port: int, key: str, bodies: list[bytes], concurrency: int, go: Any, out: Any) -> None:
    """One client process: ``concurrency`` gRPC channels, a call in flight on each; UNAVAILABLE is retried after the
    server's RetryInfo, as the OTel SDKs do."""
    import grpc
    from google.rpc.error_details_pb2 import RetryInfo

    async def run() -> tuple[float, int, int, float]:
        queue = list(reversed(bodies))
        retries = failures = 0
        metadata = (("x-project-key", key),)
        # One channel (one HTTP/2 connection) per exporter, as each app process has its own, like the HTTP client's
        # keep-alive connections.
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(concurrency)]
        for channel in channels:
            await channel.channel_ready()

        async def worker(channel: Any) -> None:
            nonlocal retries, failures
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            while queue:
                body = queue.pop()
                for _ in range(20):
                    try:
                        await export(body, metadata=metadata, timeout=120)
                        break
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() != grpc.StatusCode.UNAVAILABLE:
                            failures += 1
                            break
                        retries += 1
                        raw = dict(exc.trailing_metadata() or ()).get("google.rpc.retryinfo-bin")
                        delay = RetryInfo.FromString(raw).retry_delay.seconds if raw else 1
                        await asyncio.sleep(delay)

        go.wait()
        cpu0 = time.process_time()
        await asyncio.gather(*(worker(c) for c in channels))
        finished = time.monotonic()
        for channel in channels:
            await channel.close()
        return finished, retries, failures, time.process_time() - cpu0

    out.put(asyncio.run(run()))


def end_to_end(
    url: str,
    key: str,
    bodies: list[bytes],
    args: argparse.Namespace,
    postmaster: int | None,
    transport: str = "http",
    workers: int = 1,
) -> dict[str, Any]:
    port = free_port()
    grpc_port = free_port() if transport == "grpc" else 0
    client, target = (_grpc_exporter, grpc_port) if transport == "grpc" else (_exporter, port)
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(url, port, Path(data_dir), args.write_connections, grpc_port, workers)
        try:
            rss_idle = tree_rss(server.pid, "VmRSS")
            cpu0 = proc_cpu_seconds(server.pid)
            ctx = multiprocessing.get_context("fork")
            go, out = ctx.Event(), ctx.Queue()
            share = [bodies[i :: args.processes] for i in range(args.processes)]
            procs = [ctx.Process(target=client, args=(target, key, part, args.concurrency, go, out)) for part in share]
            for p in procs:
                p.start()
            time.sleep(1.0)  # let the clients import and connect before the clock starts
            pg0 = postgres_cpu_seconds(postmaster)
            t0 = time.monotonic()
            go.set()
            results = [out.get(timeout=600) for _ in procs]
            for p in procs:
                p.join(30)
            seconds = max(r[0] for r in results) - t0
            cpu = proc_cpu_seconds(server.pid) - cpu0
            pg1 = postgres_cpu_seconds(postmaster)
            pg_cpu = None if pg0 is None or pg1 is None else pg1 - pg0
            peak = tree_rss(server.pid, "VmHWM")
            writer_connections = count_writer_connections(url)
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
    return {
        "seconds": seconds,
        "retries": sum(r[1] for r in results),
        "failures": sum(r[2] for r in results),
        "server_cpu": cpu,
        "postgres_cpu": pg_cpu,
        "client_cpu": sum(r[3] for r in results),
        "rss_idle": rss_idle,
        "rss_peak": peak,
        "writer_connections": writer_connections,
    }


def count_writer_connections(url: str) -> dict[str, int]:
    """The server's database connections by application name, at the end of a run (idle ones stay pooled)."""
    import asyncpg

    async def run() -> dict[str, int]:
        conn = await asyncpg.connect(**_connect_params(url))
        try:
            rows = await conn.fetch(
                "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() GROUP BY 1"
            )
            return {str(r[0]) or "(sqlalchemy)": int(r[1]) for r in rows}
        finally:
            await conn.close()

    return asyncio.run(run())


# -- main ---------------------------------------------------------------------------------------------------


async def _prepare(admin_url: str, in_place: bool = False) -> tuple[str, int, str]:
    return await prepare_database(admin_url, in_place)


def run(args: argparse.Namespace, admin_url: str, postmaster: int | None = None) -> None:
    t = time.perf_counter()
    bodies = make_bodies(args.spans, args.batch)
    url, project_id, key = asyncio.run(_prepare(admin_url, args.in_place))
    worker_counts = [int(w) for w in str(args.workers).split(",") if w.strip()]
    rows = flatten(bodies, project_id)
    n = len(rows)
    print(
        f"data: {n} spans in {len(bodies)} requests of {args.batch} ({sum(map(len, bodies)) / 1e6:.1f} MB protobuf), "
        f"{n // SPANS_PER_TRACE} traces; prepared in {time.perf_counter() - t:.1f} s; load {os.getloadavg()[0]:.2f}"
    )
    try:
        results: list[tuple[str, float, str]] = []
        raw_pg_cpu: list[float | None] = []
        for connections in () if args.skip_raw else (1, 2):
            asyncio.run(reset_tables(url))
            seconds, pg_cpu = asyncio.run(raw_copy(url, rows, connections, args.chunk, postmaster))
            raw_pg_cpu.append(pg_cpu)
            stored, _ = asyncio.run(count_rows(url))
            assert stored == n, f"raw COPY stored {stored} of {n} rows"
            results.append((f"raw COPY, {connections} connection{'s' if connections > 1 else ''}", seconds, ""))
        exporters = args.processes * args.concurrency
        runs: dict[str, dict[str, Any]] = {}
        plan = [("http", w) for w in worker_counts] + ([] if args.skip_grpc else [("grpc", worker_counts[0])])
        for transport, workers in plan:
            asyncio.run(reset_tables(url))
            name = f"{transport}/{workers}"
            runs[name] = end_to_end(url, key, bodies, args, postmaster, transport, workers)
            stored, records = asyncio.run(count_rows(url))
            assert stored == n, f"end to end over {transport} stored {stored} of {n} spans"
            assert records == -(-n // SPANS_PER_TRACE), f"{records} request records for {n} spans"
            label = f"end to end {'OTLP/HTTP' if transport == 'http' else 'OTLP/gRPC'}, {exporters} exporters"
            label += f", {workers} worker{'s' if workers > 1 else ''}"
            e2e = runs[name]
            results.append((label, e2e["seconds"], f"{e2e['rss_peak'] / 2**20:.0f} MiB"))
        e2e = runs[f"http/{worker_counts[0]}"]
        raw1 = results[0][1] if not args.skip_raw else None
        print()
        widths = (7, 7, 8, 7, 15)
        header = ("rows", "seconds", "spans/s", "e2e/raw", "server peak RSS")
        print(f"| {'path':52} | " + " | ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)) + " |")
        print(f"|{'-' * 54}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 9}|{'-' * 17}|")
        for label, seconds, rss in results:
            ratio = f"{raw1 / seconds:.2f}" if label.startswith("end") and raw1 else ""
            print(f"| {label:52} | {n:>7} | {seconds:>7.2f} | {n / seconds:>8,.0f} | {ratio:>7} | {rss:>15} |")
        print()
        us = 1e6 / n
        pg = "n/a (remote)" if e2e["postgres_cpu"] is None else f"{e2e['postgres_cpu'] * us:.1f} us"
        if raw_pg_cpu and raw_pg_cpu[0] is not None:
            pg += f" (raw COPY: {raw_pg_cpu[0] * us:.1f} us)"
        if not args.skip_raw:
            print(f"end to end vs raw on 2 connections: {results[1][1] / e2e['seconds']:.2f}")
        print(
            f"CPU per span: server {e2e['server_cpu'] * us:.1f} us, postgres {pg}, clients "
            f"{e2e['client_cpu'] * us:.1f} us (2 cores give {2 * e2e['seconds'] * us:.1f} us of wall time per span)"
        )
        print(
            f"server RSS idle {e2e['rss_idle'] / 2**20:.0f} MiB; 503 retries {e2e['retries']}, "
            f"failures {e2e['failures']}; {records} request records; load {os.getloadavg()[0]:.2f}"
        )
        for name, run_ in runs.items():
            print(f"database connections at the end of {name} (transport/workers): {run_['writer_connections']}")
        if not args.skip_grpc:
            grpc_run = runs[f"grpc/{worker_counts[0]}"]
            ratio = e2e["seconds"] / grpc_run["seconds"]
            print(
                f"OTLP/gRPC vs OTLP/HTTP: {n / grpc_run['seconds']:,.0f} vs {n / e2e['seconds']:,.0f} spans/s = "
                f"{ratio:.2f}x "
                f"(goal >= 0.9x); gRPC server CPU per span {grpc_run['server_cpu'] * us:.1f} us, "
                f"retries {grpc_run['retries']}, failures {grpc_run['failures']}"
            )
        if any(r["failures"] for r in runs.values()):
            raise SystemExit("some requests failed")
    finally:
        if args.in_place:
            asyncio.run(reset_tables(url))
        else:
            asyncio.run(drop_database(admin_url, url))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.select and "ingest" not in args.select:
        print("bench_ingest: not selected")
        return 0
    url = os.environ.get("PYSTRUMENT_DATABASE_URL")
    if url:
        run(args, url)
        return 0
    from pystrument_collector.db.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="pystrument-bench-") as tmp:
        os.chmod(tmp, 0o755)  # pgserver runs Postgres as its own user when we are root
        embedded = EmbeddedPostgres(Path(tmp))
        admin = embedded.start()
        postmaster = int((Path(tmp) / "pg" / "postmaster.pid").read_text().split()[0])
        try:
            run(args, admin, postmaster)
        finally:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
