"""What the app holds for analysis: the configuration and this process's worker."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pystrument_collector.db import Database

from pystrument_analysis.analysis.config import AIConfig, load_config
from pystrument_analysis.analysis.worker import AnalysisWorker

logger = logging.getLogger(__name__)


class AnalysisRuntime:
    """Built in ``create_app`` (bad configuration stops start-up there); the worker runs in the lifespan."""

    def __init__(self, config: AIConfig) -> None:
        self.config = config
        self.worker: AnalysisWorker | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AnalysisRuntime:
        return cls(load_config(env))

    async def start(self, db: Database) -> None:
        if not self.config.worker.enabled:
            logger.info("analysis worker disabled in this process; jobs wait for another server")
            return
        self.worker = AnalysisWorker(db, self.config)
        self.worker.start()
        logger.info(
            "analysis worker %s: services %s, default %s, concurrency %d",
            self.worker.worker_id,
            ", ".join(self.config.service_names()),
            self.config.default_service,
            self.config.worker.concurrency,
        )

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None

    def notify(self) -> None:
        if self.worker is not None:
            self.worker.notify()
