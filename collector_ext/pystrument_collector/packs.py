"""Packed function spans: the one codec of ``function_spans`` (encode for the writer, decode for every reader).

The SDK's function-call spans (``pystrument.synthetic``, ~90% of all spans) are not stored a row each: a row per
span costs ~570 bytes on disk (tuple header, text ids, an attributes JSONB of mostly repeated keys, a primary-key
entry), well over the 150 bytes a span that issue #18 asks for. Instead the function spans of one trace and service
in one ingest batch are stored as one *pack* (migration 0009): a row of ``function_spans`` whose ``data`` is a small
columnar JSON document, zlib-compressed:

- ``i`` the span ids, concatenated hex (a list when one is not 16 lowercase hex digits);
- ``p`` each parent: an index into this pack's spans, else the parent's id, else null;
- ``t`` start times as microsecond deltas (spans sorted by start, then id) from the pack's ``start_time``;
- ``d`` durations in integer nanoseconds (a float only when that would not give the stored float back);
- ``n`` name indexes into ``N``, the pack's names; ``k``/``s``/``m`` kind, status code and message (one value when
  all spans share it, else a list); ``c`` attribute columns (keys every span has), ``a`` the other attributes per
  span, ``e`` the events per span (both left out when all are empty).

Decoding gives back every field exactly as a ``spans`` row would have held it (ids, times to the microsecond,
durations, attributes, events, status). A pack's key is ``(project_id, trace_id, start_time, digest)``, the digest
of its document: an exporter's retry makes the same pack and is stored once.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

import msgspec

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PACK_COLUMNS = ("project_id", "trace_id", "service_name", "start_time", "end_time", "n", "digest", "data")
# Row layout the writer hands over: ``Batch.SPAN_COLUMNS`` (attributes and events as JSON text, times in
# microseconds since 2000-01-01 UTC).
_TRACE, _SPAN, _PROJECT, _PARENT, _NAME, _KIND, _START, _DURATION = range(8)
_STATUS, _MESSAGE, _SERVICE, _SYNTHETIC, _ATTRIBUTES, _EVENTS = range(8, 14)
_HEX_IDS = re.compile(r"[0-9a-f]*")
_COMPRESSION_LEVEL = 6
# A 4 kB window and small state: setting up zlib's default 256 kB of state cost ~8x the compression of a pack
# of a few hundred bytes, for the same size (repeats in a pack are near each other: keys, names, paths).
_WINDOW_BITS = 12
_MEMORY_LEVEL = 5

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


@dataclass(slots=True)
class StoredSpan:
    """One span as stored, with the fields (and names) of a ``spans`` row; function spans come out of packs."""

    project_id: int
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_time: datetime
    duration: float
    status_code: int
    status_message: str
    service_name: str
    synthetic: bool
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    start_us: int = 0  # start_time in microseconds since 2000-01-01 UTC


def _one_or_list(values: list[Any]) -> Any:
    first = values[0]
    return first if all(v == first for v in values) else values


def _spread(value: Any, n: int) -> list[Any]:
    return value if isinstance(value, list) else [value] * n


def _duration_field(seconds: float) -> int | float:
    ns = round(seconds * 1e9)
    return ns if ns / 1e9 == seconds else seconds


def _document(rows: Sequence[Sequence[Any]], start: int) -> dict[str, Any]:
    """The pack document of rows already sorted and free of repeated span ids."""
    ids = [row[_SPAN] for row in rows]
    index = {span_id: i for i, span_id in enumerate(ids)}
    names: dict[str, int] = {}
    attrs = [_decoder.decode(row[_ATTRIBUTES]) for row in rows]
    events = [row[_EVENTS] for row in rows]
    common = set(attrs[0]).intersection(*attrs[1:]) if attrs else set()
    columns = {key: [a[key] for a in attrs] for key in sorted(common)}
    # the usual case: every span has the same keys, so nothing is left per span
    rest = [{k: v for k, v in a.items() if k not in common} if len(a) > len(common) else {} for a in attrs]
    starts = [row[_START] for row in rows]
    joined = "".join(ids)
    doc: dict[str, Any] = {
        "i": joined if len(joined) == 16 * len(ids) and _HEX_IDS.fullmatch(joined) else ids,
        "p": [index.get(row[_PARENT], row[_PARENT]) if row[_PARENT] is not None else None for row in rows],
        "t": [b - a for a, b in zip([start, *starts], starts, strict=False)],
        "d": [_duration_field(row[_DURATION]) for row in rows],
        "n": [names.setdefault(row[_NAME], len(names)) for row in rows],
        "N": list(names),
        "k": _one_or_list([row[_KIND] for row in rows]),
        "s": _one_or_list([row[_STATUS] for row in rows]),
        "m": _one_or_list([row[_MESSAGE] for row in rows]),
        "c": columns,
    }
    if any(rest):
        doc["a"] = rest
    if any(e != "[]" for e in events):
        doc["e"] = [_decoder.decode(e) for e in events]
    return doc


def encode_pack(rows: Iterable[Sequence[Any]]) -> tuple[Any, ...]:
    """One pack row (``PACK_COLUMNS`` order) from span rows of one project, trace and service.

    Spans are sorted by start time and id; a span id seen twice keeps its first row. Times stay integer
    microseconds since 2000-01-01 UTC (the writer's ``timestamptz`` encoding)."""
    unique: dict[str, Sequence[Any]] = {}
    for row in rows:
        unique.setdefault(row[_SPAN], row)
    ordered = sorted(unique.values(), key=lambda row: (row[_START], row[_SPAN]))
    if not ordered:
        raise ValueError("a pack needs at least one span")
    first = ordered[0]
    start = first[_START]
    end = max(row[_START] + max(0, int(row[_DURATION] * 1e6 + 0.999999)) for row in ordered)
    text = _encoder.encode(_document(ordered, start))
    digest = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)
    deflate = zlib.compressobj(_COMPRESSION_LEVEL, zlib.DEFLATED, _WINDOW_BITS, _MEMORY_LEVEL)
    data = deflate.compress(text) + deflate.flush()
    return (first[_PROJECT], first[_TRACE], first[_SERVICE], start, end, len(ordered), digest, data)


