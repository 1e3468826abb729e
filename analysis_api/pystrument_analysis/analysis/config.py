"""AI analysis configuration in the seed's form (section 4.5.1), read from a file and the environment.

The file (JSON or YAML) named by ``PYSTRUMENT_CONFIG`` holds ``ai_services``, ``default_service`` and
``analysis_templates``; strings may use ``${VAR}`` and ``${VAR:-default}``. Environment variables then
override it (see ``ENV_*`` below). With nothing configured, the deterministic ``builtin`` analyzer is
the one service and the default.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_CONFIG = "PYSTRUMENT_CONFIG"
ENV_DEFAULT_SERVICE = "PYSTRUMENT_AI_DEFAULT_SERVICE"
ENV_OPENAI_API_KEY = "OPENAI_API_KEY"
ENV_OPENAI_BASE_URL = "OPENAI_BASE_URL"
ENV_OPENAI_MODEL = "PYSTRUMENT_AI_OPENAI_MODEL"
ENV_WORKER = "PYSTRUMENT_ANALYSIS_WORKER"
ENV_CONCURRENCY = "PYSTRUMENT_ANALYSIS_CONCURRENCY"
ENV_LEASE = "PYSTRUMENT_ANALYSIS_LEASE_S"
ENV_POLL = "PYSTRUMENT_ANALYSIS_POLL_S"
ENV_MAX_ATTEMPTS = "PYSTRUMENT_ANALYSIS_MAX_ATTEMPTS"
ENV_JOB_TIMEOUT = "PYSTRUMENT_ANALYSIS_TIMEOUT_S"
ENV_MAX_SPANS = "PYSTRUMENT_ANALYSIS_MAX_SPANS"  # a trace with more spans is refused (the job fails, clearly)

BUILTIN = "builtin"
PROVIDERS = ("openai", "custom", BUILTIN)
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
MAX_INPUT_TOKENS = 3000
MAX_TEMPLATE_CHARS = 4000

DEFAULT_TEMPLATES: dict[str, str] = {
    "performance_analysis": (
        "Analyse the performance data of this web request, identify the bottlenecks and give concrete "
        "optimisation suggestions for the application's own code."
    ),
    "bottleneck_detection": "Identify the performance bottlenecks in the following call chain.",
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ServiceConfig:
    """One entry of ``ai_services``; ``endpoint`` is the base URL for openai, the full URL for custom."""

    name: str
    provider: str
    endpoint: str = ""
    api_key: str = ""
    model: str = ""
    max_tokens: int = 1500
    temperature: float = 0.2
    timeout: float = 30.0
    retries: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)
    json_mode: bool = True
    max_input_tokens: int = MAX_INPUT_TOKENS


@dataclass(frozen=True)
class WorkerSettings:
    """How this process runs analysis jobs from the shared queue in Postgres."""

    enabled: bool = True
    concurrency: int = 2
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    max_attempts: int = 3
    job_timeout: float = 300.0
    max_spans: int = 50_000


@dataclass(frozen=True)
class AIConfig:
    """The whole analysis configuration; ``builtin`` is always available."""

    services: Mapping[str, ServiceConfig] = field(default_factory=dict)
    default_service: str = BUILTIN
    templates: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    def service_names(self) -> list[str]:
        return [BUILTIN, *(n for n in self.services if n != BUILTIN)]

    def service(self, name: str) -> ServiceConfig | None:
        """The configured service, or None for ``builtin``."""
        svc = self.services.get(name)
        return None if svc is None or svc.provider == BUILTIN else svc

    def template_for(self, analysis_type: str) -> str:
        return self.templates.get(analysis_type) or self.templates.get("performance_analysis") or ""


def expand_env(value: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed config structure."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            current = env.get(name)
            if default is not None:
                return current if current else default
            if current is None:
                raise ValueError(
                    f"environment variable {name} is not set (used at {where or 'top level'} in the AI config); "
                    f"set it, or write ${{{name}:-default}}"
                )
            return current

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a JSON or YAML config file into a dict (not yet expanded)."""
    if not path.is_file():
        raise ValueError(f"{ENV_CONFIG}={path} does not exist; point it at a JSON or YAML file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}; use .yaml/.yml for YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold an object with ai_services / default_service / analysis_templates")
    return data


def openai_base_url(endpoint: str) -> str:
    """Accept the seed's ``.../v1/chat/completions`` or a base URL; return the base URL."""
    url = endpoint.strip().rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    return url


