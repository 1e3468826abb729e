"""Read a request body raw, decompressing gzip/deflate as it streams, never holding more than the bound."""

from __future__ import annotations

import os
import zlib
from typing import Any

from pystrument_collector.ingest import PayloadError, PayloadTooLarge

ENV_MAX_BODY_BYTES = "PYSTRUMENT_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


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


def _decompressor(encoding: str) -> Any:
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise PayloadError(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")


async def read_body(request: Any, limit: int) -> bytes:
    """The decompressed body; ``PayloadTooLarge`` as soon as it would exceed ``limit``."""
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
        parts.append(tail)
        if not inflater.eof and wire:
            raise PayloadError(f"body is truncated {encoding} data")
    return b"".join(parts)
