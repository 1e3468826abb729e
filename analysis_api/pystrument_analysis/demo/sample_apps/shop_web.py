"""shop-web: a small Flask shop with the bottlenecks real shops have, for ``pystrument demo``.

``pystrument demo`` copies this file next to its SQLite database and runs it under
``opentelemetry-instrument``; it imports nothing of pystrument. The slow parts are deliberate:
an N+1 query loop over an unindexed table, a report rendered by a big Jinja2 loop, a
recommendation endpoint that does its math in pure Python, and a stock reservation that queues
concurrent requests on a lock around a slow section.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, abort, g, jsonify, render_template

app = Flask(__name__)

PRODUCTS = 600
CUSTOMERS = 300
ORDERS = 3000
ITEMS_PER_ORDER = 8
FEATURES = 48
DAYS = 90  # columns of the sales report: ~40 ms of template a request on a current core (the rows ~2 ms)
CATALOG_VECTORS = 8000  # ~40 ms a request on a current core: a hotspot well above the 10 ms shortest span


def get_db() -> sqlite3.Connection:
    """One SQLite connection per request, closed when the request ends."""
    if "db" not in g:
        g.db = sqlite3.connect(app.config["DB_PATH"])
    db: sqlite3.Connection = g.db
    return db


@app.teardown_appcontext
def close_db(_: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def seed_database(path: Path) -> None:
    """Create and fill the shop's tables once; ``order_items`` has no index on ``order_id`` on purpose."""
    if path.exists():
        return
    rng = random.Random(7)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    db.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);
        CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, status TEXT NOT NULL,
                             created_at TEXT NOT NULL);
        CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, product_id INTEGER NOT NULL,
                                  qty INTEGER NOT NULL, unit_price REAL NOT NULL);
        """
    )
    cities = ["Lisbon", "Osaka", "Denver", "Lagos", "Tallinn", "Quito", "Perth", "Bergen"]
    db.executemany(
        "INSERT INTO customers VALUES (?, ?, ?)",
        [(i, f"customer-{i}", rng.choice(cities)) for i in range(1, CUSTOMERS + 1)],
    )
    db.executemany(
        "INSERT INTO products VALUES (?, ?, ?)",
        [(i, f"product-{i}", round(rng.uniform(2, 300), 2)) for i in range(1, PRODUCTS + 1)],
    )
    db.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?)",
        [
            (i, rng.randint(1, CUSTOMERS), rng.choice(["paid", "shipped", "open"]), f"2024-{1 + i % 12:02d}-01")
            for i in range(1, ORDERS + 1)
        ],
    )
    db.executemany(
        "INSERT INTO order_items (order_id, product_id, qty, unit_price) VALUES (?, ?, ?, ?)",
        [
            (o, rng.randint(1, PRODUCTS), rng.randint(1, 5), round(rng.uniform(2, 300), 2))
            for o in range(1, ORDERS + 1)
            for _ in range(ITEMS_PER_ORDER)
        ],
    )
    db.commit()
    db.close()
    tmp.replace(path)


# --- /orders: the N+1 query loop -------------------------------------------------------------


def fetch_order_items(db: sqlite3.Connection, order_id: int) -> list[tuple[Any, ...]]:
    """One query per order, each scanning ``order_items`` (no index on ``order_id``)."""
    cursor = db.cursor()
    cursor.execute("SELECT product_id, qty, unit_price FROM order_items WHERE order_id = ?", (order_id,))
    return cursor.fetchall()


def load_recent_orders(db: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    cursor = db.cursor()
    cursor.execute("SELECT id, customer_id, status, created_at FROM orders ORDER BY id DESC LIMIT ?", (limit,))
    orders = cursor.fetchall()
    result = []
    for order_id, customer_id, status, created_at in orders:
        items = fetch_order_items(db, order_id)  # the N+1: a JOIN would be one query
        total = sum(qty * price for _, qty, price in items)
        result.append(
            {
                "id": order_id,
                "customer": customer_id,
                "status": status,
                "created_at": created_at,
                "items": len(items),
                "total": round(total, 2),
            }
        )
    return result


@app.get("/orders")
def list_orders() -> Any:
    return jsonify(orders=load_recent_orders(get_db(), limit=25))


# --- /reports/sales: a big template loop ---------------------------------------------------------


#: The report's daily shape, one factor a day: the template scales it for every row, cell by cell.
DAILY_SHAPE = [(1 + math.sin(d)) / 2 for d in range(DAYS)]


def build_sales_rows(db: sqlite3.Connection) -> list[dict[str, Any]]:
    cursor = db.cursor()
    cursor.execute(
        """
        SELECT c.city, o.status, substr(o.created_at, 1, 7) AS month, count(*) AS orders
        FROM orders o JOIN customers c ON c.id = o.customer_id
        GROUP BY c.city, o.status, month ORDER BY c.city, month
        """
    )
    rows = cursor.fetchall()
    return [{"city": city, "status": status, "month": month, "orders": n} for city, status, month, n in rows]


def format_money(value: float) -> str:
    """Jinja filter, called once per cell of the report."""
    return f"${value:,.2f}"


app.jinja_env.filters["money"] = format_money


@app.get("/reports/sales")
def sales_report() -> str:
    rows = build_sales_rows(get_db())
    return render_template("sales_report.html", rows=rows, shape=DAILY_SHAPE)


# --- /recommendations: CPU-bound pure Python --------------------------------------------------


def product_vectors() -> list[list[float]]:
    rng = random.Random(11)
    return [[rng.random() for _ in range(FEATURES)] for _ in range(CATALOG_VECTORS)]


VECTORS = product_vectors()


def cosine_similarity(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def compute_recommendations(customer_id: int, count: int = 10) -> list[int]:
    """Scores every product against the customer's taste vector, in pure Python, on every request."""
    rng = random.Random(customer_id)
    taste = [rng.random() for _ in range(FEATURES)]
    scored = sorted(((cosine_similarity(taste, vec), pid) for pid, vec in enumerate(VECTORS, 1)), reverse=True)
    return [pid for _, pid in scored[:count]]


