"""Finding 5: credentials the scrubbing missed, on OTLP (JSON and protobuf) and on the seed's ``/collect``.

Every secret below carries the marker ``s3cr3t``; after ingest, no stored row may contain it.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import asyncpg
import stored_spans
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pystrument_collector.ingest._redact import REDACTED, scrub_attributes, scrub_name, scrub_text, scrub_url
from sqlalchemy.engine import make_url

MARK = "s3cr3t"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzM2NyM3QifQ.s3cr3tSignature"


def _str(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def request_json(project_key: str) -> dict[str, Any]:
    now = time.time_ns()
    headers = {
        "x-api-token": f"{MARK}-api-token",
        "x-csrf-token": f"{MARK}-csrf",
        "x-amz-security-token": f"{MARK}-amz",
        "private-token": f"{MARK}-gitlab",
        "x-vault-token": f"{MARK}-vault",
    }
    attributes = [_str(f"http.request.header.{k}", v) for k, v in headers.items()]
    attributes += [
        _str("url.query", f"code={MARK}-oauth-code&state=abc"),
        _str("url.full", f"https://app.example/callback?code={MARK}-oauth-code2&x=1"),
        _str("url.path", f"/reset-password/{MARK}resettoken"),
        _str("db.connection_string", f"postgresql://app:{MARK}dbpass@db.internal:5432/app"),
        _str("db.statement", f"UPDATE users SET password='{MARK}-sql' WHERE id = 1"),
        _str("db.query.text", f"SELECT 1 FROM u WHERE password = '{MARK}-sql2'"),
        _str("db.system.connection", f"Server=db;Database=app;User Id=sa;Password={MARK}mssql;"),
        {
            "key": "http.request.headers",
            "value": {
                "kvlistValue": {
                    "values": [
                        _str("authorization", f"Bearer {MARK}nestedbearer"),
                        _str("accept", "text/html"),
                        {"key": "inner", "value": {"kvlistValue": {"values": [_str("x-api-token", f"{MARK}deep")]}}},
                    ]
                }
            },
        },
    ]
    span = {
        "traceId": os.urandom(16).hex(),
        "spanId": os.urandom(8).hex(),
        "name": f"GET /reset-password/{MARK}nametoken",
        "kind": 2,
        "startTimeUnixNano": str(now - 5_000_000),
        "endTimeUnixNano": str(now),
        "attributes": attributes,
        "status": {"code": 2, "message": f"token rejected: {JWT}"},
        "events": [
            {
                "name": "exception",
                "timeUnixNano": str(now - 1000),
                "attributes": [
                    _str("exception.message", f"login failed for Authorization: Bearer {MARK}exceptionbearer"),
                    _str("exception.type", "AuthError"),
                ],
            }
        ],
    }
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_str("service.name", "svc"), _str("pystrument.project_key", project_key)]},
                "scopeSpans": [{"spans": [span]}],
            }
        ]
    }


async def stored_text(database_url: str) -> str:
    u = make_url(database_url)
    conn = await asyncpg.connect(user=u.username, password=u.password, host=u.query.get("host") or u.host,
                                 port=u.port, database=u.database)  # fmt: skip
    try:
        spans = await stored_spans.stored_text(conn)  # rows and packed function spans, decoded
        records = await conn.fetch("SELECT r::text FROM performance_records r")
    finally:
        await conn.close()
    return "\n".join([spans, *(r[0] for r in records)])


async def new_key(client: Any) -> str:
    r = await client.post("/api/v1/projects", json={"name": "scrub"})
    return str(r.json()["data"]["project_key"])


async def test_otlp_json_and_protobuf_are_scrubbed(client: Any, database_url: str) -> None:
    key = await new_key(client)
    doc = request_json(key)
    r = await client.post("/v1/traces", json=doc)
    assert r.status_code == 200 and r.json() == {}, r.text
    doc = request_json(key)
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for field in ("traceId", "spanId"):  # protobuf's JSON mapping spells bytes in base64
        span[field] = base64.b64encode(bytes.fromhex(span[field])).decode()
    proto = json_format.ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()
    r = await client.post("/v1/traces", content=proto, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200 and r.content == b"", r.content
    text = await stored_text(database_url)
    assert text.count(REDACTED) > 20, text
    leaks = [line[max(0, line.find(MARK) - 80) : line.find(MARK) + 40] for line in text.split(",") if MARK in line]
    assert not leaks, leaks
    assert "text/html" in text and "/reset-password/" in text  # what is not secret stays


async def test_collect_is_scrubbed(client: Any, database_url: str) -> None:
    key = await new_key(client)
    report = {
        "trace_id": "scrub_collect_1",
        "request_info": {
            "method": "GET",
            "path": f"/reset-password/{MARK}collecttoken?code={MARK}-collect-code",
            "headers": {"X-Api-Token": f"{MARK}-collect-header", "X-Vault-Token": f"{MARK}-vault", "Accept": "*/*"},
        },
        "performance_metrics": {"total_duration": 0.2},
        "function_calls": [{"function": f"check_token(token='{MARK}fn')", "duration": 0.1}],
    }
    r = await client.post("/api/v1/performance/collect", json=report, headers={"X-Project-Key": key})
    assert r.status_code == 200, r.text
    text = await stored_text(database_url)
    assert MARK not in text, text


def test_the_rules_one_by_one() -> None:
    for header in ("x-api-token", "x-csrf-token", "x-amz-security-token", "private-token", "x-vault-token"):
        assert scrub_attributes({f"http.request.header.{header}": ["v"]})[f"http.request.header.{header}"] == REDACTED
    kept = {"gen_ai.usage.input_tokens": 12, "code.function.name": "f", "http.route": "/x/{id}"}
    assert scrub_attributes(dict(kept)) == kept
    assert scrub_url("/cb?code=abc&country_code=US") == f"/cb?code={REDACTED}&country_code=US"
    assert scrub_text("mysql://u:pw@h/db") == f"mysql://u:{REDACTED}@h/db"
    assert scrub_text("password='x' and pwd = \"y\"") == f"password={REDACTED} and pwd = {REDACTED}"
    assert scrub_name("GET /reset-password/abcdefgh1234") == f"GET /reset-password/{REDACTED}"
    assert scrub_name("app.views.reset_password") == "app.views.reset_password"
    assert scrub_text("/srv/app/verify/handlers.py") == "/srv/app/verify/handlers.py"  # a file path, not a URL
    assert scrub_text("key proj_0123456789abcdef01234567 leaked") == f"key {REDACTED} leaked"
