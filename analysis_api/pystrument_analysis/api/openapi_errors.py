"""The OpenAPI document tells the truth about errors: every status an operation can answer, in its real shape.

Litestar documents errors as ``{status_code, detail, extra}``; the REST API answers in the seed's envelope
``{code, msg, data}`` and the OTLP receiver in ``google.rpc.Status`` (JSON or protobuf, like the request). This
rewrites every operation's error responses after the document is generated, from one table of what can happen:

- every operation: 400 (bad parameters, a Host outside ``PYSTRUMENT_ALLOWED_HOSTS``), 500, 503;
- token-protected operations and login: 401, and 429 after too many wrong tokens;
- operations naming a resource (a path parameter, ``project_key``, ``trace_id``): 404;
- state-changing operations: 403 (cross-site ``Origin``) and 415 (a body that is not JSON);
- ingest (``/v1/*`` and ``/api/v1/performance/collect``): 401/403 (project key, paused project), 413, 415,
  and 503 with Retry-After when overloaded.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Reference, Schema

ENVELOPE = "ErrorEnvelope"
RPC_STATUS = "RpcStatus"
MUTATING = frozenset({"post", "put", "patch", "delete"})
RESOURCE_PARAMETERS = frozenset({"project_key", "trace_id", "analysis_id"})
RESOURCE_BODIES = frozenset({"/api/v1/analysis/trigger"})  # names a trace in its body
INGEST_PATHS = frozenset({"/api/v1/performance/collect"})
DESCRIPTIONS = {
    400: "Invalid request: a parameter or body, or a Host header that is not served",
    401: "Missing or wrong credentials (API token, or project key for ingest)",
    403: "Refused: a cross-site request, or (ingest) a paused or archived project",
    404: "Not found",
    413: "Request body too large",
    415: "Unsupported Content-Type",
    429: "Too many wrong API tokens from this address; see Retry-After",
    500: "Internal error",
    503: "Database unavailable or receiver overloaded; retry after Retry-After",
}

_ENVELOPE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["code", "msg", "data"],
    properties={
        "code": Schema(type=OpenAPIType.INTEGER, description="0 on success, else the error code (docs/api.md)"),
        "msg": Schema(type=OpenAPIType.STRING, description="what went wrong, and how to fix it"),
        "data": Schema(type=OpenAPIType.NULL),
    },
    description="The seed's envelope, as every /api/ error is answered",
)
_RPC_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["code", "message"],
    properties={
        "code": Schema(type=OpenAPIType.INTEGER, description="google.rpc.Code"),
        "message": Schema(type=OpenAPIType.STRING),
    },
    description="google.rpc.Status, as OTLP/HTTP answers errors (protobuf when the request was protobuf)",
)
_BINARY = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]


def statuses(path: str, method: str, operation: Any) -> list[int]:
    """The error statuses an operation can answer."""
    names = {p.name for p in operation.parameters or [] if not isinstance(p, Reference)}
    out = {400, 500, 503}
    if path.startswith("/v1/") or path in INGEST_PATHS:
        if method == "post":
            out |= {401, 403, 413, 415}
        return sorted(out)
    if operation.security or path == "/api/v1/auth/login":
        out |= {401, 429}
    if "{" in path or names & RESOURCE_PARAMETERS or path in RESOURCE_BODIES:
        out.add(404)
    if method in MUTATING:
        out |= {403, 415}
    return sorted(out)


def _error_response(status: int, otlp: bool) -> OpenAPIResponse:
    if otlp:
        content = {
            "application/json": OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{RPC_STATUS}")),
            "application/x-protobuf": OpenAPIMediaType(schema=_BINARY),
        }
    else:
        content = {"application/json": OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{ENVELOPE}"))}
    return OpenAPIResponse(description=DESCRIPTIONS[status], content=content)


def document_errors(openapi: OpenAPI) -> OpenAPI:
    """Rewrite every operation's error responses (in place) and add the two error schemas."""
    components = openapi.components
    assert components is not None
    schemas = dict(components.schemas or {})
    schemas[ENVELOPE] = _ENVELOPE_SCHEMA
    schemas[RPC_STATUS] = _RPC_SCHEMA
    components.schemas = schemas
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            otlp = path.startswith("/v1/") and method == "post"
            responses = {k: v for k, v in (operation.responses or {}).items() if not str(k).startswith(("4", "5"))}
            for status in statuses(path, method, operation):
                responses[str(status)] = _error_response(status, otlp)
            if otlp:  # the export answer is protobuf or JSON, as the request was
                responses["200"] = OpenAPIResponse(
                    description="Export*ServiceResponse, with partialSuccess when items were refused",
                    content={
                        "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT)),
                        "application/x-protobuf": OpenAPIMediaType(schema=_BINARY),
                    },
                )
            operation.responses = responses
    return openapi


def truthful_errors(app: Litestar) -> None:
    """Generate ``app``'s OpenAPI document now and rewrite its errors (in place: the app serves this object)."""
    document_errors(app.openapi_schema)
