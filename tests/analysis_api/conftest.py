"""Fixtures for the API tests: rows written straight into the real schema with the collector's models."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

BASE_TIME = datetime(2024, 8, 24, 10, 0, 0, tzinfo=UTC)


class PerfData:
    """Writes projects, request records and spans as the collector would store them."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._ids = itertools.count(1)

    def new_span_id(self) -> str:
        return f"{next(self._ids):016x}"

    async def project(self, name: str = "demo", framework: str = "flask") -> Any:
        from pystrument_collector.db.models import Project
        from pystrument_collector.keys import new_project_key

        async with self.db.session() as s:
            project = Project(project_key=new_project_key(), name=name, description="", framework=framework)
            s.add(project)
            await s.flush()
            await s.refresh(project)
        return project

    async def span(
        self,
        project: Any,
        trace_id: str,
        name: str,
        start: datetime,
        duration: float,
        *,
        parent: str | None = None,
        span_id: str | None = None,
        kind: str = "INTERNAL",
        synthetic: bool = False,
        attributes: dict[str, Any] | None = None,
        service: str = "svc",
        status_code: int = 0,
    ) -> str:
        from pystrument_collector.db.models import FunctionSpanPack, Span
        from pystrument_collector.packs import PACK_COLUMNS, PG_EPOCH, as_microseconds, encode_pack

        span_id = span_id or self.new_span_id()
        attrs = dict(attributes or {})
        if synthetic:
            attrs.setdefault("pystrument.synthetic", True)
        row = Span(
            trace_id=trace_id,
            span_id=span_id,
            project_id=project.id,
            parent_span_id=parent,
            name=name,
            kind=kind,
            start_time=start,
            duration=duration,
            status_code=status_code,
            status_message="",
            service_name=service,
            synthetic=synthetic,
            attributes=attrs,
            events=[],
        )
        async with self.db.session() as s:
            if not synthetic:
                s.add(row)
            else:  # function spans are stored packed, as the collector's writer stores them (a pack of one)
                values = (
                    trace_id, span_id, project.id, parent, name, kind, as_microseconds(start), duration, status_code,
                    "", service, True, json.dumps(attrs), "[]",
                )  # fmt: skip
                pack = dict(zip(PACK_COLUMNS, encode_pack([values]), strict=True))
                for column in ("start_time", "end_time"):
                    pack[column] = PG_EPOCH + timedelta(microseconds=pack[column])
                s.add(FunctionSpanPack(**pack))
        return span_id

    async def request(
        self,
        project: Any,
        trace_id: str,
        *,
        start: datetime = BASE_TIME,
        duration: float = 0.1,
        method: str = "GET",
        route: str = "/users/{id}",
        path: str = "/users/1",
        status: int | None = 200,
        service: str = "svc",
        cpu_time: float | None = 0.01,
        parent: str | None = None,
        attributes: dict[str, Any] | None = None,
        with_span: bool = True,
    ) -> str:
        """A request record and (by default) its SERVER span; returns the span id."""
        from pystrument_collector.db.models import PerformanceRecord

        span_id = self.new_span_id()
        if with_span:
            await self.span(
                project,
                trace_id,
                f"{method} {route}",
                start,
                duration,
                parent=parent,
                span_id=span_id,
                kind="SERVER",
                attributes={"http.route": route, **(attributes or {})},
                service=service,
                status_code=2 if (status or 0) >= 500 else 0,
            )
        async with self.db.session() as s:
            s.add(
                PerformanceRecord(
                    trace_id=trace_id,
                    span_id=span_id,
                    project_id=project.id,
                    service_name=service,
                    method=method,
                    route=route,
                    path=path,
                    status_code=status,
                    duration=duration,
                    cpu_time=cpu_time,
                    memory={"peak_memory": 45},
                    is_error=(status or 0) >= 500,
                    timestamp=start,
                )
            )
        return span_id


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Any:
    """The suite's settings with retention off: these tests write 2024 data, which 7-day retention would delete."""
    from pystrument_collector.settings import Settings

    return Settings(database_url=database_url, data_dir=tmp_path, retention_days=0)


@pytest.fixture
def perf(db: Any) -> PerfData:
    return PerfData(db)


def at(seconds: float) -> datetime:
    """``BASE_TIME`` plus ``seconds``."""
    return BASE_TIME + timedelta(seconds=seconds)


@pytest.fixture
def t() -> Any:
    return at
