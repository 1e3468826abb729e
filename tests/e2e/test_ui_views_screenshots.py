"""Screenshots of the aggregated views (docs/screenshots/flame.png, compare.png, function.png, linked from the
README), taken in Chromium at 1280x800 on planted shop traces. Every run takes them (and checks each view drew);
they land in test-artifacts/ unless ``PYSTRUMENT_SCREENSHOTS=docs`` asks to refresh the committed ones."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from browser import ARTIFACTS, ROOT, chromium, require_built_ui
from flame_traces import SLOW_FILE, SLOW_FN, new_project, send_checkouts, wait_for_records

pytestmark = pytest.mark.browser
MINUTE = 60 * 1_000_000_000


@pytest.fixture(autouse=True)
def _built_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    require_built_ui(monkeypatch)


def test_screenshots_of_the_aggregated_views(live_server: Any) -> None:
    base = live_server.url
    project_id, key = new_project(base, "shop")
    now = time.time_ns()
    fast = send_checkouts(base, key, [now - (50 - i) * MINUTE for i in range(12)], [i % 4 == 3 for i in range(12)])
    slow = send_checkouts(base, key, [now - (20 - i) * MINUTE for i in range(12)], [i % 2 == 1 for i in range(12)])
    wait_for_records(base, key, 24)
    out = ROOT / "docs" / "screenshots" if os.environ.get("PYSTRUMENT_SCREENSHOTS") == "docs" else ARTIFACTS
    out.mkdir(parents=True, exist_ok=True)
    function = urlencode({"name": SLOW_FN, "file": SLOW_FILE, "range": "1h"})
    pages = [
        ("flame", f"/projects/{project_id}/flame?route=%2Fcheckout&range=1h", "agg-flame"),
        ("compare", f"/projects/{project_id}/compare?a={fast[0].trace_id}&b={slow[1].trace_id}", "agg-flame"),
        ("function", f"/projects/{project_id}/function?{function}", "function-traces"),
    ]
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        for name, path, ready in pages:
            page.goto(base + path)
            page.get_by_test_id(ready).wait_for()
            if ready == "agg-flame":
                page.wait_for_function(
                    "() => Number(document.querySelector('[data-testid=agg-flame]')?.dataset.drawn || 0) > 0"
                )
                box = page.get_by_test_id("agg-canvas").bounding_box()
                page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] - 18 * 2.5)
            page.wait_for_load_state("networkidle")
            target: Path = out / f"{name}.png"
            page.screenshot(path=str(target))
            assert target.stat().st_size > 10_000, f"{target} looks empty"
        context.close()
        # 390 px wide (a phone): nothing forces the page wider than the screen.
        narrow = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
        phone = narrow.new_page()
        phone.on("pageerror", lambda exc: errors.append(str(exc)))
        for name, path, ready in pages:
            phone.goto(base + path)
            phone.get_by_test_id(ready).wait_for()
            phone.wait_for_load_state("networkidle")
            width = phone.evaluate("document.documentElement.scrollWidth")
            wide = phone.evaluate(
                "[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > 391)"
                ".slice(0, 5).map(e => e.tagName + '.' + e.className)"
            )
            phone.screenshot(path=str(ARTIFACTS / f"views-{name}-390.png"), full_page=True)
            assert width <= 390, f"{name} is {width} px wide at 390: {wide}"
        narrow.close()
    assert not errors, errors
