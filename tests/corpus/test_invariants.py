"""Each fidelity invariant on small synthetic traces: one that keeps it, and ones that break it (so every check
can fail)."""

from __future__ import annotations

from typing import Any

import pytest
from corpus import invariants as inv

INTERVAL = 5.0
SITE = "/venv/lib/python3.11/site-packages"


def span(
    span_id: str,
    name: str,
    start: float,
    duration: float,
    parent: str | None = "0000000000000001",
    kind: str = "INTERNAL",
    display: str | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    """A span as the record-detail API returns it; ``start`` and ``duration`` in ms from the trace's start."""
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "display_parent_span_id": display if display is not None else parent,
        "name": name,
        "kind": kind,
        "offset": start / 1000,
        "duration": duration / 1000,
        "attributes": attributes,
    }


def function(
    span_id: str,
    name: str,
    start: float,
    duration: float,
    parent: str | None = "0000000000000001",
    library: bool = False,
    self_ms: float = 0.0,
    file: str = "/app/views.py",
    **attributes: Any,
) -> dict[str, Any]:
    return span(
        span_id,
        name,
        start,
        duration,
        parent,
        **{
            "pystrument.synthetic": True,
            "code.function.name": name,
            "code.file.path": file,
            "pystrument.library": library,
            "pystrument.self_time_ms": self_ms,
            **attributes,
        },
    )


def request(duration: float = 100.0, **attributes: Any) -> dict[str, Any]:
    defaults = {
        "pystrument.profile.interval_ms": INTERVAL,
        "pystrument.profile.samples": int(duration / INTERVAL),
        "pystrument.function_spans": True,
    }
    return span(
        "0000000000000001", "GET /page", 0.0, duration, parent=None, kind="SERVER", **{**defaults, **attributes}
    )


def trace(*spans: dict[str, Any], path: str = "/page") -> dict[str, Any]:
    return {"record": {"trace_id": "ab" * 16, "request_path": path, "duration": 0.1}, "spans": list(spans)}


def good_trace() -> dict[str, Any]:
    """A view calling a query and rendering a template, with a short GC pause: every invariant holds."""
    return trace(
        request(),
        function(
            "00000000000000a1",
            "handler",
            0,
            100,
            library=True,
            self_ms=2,
            file=f"{SITE}/django/core/handlers/base.py",
        ),
        function(
            "00000000000000a2",
            "shop_view",
            1,
            98,
            parent="00000000000000a1",
            self_ms=30,
            **{"pystrument.child_span_ids": ["00000000000000d1"]},
        ),
        function(
            "00000000000000a3",
            "render (shop/list.html)",
            50,
            45,
            parent="00000000000000a2",
            library=True,
            self_ms=40,
            file=f"{SITE}/django/template/base.py",
            **{"pystrument.template": "shop/list.html"},
        ),
        function(
            "00000000000000a4",
            "garbage collection (generation 2)",
            60,
            7,
            parent="00000000000000a3",
            library=True,
            file="<gc>",
            **{"pystrument.gc.pause_ms": 6.0},
        ),
        function(
            "00000000000000a5",
            "__init__",
            20,
            10,
            parent="00000000000000a2",
            library=True,
            file="<string>",
        ),
        span("00000000000000d1", "SELECT shop", 10, 5, display="00000000000000a2", kind="CLIENT"),
    )


def by_id(detail: dict[str, Any], span_id: str) -> dict[str, Any]:
    return next(s for s in detail["spans"] if s["span_id"] == span_id)


def test_a_good_trace_keeps_every_invariant() -> None:
    assert inv.check_trace(good_trace(), expected_path="/page", renders_template=True) == []


def test_one_request_span_and_nothing_foreign() -> None:
    two = good_trace()
    two["spans"].append(span("0000000000000002", "GET /other", 0, 10, parent=None, kind="SERVER"))
    assert [v.invariant for v in inv.one_request(two)] == ["one-request"]

    foreign = good_trace()
    foreign["spans"].append(function("00000000000000f1", "other_view", 5, 5, parent="00000000000000ff"))
    (violation,) = inv.one_request(foreign)
    assert "other_view" in violation.message

    assert inv.one_request(good_trace(), expected_path="/elsewhere")
    assert inv.one_request(good_trace(), expected_path="/page") == []


def test_gc_span_no_longer_than_its_pause_plus_an_interval() -> None:
    detail = good_trace()
    by_id(detail, "00000000000000a4")["duration"] = (6.0 + INTERVAL + 0.5) / 1000
    (violation,) = inv.gc_spans(detail)
    assert "pause of 6.0 ms" in violation.message

    by_id(detail, "00000000000000a4")["duration"] = (6.0 + INTERVAL) / 1000
    assert inv.gc_spans(detail) == []

    del by_id(detail, "00000000000000a4")["attributes"]["pystrument.gc.pause_ms"]
    (violation,) = inv.gc_spans(detail)
    assert "carries no" in violation.message


