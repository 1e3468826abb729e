"""``pystrument demo``: the server plus a Flask and a FastAPI sample app under ``opentelemetry-instrument``,
with bounded traffic, so a first run shows real function spans and real bottlenecks.

The sample apps (``sample_apps/``) need the ``demo`` extra: ``pip install 'pystrument[demo]'``.
"""

from pystrument_analysis.demo._runner import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
