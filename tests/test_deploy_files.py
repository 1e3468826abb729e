"""The deployment files agree with the code: Dockerfile, docker-compose.yml, .dockerignore, otel-collector.yaml.

No Docker engine runs here, so these parse the files and check every name, port, path and command
against the real package: a renamed setting, a removed CLI flag or a moved file fails here.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """ARGs before the first FROM, and the stages with their instructions (continuations joined)."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede FROM, found {keyword}"
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(ROOT / "Dockerfile")


@pytest.fixture(scope="module")
def stages(dockerfile: tuple[dict[str, str], list[Stage]]) -> dict[str, Stage]:
    return {s.name: s for s in dockerfile[1] if s.name}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


REQUIRED = re.compile(r"\$\{(\w+):\?([^}]+)\}")


def interpolate(value: str, given: dict[str, str] | None = None) -> str:
    """Compose's ``${NAME:-default}`` with only ``given`` set in the environment; a required ``${NAME:?message}``
    missing from ``given`` fails, as ``docker compose up`` would, with its message."""
    given = given or {}
    for match in REQUIRED.finditer(value):
        assert match[1] in given, f"compose stops: {match[1]}: {match[2]}"
    value = REQUIRED.sub(lambda m: given[m[1]], value)
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: given.get(m[1]) or m.group(2) or "", value)


def exec_form(args: str) -> list[str]:
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), f"use the exec form: {args}"
    return parsed


def parse_cli(argv: list[str]) -> Any:
    """The real ``pystrument`` parser; argparse exits (SystemExit) on an unknown subcommand or flag."""
    from pystrument_analysis.cli import _parser

    assert argv[0] == "pystrument", argv
    return _parser().parse_args(argv[1:])


def ignored_by_dockerignore(relative: str) -> bool:
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) or fnmatch.fnmatch(prefix, pattern)
        for pattern in patterns
        for prefix in prefixes
    )


# ---------------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_stages_build_web_then_wheel_then_server(stages: dict[str, Stage]) -> None:
    assert {"web", "build", "server", "demo"} <= stages.keys()
    web = stages["web"]
    assert any("npm ci" in run for run in web.all("RUN"))
    assert any("npm run build" in run for run in web.all("RUN"))
    assert json.loads((ROOT / "web" / "package.json").read_text())["scripts"]["build"]


def test_web_stage_output_is_where_svelte_writes_it(stages: dict[str, Stage]) -> None:
    svelte = (ROOT / "web" / "svelte.config.js").read_text()
    pages = re.search(r"pages:\s*'([^']+)'", svelte)
    assert pages, "svelte.config.js should set adapter-static's pages directory"
    built = (ROOT / "web" / pages.group(1)).resolve().relative_to(ROOT).as_posix()
    assert built == "analysis_api/pystrument_analysis/web_dist"
    copies = [c for c in stages["build"].all("COPY") if c.startswith("--from=web ")]
    assert copies, "the build stage copies the UI from the web stage"
    source, target = copies[0].split()[1:3]
    assert source.rstrip("/") == f"/src/web/{pages.group(1)}".replace("/src/web/../", "/src/").rstrip("/")
    assert target.rstrip("/") == built
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"{built}/**" in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["artifacts"]


