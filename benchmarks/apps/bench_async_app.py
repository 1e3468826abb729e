"""The FastAPI app measured by bench_sdk.py's concurrency scenario: an I/O-bound endpoint (a 50 ms await and a small
JSON body), served by uvicorn with many requests in flight.

It imports nothing of OpenTelemetry or pystrument: configurations differ only in how the server is launched.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI

app = FastAPI()

SMALL = {"ok": True, "items": [{"id": i, "name": f"item {i}"} for i in range(5)]}


@app.get("/hello")
async def hello() -> dict[str, Any]:
    return {"ok": True}


@app.get("/wait")
async def wait() -> dict[str, Any]:
    """I/O-bound: a 50 ms await (a database or HTTP call) and a small JSON body."""
    await asyncio.sleep(0.05)
    return SMALL
