"""The storage schema, owned by the collector; the analysis API reads through it.

Spans of one trace arrive in any order and any batch: every row is keyed by ``(trace_id, span_id)``
and derived from its own span only, so inserts are idempotent (``ON CONFLICT DO NOTHING``).

``project_id`` leads every primary key and unique index of the per-project tables (migration 0008): on Citus they
are hash-distributed by it (``pystrument_collector.db.citus``), and a query naming one project runs on one shard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base for every pystrument table."""


class Project(Base):
    """A monitored service; its key authenticates ingest."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    project_key: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    framework: Mapped[str] = mapped_column(String(50), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    last_activity: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Span(Base):
    """Every span received but the SDK's function spans (packed in ``function_spans`` since migration 0009):
    request and client spans.

    Range-partitioned by day on ``start_time`` (migration 0003; partitions managed by
    ``pystrument_collector.retention``). Postgres needs the partition key in the unique key and Citus the
    distribution column, so it is ``(project_id, trace_id, span_id, start_time)`` (0008): a span sent again has
    the same start time, so it still collides. That key is the one index: every read names a project and a trace.
    No per-row foreign key (write speed): the writer locks the projects it writes for, and a trigger on
    ``projects`` deletes a deleted project's spans.
    """

    __tablename__ = "spans"

    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(32, collation="C"), primary_key=True)
    span_id: Mapped[str] = mapped_column(String(16, collation="C"), primary_key=True)
    parent_span_id: Mapped[str | None] = mapped_column(String(16, collation="C"), nullable=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    duration: Mapped[float] = mapped_column(Float, nullable=False)  # seconds
    status_code: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)  # OTel: 0 unset, 1 ok, 2 error
    status_message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    service_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    synthetic: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    events: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, default=list)

    __table_args__ = ({"postgresql_partition_by": "RANGE (start_time)"},)


class FunctionSpanPack(Base):
    """The SDK's function spans of one trace and service from one ingest batch, packed (migration 0009).

    ``data`` is the compressed document of ``pystrument_collector.packs`` (the one codec: readers go through
    ``decode_pack``). Partitioned by day on ``start_time`` (the pack's first span start; ``end_time`` its last
    span end) like ``spans``; keyed by ``(project_id, trace_id, start_time, digest)`` so a resent batch is stored
    once. A trigger on ``projects`` deletes a deleted project's packs.
    """

    __tablename__ = "function_spans"

    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(32, collation="C"), primary_key=True)
    service_name: Mapped[str] = mapped_column(String(200), nullable=False)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    digest: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)

    __table_args__ = ({"postgresql_partition_by": "RANGE (start_time)"},)


class LogRecord(Base):
    """A log record received over OTLP (``/v1/logs`` or gRPC), with the trace and span it was written in.

    Range-partitioned by day on ``timestamp`` like ``spans`` (migration 0006; same partition maintenance and
    retention). Log records have no id of their own, so ``log_id`` is a digest of the stored record: an
    exporter's retry lands on the same key and is stored once. ``project_id`` leads every key (a later Citus
    distribution shards by it); a trigger on ``projects`` deletes a deleted project's logs.
    """

    __tablename__ = "logs"

    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    log_id: Mapped[Any] = mapped_column(UUID(as_uuid=False), primary_key=True)
    trace_id: Mapped[str | None] = mapped_column(String(32, collation="C"), nullable=True)
    span_id: Mapped[str | None] = mapped_column(String(16, collation="C"), nullable=True)
    severity_number: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    severity_text: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    body: Mapped[Any] = mapped_column(JSONB, nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    service_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    scope_name: Mapped[str] = mapped_column(Text, nullable=False, default="")

    __table_args__ = (
        Index("ix_logs_project_trace", "project_id", "trace_id", "timestamp"),
        {"postgresql_partition_by": "RANGE (timestamp)"},
    )


class PerformanceRecord(Base):
    """One row per request span (SERVER kind or a root span): what the records list shows.

    Keyed by ``(project_id, trace_id, span_id)`` (migration 0008)."""

    __tablename__ = "performance_records"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    span_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    service_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    method: Mapped[str] = mapped_column(String(16), nullable=False, default="")
    route: Mapped[str] = mapped_column(Text, nullable=False, default="")
    path: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration: Mapped[float] = mapped_column(Float, nullable=False)  # seconds
    cpu_time: Mapped[float | None] = mapped_column(Float, nullable=True)  # seconds
    memory: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    is_error: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ix_records_project_time", "project_id", "timestamp"),
        Index("ix_records_project_route_time", "project_id", "route", "timestamp"),
        Index("ix_records_project_duration", "project_id", "duration"),  # migration 0004
    )


class RouteRollup(Base):
    """Request statistics per route (or, ``all_routes``, per project) and minute, hour or day, kept by triggers.

    Migration 0004: statement-level triggers on ``performance_records`` add inserted records and rebuild the
    days of deleted ones, so the rows always add up to the records (0005: a cheaper merge of one new histogram
    bucket). ``bucket_seconds`` is 60, 900 (0010), 3600 or 86400.
    ``hist_idx``/``hist_cnt`` are a sparse log-scale duration histogram (bucket 0 is <= 0.1 ms, bucket k is
    (0.1 ms * 1.1^(k-1), 0.1 ms * 1.1^k]). Concurrent writers use different ``shard`` rows; readers sum them.
    ``path`` is set only when ``route`` is empty.
    """

    __tablename__ = "route_rollups"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    bucket_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    all_routes: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    group_key: Mapped[Any] = mapped_column(UUID(as_uuid=True), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    service_name: Mapped[str] = mapped_column(String(200), nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    route: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    error_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sum_duration: Mapped[float] = mapped_column(Float, nullable=False)
    min_duration: Mapped[float] = mapped_column(Float, nullable=False)
    max_duration: Mapped[float] = mapped_column(Float, nullable=False)
    hist_idx: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger), nullable=False)
    hist_cnt: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)


class Analysis(Base):
    """An AI analysis job and, once completed, its structured result (seed 5.3.2); keyed by ``(project_id, id)``."""

    __tablename__ = "analyses"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # "analysis_" + random
    trace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    analysis_type: Mapped[str] = mapped_column(String(32), nullable=False, default="manual")
    ai_service: Mapped[str] = mapped_column(String(64), nullable=False, default="builtin")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    performance_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # migration 0002: a running job whose lease has expired is re-claimed by another worker
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    language: Mapped[str] = mapped_column(String(8), nullable=False, default="en", server_default="en")
    provider_used: Mapped[str] = mapped_column(String(64), nullable=False, default="", server_default="")

    __table_args__ = (
        Index("ix_analyses_project_created", "project_id", "created_at"),
        Index("ix_analyses_trace", "project_id", "trace_id"),
        Index("ix_analyses_status", "status", "created_at"),
    )
