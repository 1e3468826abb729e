"""AI configuration: the seed's form from JSON or YAML, ``${VAR}`` expansion, env overrides, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pystrument_analysis.analysis.config import (
    BUILTIN,
    DEFAULT_TEMPLATES,
    expand_env,
    load_config,
    openai_base_url,
    parse_config,
)

SEED = {
    "ai_services": {
        "openai": {
            "provider": "openai",
            "api_key": "${OPENAI_API_KEY}",
            "model": "gpt-4",
            "endpoint": "https://api.openai.com/v1/chat/completions",
            "max_tokens": 4000,
            "temperature": 0.3,
        },
        "custom_service": {
            "provider": "custom",
            "endpoint": "http://your-ai-service.com/analyze",
            "headers": {"Authorization": "Bearer ${CUSTOM_AI_TOKEN}"},
            "timeout": 30,
        },
    },
    "default_service": "openai",
    "analysis_templates": {
        "performance_analysis": "分析以下性能数据，识别瓶颈并提供优化建议...",
        "bottleneck_detection": "识别以下调用链路中的性能瓶颈...",
    },
}
ENV = {"OPENAI_API_KEY": "sk-abc", "CUSTOM_AI_TOKEN": "tok"}


def test_seed_example_parses() -> None:
    config = parse_config(SEED, ENV)
    assert config.service_names() == [BUILTIN, "openai", "custom_service"]
    assert config.default_service == "openai"
    openai = config.service("openai")
    assert openai is not None
    assert (openai.endpoint, openai.api_key, openai.model, openai.max_tokens, openai.temperature) == (
        "https://api.openai.com/v1",
        "sk-abc",
        "gpt-4",
        4000,
        0.3,
    )
    custom = config.service("custom_service")
    assert custom is not None and custom.headers == {"Authorization": "Bearer tok"} and custom.timeout == 30
    assert config.template_for("bottleneck_detection") == "识别以下调用链路中的性能瓶颈..."
    assert config.template_for("manual") == SEED["analysis_templates"]["performance_analysis"]  # type: ignore[index]
    assert config.service(BUILTIN) is None


def test_nothing_configured_means_builtin() -> None:
    config = load_config({})
    assert config.service_names() == [BUILTIN] and config.default_service == BUILTIN
    assert config.template_for("manual") == DEFAULT_TEMPLATES["performance_analysis"]
    assert config.worker.enabled and config.worker.concurrency == 2


def test_expansion_with_defaults_and_missing_variable() -> None:
    env = {"HOST": "ai.local", "EMPTY": ""}
    assert expand_env("http://${HOST}:${PORT:-8080}/x", env) == "http://ai.local:8080/x"
    assert expand_env("${EMPTY:-fallback}", env) == "fallback"
    assert expand_env("${EMPTY}", env) == ""
    assert expand_env({"a": ["${HOST}", 3]}, env) == {"a": ["ai.local", 3]}
    with pytest.raises(ValueError, match=r"CUSTOM_AI_TOKEN is not set \(used at ai_services.custom_service.headers"):
        parse_config(SEED, {"OPENAI_API_KEY": "x"})


def test_json_and_yaml_files(tmp_path: Path) -> None:
    j = tmp_path / "ai.json"
    j.write_text(json.dumps(SEED), encoding="utf-8")
    y = tmp_path / "ai.yaml"
    y.write_text(
        "ai_services:\n"
        "  local:\n"
        "    provider: openai\n"
        "    base_url: ${LLM_URL:-http://127.0.0.1:11434/v1}\n"
        "    model: llama3\n"
        "default_service: local\n",
        encoding="utf-8",
    )
    assert load_config({"PYSTRUMENT_CONFIG": str(j), **ENV}).default_service == "openai"
    local = load_config({"PYSTRUMENT_CONFIG": str(y)}).service("local")
    assert local is not None and local.endpoint == "http://127.0.0.1:11434/v1" and local.api_key == ""
    with pytest.raises(ValueError, match="OPENAI_API_KEY is not set"):
        load_config({"PYSTRUMENT_CONFIG": str(j), "CUSTOM_AI_TOKEN": "t"})
    with pytest.raises(ValueError, match="does not exist"):
        load_config({"PYSTRUMENT_CONFIG": str(tmp_path / "nope.json")})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config({"PYSTRUMENT_CONFIG": str(bad)})


def test_env_overrides() -> None:
    env = {
        **ENV,
        "PYSTRUMENT_AI_DEFAULT_SERVICE": "custom_service",
        "PYSTRUMENT_ANALYSIS_CONCURRENCY": "5",
        "PYSTRUMENT_ANALYSIS_WORKER": "off",
        "PYSTRUMENT_ANALYSIS_LEASE_S": "12.5",
    }
    config = parse_config(SEED, env)
    assert config.default_service == "custom_service"
    assert (config.worker.concurrency, config.worker.enabled, config.worker.lease_seconds) == (5, False, 12.5)
    # OPENAI_API_KEY alone adds an "openai" service (not the default) and fills empty keys
    only_key = parse_config({}, {"OPENAI_API_KEY": "sk-env", "PYSTRUMENT_AI_OPENAI_MODEL": "gpt-4o"})
    svc = only_key.service("openai")
    assert svc is not None and (svc.api_key, svc.model, svc.endpoint) == (
        "sk-env",
        "gpt-4o",
        "https://api.openai.com/v1",
    )
    assert only_key.default_service == BUILTIN
    filled = parse_config({"ai_services": {"gpt": {"provider": "openai", "model": "m"}}}, {"OPENAI_API_KEY": "k2"})
    assert filled.service("gpt").api_key == "k2"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ai_services": {"x": {"provider": "anthropic"}}}, "provider='anthropic' is not supported"),
        ({"ai_services": {"x": {"provider": "openai"}}}, "model is required"),
        ({"ai_services": {"x": {"provider": "custom", "endpoint": "ftp://x"}}}, "must be the http"),
        ({"ai_services": {"x": {"provider": "custom", "endpoint": "http://x", "timeout": -1}}}, "timeout"),
        ({"ai_services": {"x": {"provider": "custom", "endpoint": "http://x", "headers": []}}}, "headers"),
        ({"default_service": "gpt"}, "default_service 'gpt' is not configured; use one of builtin"),
        ({"ai_services": []}, "ai_services must be an object"),
        ({"analysis_templates": {"a": 3}}, "analysis_templates.a must be a string"),
        ({"ai_services": {"x": {"provider": "openai", "model": "m", "max_input_tokens": 9000}}}, "max_input_tokens"),
    ],
)
def test_bad_config_names_the_fix(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(data, {})


def test_openai_endpoint_forms() -> None:
    assert openai_base_url("https://api.openai.com/v1/chat/completions") == "https://api.openai.com/v1"
    assert openai_base_url("http://127.0.0.1:8001/v1/") == "http://127.0.0.1:8001/v1"
    assert openai_base_url("http://h/openai/v1/completions") == "http://h/openai/v1"


def test_create_app_refuses_to_start_on_a_missing_variable(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pystrument_analysis.app import create_app

    path = tmp_path / "ai.json"
    path.write_text(json.dumps(SEED), encoding="utf-8")
    monkeypatch.setenv("PYSTRUMENT_CONFIG", str(path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("CUSTOM_AI_TOKEN", raising=False)
    with pytest.raises(ValueError, match=f"{path}: environment variable OPENAI_API_KEY is not set"):
        create_app(settings)