def test_gc_span_contains_no_request_code() -> None:
    detail = good_trace()
    detail["spans"].append(function("00000000000000b1", "endpoint", 61, 2, parent="00000000000000a4"))
    (violation,) = inv.gc_spans(detail)
    assert "contains ['endpoint']" in violation.message

    # A real span displayed under it is request code too.
    detail = good_trace()
    by_id(detail, "00000000000000d1")["display_parent_span_id"] = "00000000000000a4"
    assert [v.message for v in inv.gc_spans(detail)] == ["'garbage collection (generation 2)' contains ['SELECT shop']"]


def test_function_spans_lie_within_their_parent() -> None:
    detail = good_trace()
    template = by_id(detail, "00000000000000a3")
    template["duration"] = (45 + 4 + INTERVAL + 1) / 1000  # ends after its view, by more than an interval
    (violation,) = inv.functions_nest(detail)
    assert "outside its parent 'shop_view'" in violation.message

    template["duration"] = (45 + 4 + INTERVAL - 0.5) / 1000  # within an interval: fine
    assert inv.functions_nest(detail) == []

    template["offset"] = (1 - INTERVAL - 1) / 1000  # starts before its view, by more than an interval
    assert inv.functions_nest(detail)


def test_claimed_children_are_displayed_under_and_within_their_claimer() -> None:
    detail = good_trace()
    by_id(detail, "00000000000000d1")["display_parent_span_id"] = "00000000000000a3"  # placed by time overlap
    (violation,) = inv.children_placed(detail)
    assert "displayed under 'render (shop/list.html)'" in violation.message

    detail = good_trace()
    by_id(detail, "00000000000000d1")["offset"] = 0.5  # 500 ms: after its claimer ended
    (violation,) = inv.children_placed(detail)
    assert "outside its claimer" in violation.message


def test_a_real_span_is_claimed_once_and_claims_are_real_spans() -> None:
    detail = good_trace()
    by_id(detail, "00000000000000a1")["attributes"]["pystrument.child_span_ids"] = ["00000000000000d1"]
    assert any("claimed by" in v.message for v in inv.children_placed(detail))

    detail = good_trace()
    by_id(detail, "00000000000000a2")["attributes"]["pystrument.child_span_ids"] = [
        "00000000000000d1",
        "00000000000000a3",
    ]
    assert any("not a real span" in v.message for v in inv.children_placed(detail))

    # Comma-separated strings are read too.
    detail = good_trace()
    by_id(detail, "00000000000000a2")["attributes"]["pystrument.child_span_ids"] = "00000000000000d1"
    assert inv.children_placed(detail) == []


def test_every_real_span_is_claimed_when_function_spans_were_kept() -> None:
    detail = good_trace()
    del by_id(detail, "00000000000000a2")["attributes"]["pystrument.child_span_ids"]
    (violation,) = inv.children_placed(detail)
    assert "claimed by no function span" in violation.message

    # The server instrumentation's own message span (ASGI's http send): no call of the app claims it.
    by_id(detail, "00000000000000d1")["attributes"]["asgi.event.type"] = "http.response.body"
    assert inv.children_placed(detail) == []

    # The request kept no function spans: nothing to claim it.
    detail = good_trace()
    del by_id(detail, "00000000000000a2")["attributes"]["pystrument.child_span_ids"]
    detail["spans"] = [s for s in detail["spans"] if not s["attributes"].get("pystrument.synthetic")]
    detail["spans"][0]["attributes"]["pystrument.function_spans"] = False
    assert inv.children_placed(detail) == []


def test_template_rendering_is_named() -> None:
    detail = good_trace()
    del by_id(detail, "00000000000000a3")["attributes"]["pystrument.template"]
    (violation,) = inv.templates_and_wrappers(detail, renders_template=True)
    assert "no span names one" in violation.message
    assert inv.templates_and_wrappers(detail, renders_template=False) == []

    detail = good_trace()
    by_id(detail, "00000000000000a3")["name"] = "root"
    (violation,) = inv.templates_and_wrappers(detail, renders_template=True)
    assert "does not name its template" in violation.message

    # A short request (under ten intervals) is not judged.
    detail = good_trace()
    del by_id(detail, "00000000000000a3")["attributes"]["pystrument.template"]
    detail["spans"][0]["duration"] = 9 * INTERVAL / 1000
    assert inv.templates_and_wrappers(detail, renders_template=True) == []


