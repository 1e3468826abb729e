"""Soak: sustained OTLP ingest at about half the measured maximum, then acknowledged vs stored spans.

Runs a real ``pystrument serve`` subprocess (on ``PYSTRUMENT_DATABASE_URL``, or an embedded Postgres in a temp
dir), measures the maximum spans/s for a few seconds, then holds half of it for ``--minutes`` (default 3).
Prints spans/s held, spans acknowledged vs stored (target: 0 lost) and the server's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

SPANS_PER_EXPORT = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def export_body() -> bytes:
    """One export: a SERVER request span and 49 synthetic function children, fresh random ids."""
    now = time.time_ns()
    trace_id = os.urandom(16)
    root_id = os.urandom(8)
    spans = [
        Span(
            trace_id=trace_id,
            span_id=root_id,
            name="GET /items/{id}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=now - 5_000_000,
            end_time_unix_nano=now,
            attributes=[KeyValue(key="http.route", value=AnyValue(string_value="/items/{id}"))],
        )
    ]
    for i in range(SPANS_PER_EXPORT - 1):
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=os.urandom(8),
                parent_span_id=root_id,
                name=f"app.views.step_{i % 7}",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=now - 4_000_000,
                end_time_unix_nano=now - 1_000_000,
                attributes=[KeyValue(key="pystrument.synthetic", value=AnyValue(bool_value=True))],
            )
        )
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="soak")))
    return bytes(ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString())


class Load:
    """Sender threads posting exports, optionally paced to a target rate; counts acknowledged spans."""

    def __init__(self, url: str, key: str, threads: int, spans_per_second: float | None) -> None:
        self.url, self.key, self.threads = url + "/v1/traces", key, threads
        self.interval = None if spans_per_second is None else SPANS_PER_EXPORT * threads / spans_per_second
        self.acked = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def _worker(self) -> None:
        headers = {"content-type": "application/x-protobuf", "x-project-key": self.key}
        next_at = time.monotonic()
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                body = export_body()
                for attempt in range(20):  # retry 503/connection errors like an OTLP exporter
                    try:
                        r = http.post(self.url, content=body, headers=headers)
                        if r.status_code == 200:
                            with self.lock:
                                self.acked += SPANS_PER_EXPORT
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(min(2.0, 0.05 * 2**attempt))
                else:
                    with self.lock:
                        self.failed += SPANS_PER_EXPORT
                if self.interval is not None:
                    next_at += self.interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self.stop.wait(delay)

    def run(self, seconds: float) -> float:
        """Run for ``seconds``; returns acknowledged spans per second."""
        pool = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.threads)]
        start = time.monotonic()
        for t in pool:
            t.start()
        self.stop.wait(seconds)
        self.stop.set()
        for t in pool:
            t.join(timeout=60)
        return self.acked / (time.monotonic() - start)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _stored(database_url: str, key: str) -> int:
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(database_url)
    params = dict(
        user=u.username, password=u.password, host=u.query.get("host") or u.host, port=u.port, database=u.database
    )
    conn = await asyncpg.connect(**{k: v for k, v in params.items() if v is not None})
    try:
        project = "(SELECT id FROM projects WHERE project_key = $1)"
        rows = f"SELECT count(*) FROM spans WHERE project_id = {project}"
        packed = f"SELECT coalesce(sum(n), 0) FROM function_spans WHERE project_id = {project}"  # function spans
        return int(await conn.fetchval(rows, key)) + int(await conn.fetchval(packed, key))
    finally:
        await conn.close()


def soak(database_url: str, seconds: float, probe_seconds: float = 8.0, threads: int = 4) -> dict[str, Any]:
    """Probe the maximum, hold half of it for ``seconds``; returns the figures."""
    port = _free_port()
    env = {**os.environ, "PYSTRUMENT_DATABASE_URL": database_url, "PYSTRUMENT_PORT": str(port)}
    env["PYSTRUMENT_HOST"] = "127.0.0.1"
    cmd = [sys.executable, "-c", "import sys; from pystrument_analysis.cli import main; sys.exit(main())", "serve"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("pystrument serve did not start")
            time.sleep(0.1)
        r = httpx.post(url + "/api/v1/projects", json={"name": "soak"}, timeout=10)
        r.raise_for_status()
        key = r.json()["data"]["project_key"]
        probe = Load(url, key, threads, None)
        maximum = probe.run(probe_seconds)
        target = maximum / 2
        held = Load(url, key, threads, target)
        rate = held.run(seconds)
        acked = probe.acked + held.acked
        time.sleep(0.5)
        stored = asyncio.run(_stored(database_url, key))
        rss = _peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "max_spans_per_s": maximum,
        "target_spans_per_s": target,
        "held_spans_per_s": rate,
        "seconds": seconds,
        "acknowledged": acked,
        "stored": stored,
        "lost": acked - stored,
        "unacknowledged": probe.failed + held.failed,
        "server_peak_rss_mib": rss,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to hold the load (default 3)")
    parser.add_argument("--threads", type=int, default=4, help="sender threads (default 4)")
    args = parser.parse_args(argv)
    url = os.environ.get("PYSTRUMENT_DATABASE_URL")
    embedded = data_dir = None
    if not url:
        from pystrument_collector.db.embedded import EmbeddedPostgres

        data_dir = Path(tempfile.mkdtemp(prefix="pystrument-soak-"))
        embedded = EmbeddedPostgres(data_dir)
        url = embedded.start()
    try:
        out = soak(url, args.minutes * 60, threads=args.threads)
    finally:
        if embedded is not None:
            embedded.stop()
            shutil.rmtree(str(data_dir), ignore_errors=True)
    print(
        f"soak: max {out['max_spans_per_s']:.0f} spans/s; held {out['held_spans_per_s']:.0f} spans/s "
        f"(target {out['target_spans_per_s']:.0f}) for {out['seconds'] / 60:.1f} min; "
        f"acknowledged {out['acknowledged']}, stored {out['stored']}, lost {out['lost']}, "
        f"never acknowledged {out['unacknowledged']}; server peak RSS {out['server_peak_rss_mib']:.0f} MiB"
    )
    return 0 if out["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
