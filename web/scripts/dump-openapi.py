"""Writes the server's OpenAPI schema (what `/schema/openapi.json` serves) to web/openapi.json.

Building the app does not touch the database, so the URL below is never connected to. Run with the
project's Python: `python web/scripts/dump-openapi.py` (or `npm run gen:api`, which also makes the types).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pystrument_analysis.app import create_app
from pystrument_collector.settings import Settings

OUT = Path(__file__).resolve().parents[1] / "openapi.json"


def main() -> None:
    app = create_app(Settings(database_url="postgresql+asyncpg://x@localhost/x"))
    schema = app.openapi_schema.to_schema()
    text = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target} ({len(schema.get('paths', {}))} paths)")


if __name__ == "__main__":
    main()
