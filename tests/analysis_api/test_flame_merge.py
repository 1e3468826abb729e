"""The aggregated flame graph merges a trace's one pack from its stored columns (``Merge.add_pack``): on random call
trees it must give exactly the tree the span-by-span merge gives, and hand back the packs it cannot take."""

from __future__ import annotations

import json
import random
from typing import Any

from pystrument_analysis.api.services.flame import FLAME_ATTRIBUTES, Merge, pack_spans, to_wire
from pystrument_collector.packs import decode_pack_tree, encode_pack

NAMES = [f"shop.module_{i}.function_{i}" for i in range(7)] + ["jinja2.environment.render"]
REQUEST_SPAN = "f" * 16


def _trace(rng: random.Random, trace: str, ties: bool) -> list[tuple[Any, ...]]:
    """A random call tree of function spans under a request span (not in the pack), as the writer's span rows."""
    rows: list[tuple[Any, ...]] = []
    start0 = 1_000_000_000
    open_spans: list[tuple[str, int, int]] = []  # (span id, start, end)
    for n in range(rng.randint(1, 30)):
        span_id = f"{rng.getrandbits(64):016x}"
        if open_spans and rng.random() < 0.7:
            parent, p_start, p_end = rng.choice(open_spans)
        else:
            parent, p_start, p_end = REQUEST_SPAN, start0, start0 + 100_000
        start = p_start if ties and rng.random() < 0.3 else rng.randint(p_start, max(p_start, p_end - 10))
        end = rng.randint(start, p_end)
        name = rng.choice(NAMES)
        attributes: dict[str, Any] = {"code.function.name": name, "pystrument.synthetic": True}
        if rng.random() < 0.9:
            attributes["pystrument.self_time_ms"] = rng.choice([0.0, 1.25, 7.5, (end - start) / 1000])
        if NAMES.index(name) % 3:  # a function's file is its own (or absent for all of its spans)
            attributes["code.file.path"] = f"/app/{name.split('.')[1]}.py"
        if name.startswith("jinja2"):
            attributes["pystrument.library"] = rng.choice([True, "true"])
        rows.append(
            (trace, span_id, 1, parent, name, "INTERNAL", start, (end - start) / 1e6, 0, "", "shop", True,
             json.dumps(attributes), "[]")
        )  # fmt: skip
        open_spans.append((span_id, start, end))
        if n == 0 and rng.random() < 0.2:
            open_spans.clear()  # a sibling at the top
    return rows


def _paths(merged: Merge) -> dict[tuple[str, ...], tuple[Any, ...]]:
    """The merged tree by call path (the order packs were merged in may order nodes and sums differently)."""
    functions, nodes, dropped = to_wire(merged.finish(12.5, 40), 10_000)
    assert dropped == 0
    paths: list[tuple[str, ...]] = []
    out = {}
    for i, (parent, f) in enumerate(zip(nodes.parent, nodes.function, strict=True)):
        fn = functions[f] if f >= 0 else None
        paths.append(paths[parent] + (f"{fn.name}|{fn.file}|{fn.library}",) if fn else ())
        figures = (round(nodes.total[i], 5), round(nodes.self_time[i], 5), nodes.calls[i], nodes.requests[i])
        assert paths[-1] not in out
        out[paths[-1]] = figures
    return out


def test_packs_merged_from_their_columns_give_the_span_by_span_tree() -> None:
    rng = random.Random(20261207)
    taken = refused = 0
    for _ in range(60):
        packs = []
        for t in range(rng.randint(1, 40)):
            trace = f"{t:032x}"
            packs.append((trace, encode_pack(_trace(rng, trace, ties=rng.random() < 0.5))))
        by_columns, by_spans = Merge(), Merge()
        spans: list[tuple[Any, ...]] = []
        leftover: list[tuple[Any, ...]] = []
        for trace, pack in packs:
            start, data = pack[3], pack[7]
            pack_spans(spans, trace, start, data, 0, 2**62)
            if by_columns.add_pack(trace, decode_pack_tree(data, FLAME_ATTRIBUTES)):
                taken += 1
            else:
                refused += 1
                pack_spans(leftover, trace, start, data, 0, 2**62)
        by_columns.add_spans(leftover)
        by_spans.add_spans(spans)
        assert _paths(by_columns) == _paths(by_spans)
        assert by_columns.span_count == by_spans.span_count == len(spans)
        assert by_columns.traces == by_spans.traces
    assert taken > 100 and refused > 0, (taken, refused)  # both paths exercised


def test_a_pack_whose_parent_comes_after_its_child_is_refused_untouched() -> None:
    # Equal starts are ordered by span id: the child "0…1" sorts before its parent "f…e".
    trace = "ab" * 16
    rows = [
        (trace, "f" * 15 + "e", 1, REQUEST_SPAN, "shop.views.index", "INTERNAL", 5_000, 0.01, 0, "", "shop", True,
         json.dumps({"pystrument.self_time_ms": 2.0}), "[]"),
        (trace, "0" * 15 + "1", 1, "f" * 15 + "e", "shop.db.fetch", "INTERNAL", 5_000, 0.004, 0, "", "shop", True,
         json.dumps({"pystrument.self_time_ms": 4.0}), "[]"),
    ]  # fmt: skip
    merged = Merge()
    assert not merged.add_pack(trace, decode_pack_tree(encode_pack(rows)[7], FLAME_ATTRIBUTES))
    assert merged.span_count == 0 and not merged.traces and len(merged.tree.parent) == 1
