"""Read a request body raw, decompressing gzip/deflate as it streams, never holding more than the bounds.

Two bounds: each body (``PYSTRUMENT_MAX_BODY_BYTES`` after decompression, 413 beyond) and the memory of all
requests in progress (``PYSTRUMENT_MAX_INFLIGHT_BYTES``, 503 with Retry-After beyond, so exporters come back
later). A request's memory is its body times what decoding makes of it: measured at worst (millions of tiny
spans or attributes) about 7x for protobuf and 15x for JSON, so bodies are counted 8x and 16x as they are
read. Mapping and writing go by chunks of spans, so that is the whole cost of a request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import zlib
from typing import Any

from pystrument_collector.ingest import Overloaded, PayloadError, PayloadTooLarge

ENV_MAX_BODY_BYTES = "PYSTRUMENT_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
ENV_MAX_INFLIGHT_BYTES = "PYSTRUMENT_MAX_INFLIGHT_BYTES"
DEFAULT_MAX_INFLIGHT_BYTES = 512 * 1024 * 1024
BUDGET_RETRY_AFTER = 1  # seconds
PROTOBUF_WEIGHT = 8  # memory per body byte, at worst, once decoded (upb arena, raw attribute strings)
JSON_WEIGHT = 16  # msgspec's Python objects for a body of tiny JSON objects


TRIM_AFTER_BYTES = 4 * 1024 * 1024


def _malloc_trim() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_TRIM = _malloc_trim()


def give_back_memory(body_bytes: int) -> None:
    """After a large request, hand the C heap's free pages back to the system (glibc's ``malloc_trim``).

    Decoding a big body allocates large strings in whichever malloc arena the mapping thread used; freed, they
    stay in the process (RSS) unless trimmed, so a burst of large exports would leave the server that much larger.
    """
    if _TRIM is not None and body_bytes >= TRIM_AFTER_BYTES:
        _TRIM(0)


def max_body_bytes() -> int:
    """The bound on a request body after decompression (``PYSTRUMENT_MAX_BODY_BYTES``, default 64 MiB)."""
    text = os.environ.get(ENV_MAX_BODY_BYTES, "")
    if not text.strip():
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{ENV_MAX_BODY_BYTES}={text!r} is not a number of bytes; set e.g. 67108864") from None
    if value <= 0:
        raise ValueError(f"{ENV_MAX_BODY_BYTES} must be positive; set e.g. 67108864")
    return value


def max_inflight_bytes(max_body: int) -> int:
    """The bound on request memory at once (``PYSTRUMENT_MAX_INFLIGHT_BYTES``, default 512 MiB)."""
    text = os.environ.get(ENV_MAX_INFLIGHT_BYTES, "").strip()
    value = DEFAULT_MAX_INFLIGHT_BYTES if not text else int(text) if text.isdigit() else -1
    if value < max_body:
        example = max(DEFAULT_MAX_INFLIGHT_BYTES, PROTOBUF_WEIGHT * max_body)
        raise ValueError(
            f"{ENV_MAX_INFLIGHT_BYTES}={text or value!r} must be a number of bytes at least "
            f"PYSTRUMENT_MAX_BODY_BYTES ({max_body}), e.g. {example}"
        )
    return value


class MemoryBudget:
    """Memory held by the requests in progress; a request that would overdraw it is refused (503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0

    def take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise Overloaded("receiver memory budget in use by other requests, retry later", BUDGET_RETRY_AFTER)
        self.used += n
        self.peak = max(self.peak, self.used)

    def give(self, n: int) -> None:
        self.used -= n


class Reservation:
    """One request's share of a :class:`MemoryBudget`, ``weight`` per body byte; ``release()`` returns it."""

    def __init__(self, budget: MemoryBudget | None, weight: int = 1) -> None:
        self.budget = budget
        self.weight = weight
        self.held = 0
        self.bytes = 0  # body bytes read under this reservation

    def take(self, n: int) -> None:
        """Reserve for ``n`` more body bytes: 413 if this request alone can never fit, 503 if others are in the way."""
        if n > 0:
            self.bytes += n
        if self.budget is None or n <= 0:
            return
        cost = n * self.weight
        if self.held + cost > self.budget.limit:
            raise PayloadTooLarge(
                f"request needs more than the receiver's memory budget ({self.budget.limit} bytes, "
                f"{self.weight}x the body); send smaller batches or protobuf"
            )
        self.budget.take(cost)
        self.held += cost

    def release(self) -> None:
        if self.budget is not None and self.held:
            self.budget.give(self.held)
            self.held = 0


def _decompressor(encoding: str) -> Any:
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise PayloadError(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")


async def read_body(request: Any, limit: int, reservation: Reservation | None = None) -> bytes:
    """The decompressed body; ``PayloadTooLarge`` as soon as it would exceed ``limit``, ``Unavailable`` as soon
    as the bytes read would overdraw the reservation's budget (the caller releases the reservation)."""
    hold = reservation or Reservation(None)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    inflater = _decompressor(encoding)
    parts: list[bytes] = []
    size = 0
    wire = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        wire += len(chunk)
        if wire > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        if inflater is None:
            hold.take(len(chunk))
            parts.append(chunk)
            size += len(chunk)
            continue
        data = chunk
        while data:
            try:
                out = inflater.decompress(data, limit - size + 1)
            except zlib.error as exc:
                raise PayloadError(f"body is not valid {encoding} data: {exc}") from None
            size += len(out)
            if size > limit:
                raise PayloadTooLarge(f"decompressed body exceeds the {limit}-byte limit")
            hold.take(len(out))
            parts.append(out)
            data = inflater.unconsumed_tail
            if inflater.eof:
                break
    if inflater is not None:
        try:
            tail = inflater.flush()
        except zlib.error as exc:
            raise PayloadError(f"body is not valid {encoding} data: {exc}") from None
        size += len(tail)
        if size > limit:
            raise PayloadTooLarge(f"decompressed body exceeds the {limit}-byte limit")
        hold.take(len(tail))
        parts.append(tail)
        if not inflater.eof and wire:
            raise PayloadError(f"body is truncated {encoding} data")
    return b"".join(parts)
