"""catalog-api: a small FastAPI service with a classic asyncio mistake, for ``pystrument demo``.

Run by ``pystrument demo`` under ``opentelemetry-instrument``; it imports nothing of pystrument.
``/inventory`` calls a blocking function inside ``async def`` and so stalls the event loop for every
other request; ``/quote`` is a plain ``def`` route (FastAPI runs it in a worker thread); ``/catalog``
is a JSON listing big enough that serialising it is the request's main cost (~50 ms on a current core, more
than the 40 ms it awaits another service).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Response

app = FastAPI(title="catalog-api")

SKUS = [f"SKU-{i:05d}" for i in range(1, 8001)]


def build_catalog() -> list[dict[str, Any]]:
    rng = random.Random(3)
    return [
        {
            "sku": sku,
            "title": f"Product {sku[-5:]}",
            "price": round(rng.uniform(1, 500), 2),
            "tags": rng.sample(["eco", "sale", "new", "bulk", "gift", "import", "local"], 3),
            "dimensions": {"w": rng.randint(1, 90), "h": rng.randint(1, 90), "d": rng.randint(1, 90)},
        }
        for sku in SKUS
    ]


CATALOG = build_catalog()


def query_warehouse_stock(skus: list[str]) -> dict[str, int]:
    """A blocking call (think ``requests.get`` or a sync DB driver) that takes ~120 ms."""
    time.sleep(0.12)
    return {sku: int(hashlib.sha1(sku.encode()).hexdigest()[:4], 16) % 90 for sku in skus}


@app.get("/inventory")
async def inventory(limit: int = 20) -> dict[str, Any]:
    # The bug on show: a blocking call in ``async def`` stalls the event loop for every request.
    levels = query_warehouse_stock(SKUS[:limit])
    return {"levels": levels, "low_stock": sorted(sku for sku, n in levels.items() if n < 10)}


def price_with_discounts(base: float, quantity: int) -> float:
    price = base
    for tier in range(1, 20_000):
        if quantity * tier % 97 == 0:
            price *= 0.99995
    return round(price * quantity, 2)


def fetch_exchange_rate(currency: str) -> float:
    """Another slow dependency, called from a ``def`` route, so it blocks only its worker thread."""
    time.sleep(0.03)
    return {"EUR": 0.92, "JPY": 151.3, "GBP": 0.79}.get(currency, 1.0)


@app.get("/quote/{sku}")
def quote(sku: str, quantity: int = 3, currency: str = "EUR") -> dict[str, Any]:
    product = next((p for p in CATALOG if p["sku"] == sku), None)
    if product is None:
        raise HTTPException(status_code=404, detail=f"unknown sku {sku}")
    total = price_with_discounts(product["price"], quantity) * fetch_exchange_rate(currency)
    return {"sku": sku, "quantity": quantity, "currency": currency, "total": round(total, 2)}


def select_page(page: int, size: int) -> list[dict[str, Any]]:
    start = (page - 1) * size % len(CATALOG)
    return CATALOG[start : start + size]


async def load_price_overrides(page: int) -> dict[str, float]:
    """An async call to another service (think ``await client.get(...)``): ~40 ms in which the loop is free."""
    await asyncio.sleep(0.04)
    return {}


@app.get("/catalog")
async def catalog(page: int = 1, size: int = 6000) -> Response:
    overrides = await load_price_overrides(page)
    items = [{**item, "price": overrides.get(item["sku"], item["price"])} for item in select_page(page, size)]
    # The serialisation cost on show: pretty-printed JSON goes through the stdlib's pure-Python encoder.
    body = json.dumps({"page": page, "size": size, "total": len(CATALOG), "items": items}, indent=2, sort_keys=True)
    return Response(body, media_type="application/json")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description="catalog-api demo app")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
