# syntax=docker/dockerfile:1
# pystrument server image: the Svelte UI built by Node, then the Python package with the [server] extra.
#
#   docker build -t pystrument .                      # the server (last stage)
#   docker build --target demo -t pystrument-demo .   # the server image plus the demo's sample apps
#   docker run -p 127.0.0.1:8000:8000 -e PYSTRUMENT_API_TOKEN=... -e PYSTRUMENT_DATABASE_URL=postgresql+asyncpg://... pystrument
#
# Without PYSTRUMENT_DATABASE_URL the server runs its embedded Postgres in /data (mount a volume there).
# The server binds 0.0.0.0 inside the container, so it refuses to start without PYSTRUMENT_API_TOKEN
# (16+ characters; clients send `Authorization: Bearer <token>`) unless PYSTRUMENT_INSECURE=1 is given.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# --- 1. the web UI: web/ -> analysis_api/pystrument_analysis/web_dist ------------------------------
FROM ${NODE_IMAGE} AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# --- 2. one wheel holding the three packages and the built UI ---------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md hatch_build.py ./
COPY instrumentation/ instrumentation/
COPY collector_ext/ collector_ext/
COPY analysis_api/ analysis_api/
COPY --from=web /src/analysis_api/pystrument_analysis/web_dist/ analysis_api/pystrument_analysis/web_dist/
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -c "import glob, sys, zipfile; names = zipfile.ZipFile(glob.glob('/wheels/pystrument-*.whl')[0]).namelist(); sys.exit(0 if 'pystrument_analysis/web_dist/index.html' in names else 'the wheel lacks the web UI')"

# --- 3. the server -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS server
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYSTRUMENT_DATA_DIR=/data
RUN useradd --create-home --uid 10001 pystrument && mkdir /data && chown pystrument /data
COPY --from=build /wheels /wheels
# pip >= 25.1 resolves the OpenTelemetry packages' exact pins across extras (older pips give up).
RUN pip install --upgrade "pip>=25.1" && pip install "$(ls /wheels/pystrument-*.whl)[server]"
USER pystrument
WORKDIR /home/pystrument
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["pystrument", "serve", "--host", "0.0.0.0", "--port", "8000"]

# --- 4. the demo: the sample Flask and FastAPI apps, sending to a pystrument server --------------------
FROM server AS demo
USER root
RUN pip install "$(ls /wheels/pystrument-*.whl)[server,demo]"
USER pystrument
CMD ["pystrument", "demo", "--server", "http://pystrument:8000"]

# --- the default target: the server ------------------------------------------------------------------
FROM server
