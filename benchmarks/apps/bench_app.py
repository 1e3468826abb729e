"""The Flask app measured by bench_sdk.py: five endpoints with different shares of Python calls, C work and waiting.

It imports nothing of OpenTelemetry or pystrument: configurations differ only in how the server is launched.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, jsonify, render_template
from flask.typing import ResponseReturnValue
from jinja2 import DictLoader

app = Flask(__name__)

PAGE = """<!doctype html>
<html><head><title>{{ title }}</title></head>
<body>
<h1>{{ title }}</h1>
<table>
{% for row in rows %}
  <tr class="{{ loop.cycle('odd', 'even') }}"><td>{{ row.id }}</td><td>{{ row.name | title }}</td>
  <td>{{ "%.2f" | format(row.price) }}</td><td>{% if row.stock > 5 %}in stock{% else %}low{% endif %}</td></tr>
{% endfor %}
</table>
</body></html>"""

app.jinja_loader = DictLoader({"page.html": PAGE})  # compiled once, cached like a file template

ROWS = [{"id": i, "name": f"item number {i}", "price": i * 1.37, "stock": i % 11} for i in range(150)]
PAYLOAD = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b", "c"], "price": i / 3} for i in range(60)]}


@app.get("/hello")
def hello() -> ResponseReturnValue:
    return "hello"


@app.get("/json")
def json_view() -> ResponseReturnValue:
    return jsonify(PAYLOAD)


@app.get("/page")
def page() -> ResponseReturnValue:
    return render_template("page.html", title="Inventory", rows=ROWS)


def price(i: int) -> float:
    return discount(i) * 1.2


def discount(i: int) -> float:
    return (i % 7) * 0.9 + tax(i)


def tax(i: int) -> float:
    return i * 0.01


def score(items: list[dict[str, Any]]) -> float:
    return sum(price(item["id"]) for item in items)


@app.get("/cpu")
def cpu() -> ResponseReturnValue:
    """Call-heavy: about 60k small Python calls."""
    total = 0.0
    for _ in range(100):
        total += score(ROWS)
    return {"total": total}


@app.get("/io")
def io() -> ResponseReturnValue:
    time.sleep(0.05)
    return "waited"


SMALL = {"ok": True, "items": [{"id": i, "name": f"item {i}"} for i in range(5)]}


@app.get("/wait")
def wait() -> ResponseReturnValue:
    """I/O-bound: a 50 ms wait (a database or HTTP call) and a small JSON body."""
    time.sleep(0.05)
    return jsonify(SMALL)