def test_copied_paths_exist_and_are_not_dockerignored(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, all_stages = dockerfile
    checked = 0
    for stage in all_stages:
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _target = copy.split()
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"COPY {source}: no such path in the repository"
                assert not ignored_by_dockerignore(source.rstrip("/")), f"COPY {source} is excluded by .dockerignore"
                checked += 1
    assert checked >= 5


def test_dockerignore_keeps_build_junk_out() -> None:
    for junk in (".git", "web/node_modules", "analysis_api/pystrument_analysis/web_dist", ".nox", ".venv"):
        assert ignored_by_dockerignore(junk), junk
    for needed in ("pyproject.toml", "README.md", "web/src/app.html", "instrumentation/pystrument/__init__.py"):
        assert not ignored_by_dockerignore(needed), needed


def test_installed_extras_exist(stages: dict[str, Stage]) -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    found = set()
    for stage in stages.values():
        for run in stage.all("RUN"):
            for group in re.findall(r"\.whl\)\[([\w,]+)\]", run):
                found.update(group.split(","))
    assert {"server", "demo"} <= found
    assert found <= extras.keys(), found - extras.keys()


def test_server_cmd_is_a_real_serve_on_the_exposed_port(stages: dict[str, Stage]) -> None:
    from pystrument_collector.settings import DEFAULT_PORT

    server = stages["server"]
    cmd = exec_form(server.all("CMD")[-1])
    args = parse_cli(cmd)
    assert args.command == "serve"
    assert args.host == "0.0.0.0"
    assert args.port == DEFAULT_PORT
    assert server.all("EXPOSE") == [str(DEFAULT_PORT)]
    health = server.all("HEALTHCHECK")[-1]
    assert f"http://127.0.0.1:{DEFAULT_PORT}/health" in health


def test_demo_cmd_is_a_real_demo_command(stages: dict[str, Stage]) -> None:
    args = parse_cli(exec_form(stages["demo"].all("CMD")[-1]))
    assert args.command == "demo"
    assert args.server == "http://pystrument:8000"


def test_default_target_is_the_server(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, all_stages = dockerfile
    assert all_stages[-1].base == "server"


def test_image_env_names_are_real_settings(stages: dict[str, Stage]) -> None:
    from pystrument_collector import settings

    env_text = " ".join(stages["server"].all("ENV"))
    names = set(re.findall(r"\b(PYSTRUMENT_\w+)=", env_text))
    assert names, "the server stage sets PYSTRUMENT_DATA_DIR"
    known = {v for k, v in vars(settings).items() if k.startswith("ENV_")}
    assert names <= known, names - known


# ---------------------------------------------------------------------------------- docker-compose.yml


def test_compose_has_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "pystrument", "otel-collector", "demo"}
    assert compose["services"]["postgres"]["image"].split(":")[1].split(".")[0] == "16"
    assert compose["services"]["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")


def test_compose_builds_the_dockerfile_targets(compose: dict[str, Any], stages: dict[str, Stage]) -> None:
    for service, target in (("pystrument", "server"), ("demo", "demo")):
        build = compose["services"][service]["build"]
        assert (ROOT / build["context"] / "Dockerfile").exists()
        assert build["target"] == target and target in stages


def test_pystrument_env_names_and_database_url(compose: dict[str, Any]) -> None:
    from pystrument_analysis.api import access
    from pystrument_collector import settings
    from sqlalchemy.engine import make_url

    known = {v for k, v in vars(settings).items() if k.startswith("ENV_")} | {access.ENV_API_TOKEN}
    env = compose["services"]["pystrument"]["environment"]
    assert set(env) <= known, set(env) - known
    url = make_url(interpolate(env[settings.ENV_DATABASE_URL]))
    assert url.drivername == "postgresql+asyncpg"
    pg = {k: interpolate(v) for k, v in compose["services"]["postgres"]["environment"].items()}
    assert (url.username, url.password, url.database) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    assert url.host == "postgres" and url.port == 5432
    # The settings accept it as they would at start-up.
    parsed = settings.Settings.from_env(database_url=url.render_as_string(hide_password=False))
    assert parsed.database_url is not None
    assert compose["services"]["pystrument"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def _published(ports: list[str]) -> dict[int, tuple[str, int]]:
    """container port -> (host ip, host port) for "ip:host:container" entries."""
    out = {}
    for entry in ports:
        ip, host, container = entry.split(":")
        out[int(container)] = (ip, int(host))
    return out


def test_ports_agree_and_stay_on_loopback(compose: dict[str, Any]) -> None:
    from pystrument_collector.settings import DEFAULT_PORT

    server = _published(compose["services"]["pystrument"]["ports"])
    assert server == {DEFAULT_PORT: ("127.0.0.1", DEFAULT_PORT)}
    collector_config = yaml.safe_load((ROOT / "otel-collector.yaml").read_text())
    protocols = collector_config["receivers"]["otlp"]["protocols"]
    listening = {int(p["endpoint"].rsplit(":", 1)[1]) for p in protocols.values()}
    published = _published(compose["services"]["otel-collector"]["ports"])
    assert set(published) == listening == {4317, 4318}
    assert all(ip == "127.0.0.1" for ip, _ in published.values())


def test_collector_mounts_the_repo_config_and_sets_its_env(compose: dict[str, Any]) -> None:
    from pystrument_collector.settings import DEFAULT_PORT

    collector = compose["services"]["otel-collector"]
    mounts = [v.split(":") for v in collector["volumes"]]
    config_mounts = [m for m in mounts if m[0] == "./otel-collector.yaml"]
    assert config_mounts and (ROOT / "otel-collector.yaml").is_file()
    assert f"--config={config_mounts[0][1]}" in collector["command"]
    config_lines = (ROOT / "otel-collector.yaml").read_text().splitlines()
    config_text = "\n".join(line for line in config_lines if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{env:(\w+)", config_text))
    assert set(collector["environment"]) == used == {"PYSTRUMENT_ENDPOINT", "PYSTRUMENT_PROJECT_KEY"}
    assert collector["environment"]["PYSTRUMENT_ENDPOINT"] == f"http://pystrument:{DEFAULT_PORT}"


def test_compose_serves_beyond_loopback_only_with_a_token(compose: dict[str, Any], stages: dict[str, Stage]) -> None:
    """The image's ``serve --host 0.0.0.0`` starts only with a token (or --insecure): compose demands the token
    from .env, hands it to the server and to the demo (which calls the API), and never sets --insecure."""
    from pystrument_analysis.api.access import ENV_API_TOKEN, ENV_INSECURE, check_exposure

    host = parse_cli(exec_form(stages["server"].all("CMD")[-1])).host
    with pytest.raises(ValueError, match=ENV_API_TOKEN):
        check_exposure(host, None, False)
    token = "t" * 32
    for service in ("pystrument", "demo"):
        env = compose["services"][service]["environment"]
        assert ENV_INSECURE not in env
        with pytest.raises(AssertionError, match=f"compose stops: {ENV_API_TOKEN}"):
            interpolate(env[ENV_API_TOKEN])
        assert interpolate(env[ENV_API_TOKEN], {ENV_API_TOKEN: token}) == token
    server_env = compose["services"]["pystrument"]["environment"]
    check_exposure(host, interpolate(server_env[ENV_API_TOKEN], {ENV_API_TOKEN: token}), False)


def test_demo_service_targets_the_pystrument_service(compose: dict[str, Any]) -> None:
    from pystrument_collector.settings import DEFAULT_PORT

    demo = compose["services"]["demo"]
    args = parse_cli(demo["command"])
    assert args.command == "demo"
    assert args.server == f"http://pystrument:{DEFAULT_PORT}"
    assert args.requests > 0
    assert demo["depends_on"]["pystrument"]["condition"] == "service_healthy"


def test_health_path_in_the_files_is_served() -> None:
    from pystrument_analysis.app import create_app
    from pystrument_collector.settings import Settings

    app = create_app(Settings(database_url="postgresql+asyncpg://u:p@127.0.0.1:1/db"))
    paths = {route.path for route in app.routes}
    assert "/health" in paths and "/v1/traces" in paths


def test_compose_comment_commands_name_real_things() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if line.startswith("#   docker compose"):
            command = shlex.split(line.lstrip("# ").split("#")[0])
            assert command[:2] == ["docker", "compose"]
            services = {"postgres", "pystrument", "otel-collector", "demo"}
            named = [word for word in command[2:] if not word.startswith("-") and word not in ("up", "logs")]
            assert set(named) <= services, named


# ------------------------------------------------------------------------------------------------ docs

PACKAGES = ("instrumentation/pystrument", "collector_ext/pystrument_collector", "analysis_api/pystrument_analysis")
DOCS = ("installation.md", "configuration.md", "scaling.md")


def _setting_names() -> set[str]:
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            names.update(re.findall(r"^ENV_\w+\s*=\s*\"(PYSTRUMENT_[A-Z0-9_]+)\"", path.read_text(), re.MULTILINE))
    return names


def test_configuration_doc_lists_every_setting() -> None:
    names = _setting_names()
    assert {"PYSTRUMENT_DATABASE_URL", "PYSTRUMENT_PROFILE_RATE", "PYSTRUMENT_CONFIG"} <= names
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, f"docs/configuration.md does not document {missing}"
    documented = set(re.findall(r"`(PYSTRUMENT_[A-Z0-9_]+)`", text))
    collector_env = {"PYSTRUMENT_ENDPOINT", "PYSTRUMENT_PROJECT_KEY"}  # otel-collector.yaml's, not the code's
    assert documented - names <= collector_env, f"documented but not in the code: {sorted(documented - names)}"


def _doc_commands(name: str) -> list[list[str]]:
    """``pystrument ...`` command lines inside the doc's bash blocks (leading VAR=value and trailing & dropped)."""
    text = (ROOT / "docs" / name).read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line.split(" #")[0])
            while words and re.match(r"^[A-Z_]+=", words[0]):
                words.pop(0)
            if words and words[0] == "pystrument":
                commands.append([w for w in words if w != "&"])
    return commands


@pytest.mark.parametrize("doc", DOCS)
def test_doc_commands_are_real_cli_commands(doc: str) -> None:
    commands = _doc_commands(doc)
    assert commands, f"no pystrument command found in docs/{doc}"
    for command in commands:
        parse_cli(command)
    if doc == "installation.md":
        assert {c[1] for c in commands} == {"serve", "migrate", "demo"}


def test_docs_name_existing_files_and_links() -> None:
    for doc in DOCS:
        text = (ROOT / "docs" / doc).read_text()
        for target in re.findall(r"\]\(([\w.-]+\.md)(?:#[\w-]+)?\)", text):
            assert (ROOT / "docs" / target).exists(), f"{doc} links to missing docs/{target}"
        for path in re.findall(r"`((?:tests|web|analysis_api|collector_ext|instrumentation)/[\w./-]+)`", text):
            assert (ROOT / path).exists(), f"{doc} names missing path {path}"