@app.get("/recommendations/<int:customer_id>")
def recommendations(customer_id: int) -> Any:
    return jsonify(customer=customer_id, products=compute_recommendations(customer_id))


# --- /stock/<id>/reserve: requests queue on a lock -------------------------------------------------


# The legacy warehouse system takes one client at a time, so reservations go through it one by one.
LEGACY_WAREHOUSE = threading.BoundedSemaphore(1)


def call_legacy_warehouse(product_id: int) -> int:
    """The slow section held under the lock (~60 ms)."""
    time.sleep(0.06)
    return 40 + product_id % 17


def reserve_stock(product_id: int) -> int:
    with LEGACY_WAREHOUSE:  # concurrent reservations wait here for the one in progress
        return call_legacy_warehouse(product_id)


@app.post("/stock/<int:product_id>/reserve")
@app.get("/stock/<int:product_id>/reserve")
def reserve(product_id: int) -> Any:
    return jsonify(product=product_id, reserved=1, left=reserve_stock(product_id))


# --- fast endpoints ---------------------------------------------------------------------------


@app.get("/products/<int:product_id>")
def product_detail(product_id: int) -> Any:
    cursor = get_db().cursor()
    cursor.execute("SELECT id, name, price FROM products WHERE id = ?", (product_id,))
    row = cursor.fetchone()
    if row is None:
        abort(404)
    return jsonify(id=row[0], name=row[1], price=row[2])


@app.get("/health")
def health() -> Any:
    return jsonify(status="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description="shop-web demo app")
    parser.add_argument("--db", type=Path, required=True, help="SQLite database file (created when missing)")
    parser.add_argument("--port", type=int, default=None, help="serve on 127.0.0.1:PORT")
    parser.add_argument("--seed-only", action="store_true", help="create the database and exit")
    args = parser.parse_args()
    seed_database(args.db)
    if args.seed_only:
        return
    if args.port is None:
        parser.error("--port is required to serve")
    app.config["DB_PATH"] = str(args.db)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
