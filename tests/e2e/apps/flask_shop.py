"""A small Flask app with known slow functions, run under ``opentelemetry-instrument`` by the e2e tests.

It imports nothing of pystrument: the profiling comes from the zero-code entry point.
"""

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


@app.get("/hello")
def hello():
    return "hello"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
