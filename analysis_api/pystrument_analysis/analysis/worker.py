"""The analysis worker: jobs live in Postgres, so they survive restarts and are shared by several servers.

A job is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` (a pending job, or a running one whose lease
expired because its worker died), its lease is renewed while it runs, and only the worker holding the
claim may write the result. On shutdown, jobs in flight go back to ``pending`` for the next start.
Jobs run off the server's event loop (``jobloop``), within ``job_timeout`` and the span budget
(``max_spans``, checked by ``run_analysis`` before the trace is read); a job over either fails for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from pystrument_collector.db import Database
from pystrument_collector.db.models import Analysis
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import CursorResult

from pystrument_analysis.analysis.config import AIConfig, WorkerSettings
from pystrument_analysis.analysis.jobloop import JobLoop
from pystrument_analysis.analysis.service import Job, Outcome, run_analysis

logger = logging.getLogger(__name__)

Runner = Callable[[Job], Coroutine[Any, Any, Outcome]]


def _seconds(value: float) -> object:
    return func.make_interval(0, 0, 0, 0, 0, 0, value)


class AnalysisWorker:
    """Runs up to ``concurrency`` jobs at a time from the shared queue."""

    def __init__(
        self,
        db: Database,
        config: AIConfig,
        settings: WorkerSettings | None = None,
        *,
        worker_id: str | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.settings = settings or config.worker
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._job_loop: JobLoop | None = None
        self._runner: Runner = runner or self._run_off_loop
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.completed: list[str] = []  # ids finished by this worker, for observability and tests

    async def _run_off_loop(self, job: Job) -> Outcome:
        """The default runner: ``run_analysis`` in the analysis thread, on that thread's own database engine."""
        if self._job_loop is None:
            if self.db.url is None:
                raise RuntimeError("the database has not started")
            self._job_loop = JobLoop(self.db.url)
        return await self._job_loop.run(lambda db: run_analysis(db, self.config, job))

    @property
    def running(self) -> int:
        return len(self._jobs)

    def start(self) -> None:
        if self._loop_task is None:
            self._stopping = False
            self._loop_task = asyncio.create_task(self._loop(), name=f"analysis-worker {self.worker_id}")

    def notify(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming, cancel jobs in flight and hand them back to the queue."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for task in list(self._jobs):
            task.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)
        if self._job_loop is not None:
            await asyncio.to_thread(self._job_loop.stop)
            self._job_loop = None
        try:
            released = await self.release()
            if released:
                logger.info("analysis worker %s: %d job(s) back to pending", self.worker_id, released)
        except Exception:
            logger.exception("analysis worker %s: could not release its jobs; their lease will expire", self.worker_id)

    async def release(self) -> int:
        """Put this worker's running jobs back to pending (an interrupted attempt does not count)."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Analysis)
                .where(Analysis.claimed_by == self.worker_id, Analysis.status == "running")
                .values(
                    status="pending",
                    claimed_by=None,
                    lease_expires_at=None,
                    started_at=None,
                    attempts=func.greatest(Analysis.attempts - 1, 0),
                )
            )
            return int(result.rowcount) if isinstance(result, CursorResult) else 0

    async def claim(self) -> Job | None:
        """Claim the oldest runnable job, or None; a job over its attempt limit is failed instead.

        Two steps, so that the write names one project (one shard on Citus, where ``FOR UPDATE`` cannot span
        shards): read the oldest runnable jobs, then take one with an update that re-checks it is still
        runnable. Of several servers reaching for one job, one update matches and the others try the next.
        """
        t = Analysis
        runnable = or_(t.status == "pending", and_(t.status == "running", t.lease_expires_at < func.now()))
        while True:
            async with self.db.session() as session:
                candidates = (
                    await session.execute(
                        select(t.project_id, t.id).where(runnable).order_by(t.created_at, t.id).limit(8)
                    )
                ).all()
            if not candidates:
                return None
            job: Job | None = None
            for project_id, job_id in candidates:
                async with self.db.session() as session:
                    row = (
                        await session.execute(
                            update(t)
                            .where(t.project_id == project_id, t.id == job_id, runnable)
                            .values(
                                status="running",
                                claimed_by=self.worker_id,
                                attempts=t.attempts + 1,
                                started_at=func.now(),
                                lease_expires_at=func.now() + _seconds(self.settings.lease_seconds),
                            )
                            .returning(
                                t.id, t.project_id, t.trace_id, t.ai_service, t.analysis_type, t.language, t.attempts
                            )
                            .execution_options(synchronize_session=False)
                        )
                    ).first()
                if row is not None:
                    job = Job(*row)
                    break
            if job is None:
                continue  # every candidate was taken meanwhile: look again
            if job.attempts <= self.settings.max_attempts:
                return job
            async with self.db.session() as session:
                await session.execute(
                    update(t)
                    .where(t.project_id == job.project_id, t.id == job.id)
                    .values(
                        status="failed",
                        error=f"gave up after {self.settings.max_attempts} attempts (worker stopped or timed out)",
                        completed_at=func.now(),
                        lease_expires_at=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            logger.warning("analysis %s failed: too many attempts", job.id)

    async def _renew(self, job: Job) -> bool:
        async with self.db.session() as session:
            result = await session.execute(
                update(Analysis)
                .where(
                    Analysis.project_id == job.project_id,
                    Analysis.id == job.id,
                    Analysis.claimed_by == self.worker_id,
                    Analysis.status == "running",
                )
                .values(lease_expires_at=func.now() + _seconds(self.settings.lease_seconds))
                .execution_options(synchronize_session=False)
            )
            return isinstance(result, CursorResult) and result.rowcount == 1

    async def _heartbeat(self, job: Job, task: asyncio.Task[Outcome]) -> None:
        period = max(0.1, self.settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(period)
            try:
                if not await self._renew(job):
                    logger.warning("analysis %s: lease lost to another worker; abandoning it", job.id)
                    task.cancel()
                    return
            except Exception:
                logger.exception("analysis %s: lease renewal failed", job.id)

    async def finish(self, job: Job, outcome: Outcome) -> bool:
        """Write the outcome if this worker still holds the job (fencing against a re-claim)."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Analysis)
                .where(
                    Analysis.project_id == job.project_id,
                    Analysis.id == job.id,
                    Analysis.claimed_by == self.worker_id,
                    Analysis.status == "running",
                )
                .values(
                    status=outcome.status,
                    performance_score=outcome.score,
                    result=outcome.result,
                    error=outcome.error,
                    provider_used=outcome.provider_used,
                    completed_at=func.now(),
                    lease_expires_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            return isinstance(result, CursorResult) and result.rowcount == 1

    async def _execute(self, job: Job) -> None:
        try:
            work = asyncio.create_task(self._runner(job))
            beat = asyncio.create_task(self._heartbeat(job, work))
            try:
                outcome = await asyncio.wait_for(work, self.settings.job_timeout)
            except TimeoutError:
                outcome = Outcome("failed", error=f"analysis did not finish within {self.settings.job_timeout:g} s")
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                return  # lease lost: the new owner writes the result
            except Exception as exc:
                logger.exception("analysis %s crashed", job.id)
                outcome = Outcome("failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                beat.cancel()
                if not work.done():
                    work.cancel()
            if await self.finish(job, outcome):
                self.completed.append(job.id)
        finally:
            self._slots.release()

    async def _loop(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            self._wake.clear()
            try:
                job = await self.claim()
            except Exception:
                self._slots.release()
                logger.exception("analysis worker %s: claiming failed; retrying", self.worker_id)
                await asyncio.sleep(self.settings.poll_seconds)
                continue
            if job is None:
                self._slots.release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
                continue
            task = asyncio.create_task(self._execute(job), name=f"analysis {job.id}")
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)
