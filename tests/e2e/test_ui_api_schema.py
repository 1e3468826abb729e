"""The web UI's typed client is generated from web/openapi.json: that file must be the server's current schema
(what ``/schema/openapi.json`` serves, dumped from the same app factory), or the UI is typed against an API that
no longer exists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "web" / "openapi.json"
SCRIPT = ROOT / "web" / "scripts" / "dump-openapi.py"
FIX = "run `PYTHON=<venv>/bin/python npm run gen:api` in web/ (dumps it and regenerates src/lib/api/schema.d.ts)"


def test_committed_schema_is_the_servers(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True, capture_output=True, timeout=120)
    dumped = json.loads(out.read_text())
    assert dumped["paths"], "the dump has no paths"
    assert dumped == json.loads(COMMITTED.read_text()), f"web/openapi.json is stale: {FIX}"
