"""A small Flask app with known slow functions, run under ``opentelemetry-instrument`` by the e2e tests.

It imports nothing of pystrument: the profiling comes from the zero-code entry point.
"""

import gc
import sys
import time

from flask import Flask, jsonify

app = Flask(__name__)


def load_items(n: int) -> list[int]:
    time.sleep(0.03)
    return list(range(n))


def price_item(i: int) -> float:
    return (i * 1.07) % 13


def compute_totals(n: int) -> float:
    items = load_items(n)
    deadline = time.perf_counter() + 0.03
    total = 0.0
    while time.perf_counter() < deadline:
        total += sum(price_item(i) for i in items[:50])
    return total


@app.get("/checkout")
def checkout():
    return jsonify(total=compute_totals(200))


# What a long-lived cache grows to: every full garbage collection walks it (about 40 ms for 600k lists here).
CACHE: list[list[int]] = []


def rebuild_report() -> float:
    """Fills the cache once, then forces a full collection, as a big allocation burst would; returns its seconds."""
    if not CACHE:
        CACHE.extend([i] for i in range(600_000))
    t0 = time.perf_counter()
    gc.collect()
    return time.perf_counter() - t0


@app.get("/report")
def report():
    return jsonify(gc_ms=rebuild_report() * 1000)


@app.get("/hello")
def hello():
    return "hello"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
