"""The write path shared by the OTLP receivers (HTTP and gRPC; traces and logs) and the legacy JSON endpoint:
decode, map, authorise, store."""

from pystrument_collector.ingest._batch import Batch, encode_json
from pystrument_collector.ingest._errors import (
    IngestError,
    Overloaded,
    PayloadError,
    PayloadTooLarge,
    ProjectInactive,
    Unavailable,
    UnknownProject,
)
from pystrument_collector.ingest._otlp_json import JsonTraces
from pystrument_collector.ingest._otlp_logs import JsonLogs, ProtoLogs
from pystrument_collector.ingest._otlp_metrics import check_metrics
from pystrument_collector.ingest._otlp_proto import PROJECT_KEY_ATTRIBUTE, ProtoTraces
from pystrument_collector.ingest._redact import REDACTED, scrub_attributes, scrub_url
from pystrument_collector.ingest._service import Ingestor, IngestResult, Traces
from pystrument_collector.ingest._writer import is_unavailable

__all__ = [
    "PROJECT_KEY_ATTRIBUTE",
    "REDACTED",
    "Batch",
    "IngestError",
    "IngestResult",
    "Ingestor",
    "JsonLogs",
    "JsonTraces",
    "Overloaded",
    "PayloadError",
    "PayloadTooLarge",
    "ProjectInactive",
    "ProtoLogs",
    "ProtoTraces",
    "Traces",
    "Unavailable",
    "UnknownProject",
    "check_metrics",
    "encode_json",
    "is_unavailable",
    "scrub_attributes",
    "scrub_url",
]