def test_a_framework_wrapper_does_not_hold_the_view_time() -> None:
    # The Django collapse: the request folds into the handler's wrapper, nothing below it.
    detail = trace(
        request(152),
        function(
            "00000000000000a1",
            "convert_exception_to_response.<locals>.inner",
            0,
            152,
            library=True,
            self_ms=138,
            file=f"{SITE}/django/core/handlers/exception.py",
        ),
    )
    (violation,) = inv.templates_and_wrappers(detail)
    assert "a framework pass-through" in violation.message

    # Any library call above app code holding most of the time as its own, wherever it lives.
    detail = good_trace()
    by_id(detail, "00000000000000a1")["attributes"].update({"pystrument.self_time_ms": 60, "code.file.path": "/x.py"})
    (violation,) = inv.templates_and_wrappers(detail)
    assert "it calls ['shop_view'" in violation.message

    # A library call that does the work itself (a password hash in C) may hold it all.
    detail = trace(
        request(800),
        function("00000000000000a1", "shop_login", 0, 800, self_ms=5),
        function(
            "00000000000000a2",
            "pbkdf2",
            2,
            790,
            parent="00000000000000a1",
            library=True,
            self_ms=780,
            file=f"{SITE}/django/utils/crypto.py",
        ),
    )
    assert inv.templates_and_wrappers(detail) == []
    # A garbage collection in the middle of it shows below it: the interpreter's pause, not app code it calls.
    gc_pause = function(
        "00000000000000a3",
        "garbage collection (generation 1)",
        400,
        12,
        parent="00000000000000a2",
        self_ms=12,
        **{"pystrument.gc_pause_ms": 12.0},
    )
    detail["spans"].append(gc_pause)
    assert inv.templates_and_wrappers(detail) == []

    # A server's send, caught while its thread waited for a core on a crowded machine: neither work nor a wait of
    # its own, told apart by the SDK; the same time without that account is a pass-through holding the request.
    def send(**extra: float) -> dict[str, Any]:
        return trace(
            request(70),
            function(
                "00000000000000a1",
                "RequestResponseCycle.send",
                27,
                40,
                library=True,
                self_ms=40,
                file=f"{SITE}/uvicorn/protocols/http/h11_impl.py",
                **extra,
            ),
        )

    assert inv.templates_and_wrappers(send(**{"pystrument.cpu_wait_ms": 39.0})) == []
    (violation,) = inv.templates_and_wrappers(send())
    assert "a framework pass-through" in violation.message


def test_generated_code_is_classed_by_its_owner() -> None:
    detail = good_trace()
    generated = by_id(detail, "00000000000000a5")
    generated["attributes"]["pystrument.library"] = False
    generated["parent_span_id"] = "00000000000000a1"  # called by library code only
    (violation,) = inv.generated_code_owner(detail)
    assert "generated '__init__' (<string>) called by 'handler'" in violation.message

    generated["parent_span_id"] = "00000000000000a2"  # the app's view called it: app code is right
    assert inv.generated_code_owner(detail) == []

    by_id(detail, "00000000000000a3")["attributes"]["pystrument.library"] = False  # a file in site-packages
    (violation,) = inv.generated_code_owner(detail)
    assert "classed as app code" in violation.message


def test_a_long_request_has_samples_or_says_why() -> None:
    detail = trace(request(4 * INTERVAL, **{"pystrument.profile.samples": 1}))
    (violation,) = inv.sampled_or_starved(detail)
    assert "1 samples" in violation.message

    detail = trace(
        request(4 * INTERVAL, **{"pystrument.profile.samples": 0, "pystrument.profile.starved": "gil: 3 stalls"})
    )
    assert inv.sampled_or_starved(detail) == []
    assert inv.sampled_or_starved(trace(request(3 * INTERVAL, **{"pystrument.profile.samples": 0}))) == []
    assert inv.sampled_or_starved(trace(request(4 * INTERVAL, **{"pystrument.profile.samples": 2}))) == []


def test_sampler_errors_in_the_app_log() -> None:
    log = (
        "[INFO] Booting worker with pid: 12\n"
        "pystrument: sampling a request failed; carrying on\n"
        '  File "/venv/site-packages/pystrument/_frames.py", line 80, in stack_below\n'
        "GET / 200\n"
    )
    assert [v.message for v in inv.sampler_errors(log)] == [
        "pystrument: sampling a request failed; carrying on",
        'File "/venv/site-packages/pystrument/_frames.py", line 80, in stack_below',
    ]
    assert inv.sampler_errors("[INFO] Booting worker with pid: 12\n") == []


def test_format_trace_shows_the_tree() -> None:
    text = inv.format_trace(good_trace(), mark=["00000000000000d1"])
    lines = text.splitlines()
    assert lines[0].startswith("trace abab")
    assert any(line.startswith(">>") and "SELECT shop" in line for line in lines)
    assert "render (shop/list.html)" in text and "+50.0 45.0ms" in text


@pytest.mark.parametrize("check", list(inv.TRACE_CHECKS))
def test_every_check_accepts_the_good_trace(check: str) -> None:
    kwargs = {"renders_template": True} if check == "templates-wrappers" else {}
    assert inv.TRACE_CHECKS[check](good_trace(), **kwargs) == []