def _number(raw: Mapping[str, Any], key: str, default: float, where: str, lo: float, hi: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{where}.{key}={value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"{where}.{key}={value!r} must be a number between {lo} and {hi}")
    return float(value)


def _service(name: str, raw: Any, env: Mapping[str, str]) -> ServiceConfig:
    where = f"ai_services.{name}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be an object with at least 'provider'")
    provider = str(raw.get("provider", name if name in PROVIDERS else "")).strip().lower()
    if provider not in PROVIDERS:
        raise ValueError(f"{where}.provider={provider!r} is not supported; use one of {', '.join(PROVIDERS)}")
    headers = raw.get("headers")
    headers = {} if headers is None else headers
    if not isinstance(headers, dict):
        raise ValueError(f"{where}.headers must be an object of header name to value")
    common: dict[str, Any] = {
        "name": name,
        "provider": provider,
        "timeout": _number(raw, "timeout", 30.0, where, 0.05, 600),
        "retries": int(_number(raw, "retries", 1, where, 0, 10)),
        "max_tokens": int(_number(raw, "max_tokens", 1500, where, 16, 32000)),
        "temperature": _number(raw, "temperature", 0.2, where, 0, 2),
        "max_input_tokens": int(_number(raw, "max_input_tokens", MAX_INPUT_TOKENS, where, 500, MAX_INPUT_TOKENS)),
        "headers": {str(k): str(v) for k, v in headers.items()},
        "json_mode": bool(raw.get("json_mode", True)),
    }
    if provider == "openai":
        endpoint = str(raw.get("base_url") or raw.get("endpoint") or env.get(ENV_OPENAI_BASE_URL) or "")
        endpoint = openai_base_url(endpoint or DEFAULT_OPENAI_BASE_URL)
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"{where}.endpoint={endpoint!r} must be an http(s) URL such as {DEFAULT_OPENAI_BASE_URL}")
        model = str(raw.get("model") or "")
        if not model:
            raise ValueError(f'{where}.model is required for the openai provider, e.g. "gpt-4o-mini"')
        api_key = str(raw.get("api_key") or env.get(ENV_OPENAI_API_KEY) or "")
        return ServiceConfig(endpoint=endpoint, model=model, api_key=api_key, **common)
    if provider == "custom":
        endpoint = str(raw.get("endpoint") or "")
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"{where}.endpoint={endpoint!r} must be the http(s) URL the analysis is POSTed to")
        return ServiceConfig(endpoint=endpoint, **common)
    return ServiceConfig(**common)


def _worker(raw: Any, env: Mapping[str, str]) -> WorkerSettings:
    raw = dict(raw or {}) if isinstance(raw, dict) or raw is None else None
    if raw is None:
        raise ValueError("analysis_worker must be an object (concurrency, lease_seconds, ...)")
    for key, var in (
        ("concurrency", ENV_CONCURRENCY),
        ("lease_seconds", ENV_LEASE),
        ("poll_seconds", ENV_POLL),
        ("max_attempts", ENV_MAX_ATTEMPTS),
        ("job_timeout", ENV_JOB_TIMEOUT),
        ("max_spans", ENV_MAX_SPANS),
    ):
        if env.get(var):
            raw[key] = env[var]
    enabled = raw.get("enabled", True)
    if env.get(ENV_WORKER):
        enabled = env[ENV_WORKER].strip().lower() not in ("0", "false", "no", "off")
    where = "analysis_worker"
    return WorkerSettings(
        enabled=bool(enabled),
        concurrency=int(_number(raw, "concurrency", 2, where, 1, 64)),
        lease_seconds=_number(raw, "lease_seconds", 60, where, 0.5, 3600),
        poll_seconds=_number(raw, "poll_seconds", 1.0, where, 0.01, 60),
        max_attempts=int(_number(raw, "max_attempts", 3, where, 1, 100)),
        job_timeout=_number(raw, "job_timeout", 300, where, 1, 7200),
        max_spans=int(_number(raw, "max_spans", 50_000, where, 1, 10_000_000)),
    )


def parse_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> AIConfig:
    """Validate a parsed config (``${VAR}`` expanded here) and apply the environment overrides."""
    env = os.environ if env is None else env
    data = expand_env(dict(data), env)
    raw_services = data.get("ai_services")
    raw_services = {} if raw_services is None else raw_services
    if not isinstance(raw_services, dict):
        raise ValueError("ai_services must be an object of service name to settings")
    services = {str(name): _service(str(name), raw, env) for name, raw in raw_services.items()}
    if env.get(ENV_OPENAI_API_KEY) and "openai" not in services:
        services["openai"] = _service(
            "openai", {"provider": "openai", "model": env.get(ENV_OPENAI_MODEL) or DEFAULT_OPENAI_MODEL}, env
        )
    templates = dict(DEFAULT_TEMPLATES)
    raw_templates = data.get("analysis_templates")
    raw_templates = {} if raw_templates is None else raw_templates
    if not isinstance(raw_templates, dict):
        raise ValueError("analysis_templates must be an object of template name to prompt text")
    for key, text in raw_templates.items():
        if not isinstance(text, str) or len(text) > MAX_TEMPLATE_CHARS:
            raise ValueError(f"analysis_templates.{key} must be a string of at most {MAX_TEMPLATE_CHARS} characters")
        templates[str(key)] = text
    default = str(env.get(ENV_DEFAULT_SERVICE) or data.get("default_service") or BUILTIN)
    config = AIConfig(
        services=services,
        default_service=default,
        templates=templates,
        worker=_worker(data.get("analysis_worker"), env),
    )
    if default not in config.service_names():
        raise ValueError(
            f"default_service {default!r} is not configured; use one of {', '.join(config.service_names())}"
        )
    return config


def load_config(env: Mapping[str, str] | None = None) -> AIConfig:
    """Read ``PYSTRUMENT_CONFIG`` (if set) and the environment; raise ``ValueError`` naming the fix."""
    env = os.environ if env is None else env
    path = env.get(ENV_CONFIG)
    data = read_config_file(Path(path)) if path else {}
    try:
        return parse_config(data, env)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}" if path else str(exc)) from None