def pack_rows(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Pack rows (``PACK_COLUMNS`` order), one per (project, trace, service) of the span rows given."""
    groups: dict[tuple[Any, str, str], list[Sequence[Any]]] = {}
    for row in rows:
        groups.setdefault((row[_PROJECT], row[_TRACE], row[_SERVICE]), []).append(row)
    return [encode_pack(group) for group in groups.values()]


def _load(data: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = _decoder.decode(zlib.decompress(data))
    return doc


def _ids(doc: dict[str, Any]) -> list[str]:
    ids = doc["i"]
    if isinstance(ids, list):
        return ids
    return [ids[i : i + 16] for i in range(0, len(ids), 16)]


def _starts(doc: dict[str, Any], start_us: int) -> list[int]:
    return list(accumulate(doc["t"], initial=start_us))[1:]


def pack_span_starts(start: datetime | int, data: bytes) -> list[tuple[str, int]]:
    """``(span_id, start µs)`` of each span in a pack: what the writer checks a resent span against."""
    doc = _load(data)
    return list(zip(_ids(doc), _starts(doc, as_microseconds(start)), strict=True))


def as_microseconds(value: datetime | int) -> int:
    """A ``timestamptz`` (a datetime, or the writer's integer microseconds) as microseconds since 2000-01-01."""
    if isinstance(value, int):
        return value
    delta = value - PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(slots=True)
class PackColumns:
    """A pack's spans column by column, for readers that aggregate many packs (the flame graph): no object per
    span. ``attributes`` holds the keys asked for, ``None`` where a span lacks one."""

    span_ids: list[str]
    parent_span_ids: list[str | None]
    names: list[str]
    starts_us: list[int]
    durations: list[float]
    attributes: dict[str, list[Any]]


def _attribute_columns(doc: dict[str, Any], keys: Sequence[str], n: int) -> dict[str, list[Any]]:
    columns = doc["c"]
    extra = doc.get("a")
    attributes = {}
    for key in keys:
        if key in columns:
            attributes[key] = columns[key]
        else:
            attributes[key] = [a.get(key) for a in extra] if extra else [None] * n
    return attributes


def decode_pack_columns(start: datetime | int, data: bytes, keys: Sequence[str]) -> PackColumns:
    """The ids, parents, names, starts (µs since 2000-01-01), durations and the ``keys`` attributes of a pack."""
    doc = _load(data)
    ids = _ids(doc)
    names = doc["N"]
    return PackColumns(
        span_ids=ids,
        parent_span_ids=[p if p is None or p.__class__ is str else ids[p] for p in doc["p"]],
        names=[names[i] for i in doc["n"]],
        starts_us=_starts(doc, as_microseconds(start)),
        durations=[d / 1e9 if d.__class__ is int else float(d) for d in doc["d"]],
        attributes=_attribute_columns(doc, keys, len(ids)),
    )


@dataclass(slots=True)
class PackTree:
    """A pack's call structure as stored, for a reader that merges many packs by call path (the aggregated flame
    graph) with no id, name or time converted per span: ``parents[i]`` is the index of span ``i``'s parent when the
    parent is in this pack, else the parent's id (or None); ``name_of[i]`` indexes ``names``; ``durations[i]`` is
    integer nanoseconds or float seconds. Spans are in start order, so a parent in the pack usually comes first."""

    parents: list[int | str | None]
    name_of: list[int]
    names: list[str]
    durations: list[int | float]
    attributes: dict[str, list[Any]]


def decode_pack_tree(data: bytes, keys: Sequence[str]) -> PackTree:
    """The parents, names, durations and the ``keys`` attributes of a pack, as stored (see ``PackTree``)."""
    doc = _load(data)
    name_of = doc["n"]
    return PackTree(
        parents=doc["p"],
        name_of=name_of,
        names=doc["N"],
        durations=doc["d"],
        attributes=_attribute_columns(doc, keys, len(name_of)),
    )


def decode_pack(
    project_id: int, trace_id: str, service_name: str, start: datetime | int, data: bytes
) -> list[StoredSpan]:
    """The spans of one pack, in start order, with every field as it was written."""
    doc = _load(data)
    ids = _ids(doc)
    n = len(ids)
    starts = _starts(doc, as_microseconds(start))
    names = doc["N"]
    kinds = _spread(doc["k"], n)
    statuses = _spread(doc["s"], n)
    messages = _spread(doc["m"], n)
    columns = doc["c"]
    extra = doc.get("a")
    events = doc.get("e")
    spans = []
    for i in range(n):
        parent = doc["p"][i]
        attributes = dict(extra[i]) if extra else {}
        for key, values in columns.items():
            attributes[key] = values[i]
        duration = doc["d"][i]
        spans.append(
            StoredSpan(
                project_id=project_id,
                trace_id=trace_id,
                span_id=ids[i],
                parent_span_id=ids[parent] if isinstance(parent, int) else parent,
                name=names[doc["n"][i]],
                kind=kinds[i],
                start_time=PG_EPOCH + timedelta(microseconds=starts[i]),
                duration=duration / 1e9 if isinstance(duration, int) else float(duration),
                status_code=statuses[i],
                status_message=messages[i],
                service_name=service_name,
                synthetic=True,
                attributes=attributes,
                events=list(events[i]) if events else [],
                start_us=starts[i],
            )
        )
    return spans


__all__ = [
    "PACK_COLUMNS",
    "PackColumns",
    "StoredSpan",
    "as_microseconds",
    "decode_pack",
    "decode_pack_columns",
    "encode_pack",
    "pack_rows",
    "pack_span_starts",
]
