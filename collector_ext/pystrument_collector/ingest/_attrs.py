"""Serialized OTLP ``KeyValue`` → a JSON object member (``"key":value``), scrubbed, cached by its bytes.

Most attributes repeat byte for byte across spans (``code.file.path``, ``pystrument.synthetic``, the HTTP
method), so the result is cached on the raw bytes and a span's ``attributes`` JSON is a join of cached
strings. Keys whose values keep changing (self times, paths, CPU times) are noticed and no longer cached, so
they cannot crowd out the constant ones; doubles, the usual measurement type, are decoded straight from a
cached key prefix. A miss decodes the common shapes (string, bool, int, double) from the wire; anything
else (arrays, maps, bytes, empty keys, unusual encodings) goes through the generated ``KeyValue`` class, so
every input gets the exact protobuf meaning.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from pystrument_collector.ingest._batch import clean_text
from pystrument_collector.ingest._errors import PayloadError
from pystrument_collector.ingest._redact import REDACTED, URL_KEYS, is_sensitive_key, scrub_url, scrub_value

# Arrays and maps nested deeper than this are stored as TOO_DEEP, in protobuf and JSON alike.
MAX_VALUE_DEPTH = 32
TOO_DEEP = f"[truncated: nested deeper than {MAX_VALUE_DEPTH} levels]"
MAX_CACHED = 50_000
MAX_KEYS = 10_000
# The caches are bounded in bytes too: an attribute (or key) larger than this is decoded every time, never kept,
# and the members' total size is capped, so distinct huge values cannot pile up in memory.
MAX_CACHED_ATTRIBUTE_BYTES = 2048
MAX_CACHED_KEY_BYTES = 256
MAX_CACHED_BYTES = 32 * 1024 * 1024
VOLATILE_AFTER = 1_000  # distinct values seen for a key before its values stop being cached
_encode = msgspec.json.Encoder().encode
_double = struct.Struct("<d").unpack_from

# raw KeyValue bytes → JSON member text / (key, value) for the request-record mapping.
_members: dict[bytes, str] = {}
_pairs: dict[bytes, tuple[str, Any]] = {}
_cached_bytes = [0]  # raw + member text held by ``_members``/``_pairs``


class _Key:
    """What is known about one attribute key."""

    __slots__ = ("key", "misses", "mode", "prefix")

    def __init__(self, key: str) -> None:
        self.key = key
        self.prefix = _encode(key).decode() + ":"  # the JSON member's ``"key":``
        self.mode = 1 if is_sensitive_key(key) else 2 if key in URL_KEYS else 0  # 1 redact, 2 scrub URL
        self.misses = 0


# raw key bytes → _Key; ``0a <len> <key> 12 09`` (a KeyValue up to a 9-byte double AnyValue) → _Key.
_keys: dict[bytes, _Key] = {}
_double_prefixes: dict[bytes, _Key] = {}


def any_value(v: Any, depth: int = 0) -> Any:
    """A generated ``AnyValue`` as a plain JSON value; arrays and maps deeper than ``MAX_VALUE_DEPTH`` become
    ``TOO_DEEP`` (the same in OTLP/JSON, see ``_otlp_json.any_value``)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return clean_text(v.string_value)
    if which == "int_value":
        return v.int_value
    if which == "bool_value":
        return v.bool_value
    if which == "double_value":
        return v.double_value
    if which == "array_value":
        if depth >= MAX_VALUE_DEPTH:
            return TOO_DEEP
        return [any_value(x, depth + 1) for x in v.array_value.values]
    if which == "kvlist_value":
        if depth >= MAX_VALUE_DEPTH:
            return TOO_DEEP
        return {clean_text(kv.key): any_value(kv.value, depth + 1) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def _fields(raw: bytes) -> Any:
    """(field number, wire type, value) of each field of a serialized message; ValueError/IndexError if malformed."""
    pos, n = 0, len(raw)
    while pos < n:
        tag, pos = _varint(raw, pos)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(raw, pos)
        elif wire == 1:
            value, pos = raw[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(raw, pos)
            value, pos = raw[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = raw[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if pos > n:
            raise ValueError("truncated")
        yield number, wire, value


def _text(raw: bytes) -> str:
    try:
        return clean_text(raw.decode())
    except UnicodeDecodeError:
        raise PayloadError("an attribute string is not valid UTF-8") from None


def _wire_any(raw: bytes, depth: int) -> Any:
    """An ``AnyValue`` read from its bytes by hand, for values nested deeper than the protobuf parser goes (its
    recursion limit is 100 messages, 33 map levels): same meaning as ``any_value``, ``TOO_DEEP`` beyond."""
    value: Any = None
    for number, wire, data in _fields(raw):
        if number == 1 and wire == 2:
            value = _text(data)
        elif number == 2 and wire == 0:
            value = data != 0
        elif number == 3 and wire == 0:
            value = data - (1 << 64) if data >= 1 << 63 else data
        elif number == 4 and wire == 1:
            value = _double(data)[0]
        elif number in (5, 6) and wire == 2:
            if depth >= MAX_VALUE_DEPTH:
                value = TOO_DEEP
            elif number == 5:
                value = [_wire_any(x, depth + 1) for n, w, x in _fields(data) if n == 1 and w == 2]
            else:
                value = dict(_wire_kv(x, depth + 1) for n, w, x in _fields(data) if n == 1 and w == 2)
        elif number == 7 and wire == 2:
            value = base64.b64encode(data).decode()
    return value


def _wire_kv(raw: bytes, depth: int) -> tuple[str, Any]:
    key, value = "", None
    for number, wire, data in _fields(raw):
        if number == 1 and wire == 2:
            key = _text(data)
        elif number == 2 and wire == 2:
            value = _wire_any(data, depth)
    return key, value


def _key(raw: bytes) -> _Key:
    info = _keys.get(raw)
    if info is None:
        try:
            info = _Key(clean_text(raw.decode()))
        except UnicodeDecodeError:
            raise PayloadError("an attribute key is not valid UTF-8") from None
        if len(raw) > MAX_CACHED_KEY_BYTES:
            return info
        if len(_keys) >= MAX_KEYS:
            _keys.clear()
            _double_prefixes.clear()
        _keys[raw] = info
    return info


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    """A base-128 varint at ``pos``; IndexError/ValueError when malformed (the caller falls back)."""
    result = shift = 0
    while True:
        b = raw[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def _fast(raw: bytes) -> tuple[bytes, Any] | None:
    """(key bytes, value) for the common KeyValue shapes, or None to use the generated class."""
    n = len(raw)
    if n < 2 or raw[0] != 0x0A:
        return None
    kl = raw[1]
    p = 2
    if kl >= 0x80:
        kl, p = _varint(raw, 1)
    key_end = p + kl
    key = raw[p:key_end]
    if key_end == n:
        return key, None
    if raw[key_end] != 0x12:
        return None
    vl = raw[key_end + 1]
    q = key_end + 2
    if vl >= 0x80:
        vl, q = _varint(raw, key_end + 1)
    if q + vl != n:
        return None
    if vl == 0:
        return key, None
    tag = raw[q]
    if tag == 0x0A:  # string_value
        sl = raw[q + 1]
        s = q + 2
        if sl >= 0x80:
            sl, s = _varint(raw, q + 1)
        if s + sl != n:
            return None
        try:
            return key, clean_text(raw[s:n].decode())
        except UnicodeDecodeError:
            raise PayloadError(f"attribute {key!r} has a string value that is not valid UTF-8") from None
    if tag == 0x10:  # bool_value
        if q + 2 == n and raw[q + 1] < 2:
            return key, raw[q + 1] == 1
        return None
    if tag == 0x18:  # int_value (int64, two's complement in 10 bytes when negative)
        value, end = _varint(raw, q + 1)
        if end != n:
            return None
        return key, value - (1 << 64) if value >= 1 << 63 else value
    if tag == 0x21 and q + 9 == n:  # double_value
        if p == 2 and vl == 9:
            # ``0a <len> <key> 12 09`` then ``21`` + 8 bytes: later doubles of this key skip the parse.
            _double_prefixes.setdefault(raw[: n - 9], _key(key))
        return key, _double(raw, q + 1)[0]
    return None


def _slow(raw: bytes) -> tuple[str, Any]:
    try:
        kv = KeyValue.FromString(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:
        try:  # nested beyond the parser's recursion limit, or really malformed
            return _wire_kv(raw, 0)
        except (IndexError, ValueError, struct.error):
            raise PayloadError(f"an attribute is not a valid OTLP KeyValue: {exc}") from None
    return clean_text(kv.key), any_value(kv.value)


def _member(prefix: str, value: Any) -> str:
    if value is None:
        return prefix + "null"
    if value is True:
        return prefix + "true"
    if value is False:
        return prefix + "false"
    return prefix + _encode(value).decode()  # non-finite doubles become null


def _decode(raw: bytes) -> tuple[str, str, Any]:
    """Decode, scrub and encode one attribute, caching it unless its key's values keep changing.

    Returns (JSON member text, key, value).
    """
    if len(raw) > 10 and raw[-9] == 0x21:
        info = _double_prefixes.get(raw[:-9])
        if info is not None and not info.mode:
            value = _double(raw, len(raw) - 8)[0]
            return info.prefix + (repr(value) if value - value == 0.0 else "null"), info.key, value
    try:
        fast = _fast(raw)
    except (IndexError, ValueError):
        fast = None
    if fast is not None:
        info = _key(fast[0])
        value = fast[1]
    else:
        key, value = _slow(raw)
        info = _key(key.encode())
    if info.mode == 1:
        value = REDACTED
    elif info.mode == 2 and isinstance(value, str):
        value = scrub_url(value)
    elif isinstance(value, str | dict | list):
        value = scrub_value(value)
    member = _member(info.prefix, value)
    if info.misses < VOLATILE_AFTER and len(raw) <= MAX_CACHED_ATTRIBUTE_BYTES:
        info.misses += 1
        size = 2 * len(raw) + len(member)
        if len(_members) >= MAX_CACHED or _cached_bytes[0] + size > MAX_CACHED_BYTES:
            _members.clear()
            _pairs.clear()
            _cached_bytes[0] = 0
        _members[raw] = member
        _pairs[raw] = (info.key, value)
        _cached_bytes[0] += size
    return member, info.key, value


def pairs(raws: Any) -> dict[str, Any]:
    """The attributes as a dict of scrubbed values (for request-record mapping); last duplicate wins."""
    out: dict[str, Any] = {}
    for r in raws:
        pair = _pairs.get(r)
        if pair is None:
            _, key, value = _decode(r)
            out[key] = value
        else:
            out[pair[0]] = pair[1]
    return out
