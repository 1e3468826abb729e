"""Span budget: what building function spans for every request costs, with and without ``PYSTRUMENT_SPAN_BUDGET``.

An endpoint whose requests each make ~40 function spans (a 40-deep call chain around a 10 ms wait, with
``min_span_ms=0``), driven by 4 threads for a few seconds, in one process per configuration, through a real
``BatchSpanProcessor`` and OTLP/HTTP exporter to a local sink (its own process): ``OTel only`` (no pystrument, the
baseline), ``no budget`` (``span_budget=1``) and a budget of 0.05 of one core (the default until issue #14,
now 0.03). Runs alternate (A B C A B C)
so that drift on a shared machine hits all alike. Reported per configuration: requests per second, process CPU per
request (every thread: requests, sampler, span worker, exporter), the share of requests that kept their function
spans, and the OTLP bytes exported per request. Positional words select benchmarks: this one runs when there are
none or one of them is ``budget``. ``--quick`` shortens the runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from bench_sdk import free_port, run_sink, wait_for

CONFIGS = {"OTel only": -1.0, "no budget": 1.0, "budget 0.05": 0.05}  # -1: pystrument not configured
THREADS = 4
DEPTH = 40


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", nargs="*", help="benchmark names to run (this one is 'budget')")
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per run (default 6)")
    parser.add_argument("--sink-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=float, help=argparse.SUPPRESS)  # internal: one run with this budget
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    args, _unknown = parser.parse_known_args(argv)
    return args


def deep(levels: int) -> None:
    if levels:
        deep(levels - 1)
    else:
        time.sleep(0.01)


def one_run(budget: float, port: int, tag: str, seconds: float) -> dict[str, Any]:
    """In a fresh process: drive the endpoint for ``seconds`` and measure."""
    import pystrument
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/{tag}/v1/traces"))
    )
    if budget >= 0:
        pystrument.configure(provider, span_budget=budget, min_span_ms=0, slow_ms=60_000)
    tracer = provider.get_tracer("bench")
    counts = {"requests": 0, "kept": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def drive() -> None:
        while time.monotonic() < deadline:
            with tracer.start_as_current_span("GET /deep", kind=SpanKind.SERVER) as span:
                deep(DEPTH)
            kept = bool((span.attributes or {}).get("pystrument.function_spans"))  # type: ignore[attr-defined]
            with lock:
                counts["requests"] += 1
                counts["kept"] += kept

    cpu0, t0 = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=drive) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.force_flush(30_000)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    provider.shutdown()
    n = max(1, counts["requests"])
    return {"requests_per_s": n / wall, "cpu_ms_per_request": cpu * 1000 / n, "kept_share": counts["kept"] / n, "n": n}


def sink_counts(port: int) -> dict[str, list[int]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        counts: dict[str, list[int]] = json.loads(response.read())
    return counts


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.sink_port is not None and args.run is None:
        run_sink(args.sink_port)
        return 0
    if args.run is not None:
        print(json.dumps(one_run(args.run, args.sink_port, args.tag, args.seconds)))
        return 0
    if args.select and "budget" not in args.select:
        return 0
    seconds = args.seconds / 2 if args.quick else args.seconds
    port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink-port", str(port)])
    try:
        wait_for(port, "/", sink)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
        for round_ in range(2):
            for name, budget in CONFIGS.items():
                tag = f"{name.replace(' ', '-')}-{round_}"
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--run",
                        str(budget),
                        "--sink-port",
                        str(port),
                        "--tag",
                        tag,
                        "--seconds",
                        str(seconds),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                result = json.loads(out.strip().splitlines()[-1])
                result["bytes"] = sink_counts(port).get(tag, [0, 0])[1]
                results[name].append(result)
    finally:
        sink.terminate()
        sink.wait()
    print(
        f"\nbench_span_budget: {THREADS} threads, {DEPTH}-deep calls around a 10 ms wait, "
        f"{seconds:g} s per run, 2 runs each"
    )
    print(
        "\n| configuration | requests/s | process CPU per request | requests keeping function spans "
        "| OTLP KiB per request |"
    )
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        rps = statistics.mean(r["requests_per_s"] for r in runs)
        cpu = statistics.mean(r["cpu_ms_per_request"] for r in runs)
        kept = statistics.mean(r["kept_share"] for r in runs)
        kib = statistics.mean(r["bytes"] / r["n"] / 1024 for r in runs)
        print(f"| {name} | {rps:.0f} | {cpu:.2f} ms | {kept:.0%} | {kib:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
