"""Flask app for the frameworks' e2e tests: ``/r0`` ... ``/r7`` each call their own functions (see routes.py).

It imports nothing of pystrument: profiling comes from ``opentelemetry-instrument``'s entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from routes import ROUTES, define, named

app = Flask(__name__)


def view_for(route: str) -> Callable[[], ResponseReturnValue]:
    work = define(route)[f"{route}_work"]

    def view() -> ResponseReturnValue:
        return jsonify(route=route, n=work())

    return named(view, f"{route}_view")


for i in range(ROUTES):
    app.add_url_rule(f"/r{i}", f"r{i}", view_for(f"r{i}"))


@app.get("/hello")
def hello() -> ResponseReturnValue:
    return "hello"
