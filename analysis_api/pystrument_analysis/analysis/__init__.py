"""AI analysis of one trace: configuration, builtin rules, AI providers, the job worker and its API."""

from pystrument_analysis.analysis.config import AIConfig, ServiceConfig, WorkerSettings, load_config, parse_config
from pystrument_analysis.analysis.runtime import AnalysisRuntime
from pystrument_analysis.analysis.worker import AnalysisWorker

__all__ = [
    "AIConfig",
    "AnalysisRuntime",
    "AnalysisWorker",
    "ServiceConfig",
    "WorkerSettings",
    "load_config",
    "parse_config",
]
