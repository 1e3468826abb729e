"""OTLP metrics: checked for well-formedness, counted, not stored (pystrument keeps traces and logs only).

Answering success keeps stock SDKs, whose default exports all three signals, quiet.
"""

from __future__ import annotations

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from pystrument_collector.ingest._errors import PayloadError

_decoder = msgspec.json.Decoder()


def check_metrics(body: bytes, protobuf: bool) -> None:
    """``PayloadError`` unless ``body`` is an ``ExportMetricsServiceRequest`` (protobuf) or a JSON object."""
    if protobuf:
        try:
            ExportMetricsServiceRequest.FromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise PayloadError(f"body is not a valid OTLP ExportMetricsServiceRequest protobuf: {exc}") from None
        return
    try:
        doc = _decoder.decode(body) if body.strip() else {}
    except msgspec.DecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError("OTLP/JSON body must be an object with 'resourceMetrics'")
