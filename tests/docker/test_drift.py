"""The compose stack agrees with the code it runs, so the two cannot drift apart.

Each service's command names a real program of this project (a console script, an
importable module, a Prefect command) with options that program accepts; each port is
the one the program listens on and the one every other file uses to reach it
(prometheus.yml, the Grafana datasource, the Prefect API URL, the Pushgateway and
AlertManager URLs); each environment variable is one the code (or Prefect, or uv) reads,
and the variables the programs need are there. The services are read through Docker
Compose itself (tests/docker/compose.py), so anchors, merges and the image's ENV/CMD
count as they would in a container.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.docker.compose import (
    ServiceSpec,
    compose_services,
    healthcheck_urls,
    project_image,
)
from tests.docker.paths import (
    ALERTMANAGER_YML,
    DATASOURCES_YML,
    DOCKER,
    PROMETHEUS_YML,
    REPO,
    load_yaml,
)

#: the project's Python code: what reads environment variables
CODE_DIRS = ("scholar_ops", "blocks", "tasks", "flows")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")

#: upstream images of the stack -> the Debian binary of the same program and version
#: (the one the tests run), and the directory the image's user owns, where its data volume
#: goes (their Dockerfiles: USER nobody, that directory chowned to it)
UPSTREAM = {
    "prom/prometheus": ("prometheus", "/prometheus"),
    "prom/pushgateway": ("prometheus-pushgateway", "/pushgateway"),
    "prom/alertmanager": ("prometheus-alertmanager", "/alertmanager"),
}
#: where the data volume of these is an option of the command
DATA_OPTION = {
    "prom/prometheus": "--storage.tsdb.path",
    "prom/pushgateway": "--persistence.file",
    "prom/alertmanager": "--storage.path",
}


@cache
def services() -> dict[str, ServiceSpec]:
    return compose_services()


def _ours() -> list[ServiceSpec]:
    return [s for s in services().values() if s.project_image]


def _repo(image: str) -> str:
    return image.rsplit(":", 1)[0]


def _tag(image: str) -> str:
    return image.rsplit(":", 1)[1]


def _flags(argv: tuple[str, ...]) -> list[str]:
    return [a.split("=", 1)[0] for a in argv if a.startswith("--")]


def _has_option(help_text: str, flag: str) -> bool:
    """``flag`` is an option of the help text (whole: ``--pool`` is not ``--pool-name``)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w.-])", help_text) is not None


def _run(cmd: list[str], *, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=None if env is None else {**os.environ, **env},
        cwd=REPO,
    )
    assert result.returncode == 0, f"{' '.join(cmd)}: {result.stderr}{result.stdout}"
    return result.stdout + result.stderr


def _prefect_help(args: list[str], tmp: Path) -> str:
    env = {"PREFECT_HOME": str(tmp / "prefect"), "COLUMNS": "300", "NO_COLOR": "1"}
    return _run([str(Path(sys.executable).parent / "prefect"), *args, "--help"], env=env)


def _string_values(tree: ast.Module) -> set[str]:
    """The strings a module spells out: constants, and the sums and f-strings of
    constants and of the module's own string constants (``ENV_PREFIX + "DISK_PATHS"``)."""
    consts: dict[str, str] = {}

    def value(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else None
        if isinstance(node, ast.Name):
            return consts.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = value(node.left), value(node.right)
            return None if left is None or right is None else left + right
        if isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    if part.conversion != -1 or part.format_spec is not None:
                        return None
                    piece = value(part.value)
                else:
                    piece = value(part)
                if piece is None:
                    return None
                parts.append(piece)
            return "".join(parts)
        return None

    for stmt in tree.body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            found = value(stmt.value)
            for target in targets:
                if isinstance(target, ast.Name) and found is not None:
                    consts[target.id] = found
    out = set(consts.values())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant | ast.BinOp | ast.JoinedStr):
            found = value(node)
            if found is not None:
                out.add(found)
    return out


@cache
def code_env_names() -> frozenset[str]:
    """Every environment variable name the project's code spells out (whole strings, or
    built from its constants), plus the health service's per-check timeouts, whose names
    are built from the check names at run time."""
    from scholar_ops.monitoring.health import config as health

    names: set[str] = set()
    for top in CODE_DIRS:
        for path in (REPO / top).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names |= {s for s in _string_values(tree) if ENV_NAME.match(s)}
    names |= {f"{health.ENV_PREFIX}{c.upper()}_TIMEOUT" for c in health.BUILTIN_CHECKS}
    return frozenset(names)


@cache
def prefect_setting_names() -> frozenset[str]:
    """Every environment variable Prefect reads as a setting (canonical names and aliases)."""
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    return frozenset(_get_valid_setting_names(Settings))


def _prefect_default(name: str) -> object:
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_settings_fields

    return _get_settings_fields(Settings)[name].default


@cache
def uv_env_names() -> frozenset[str]:
    """The variables `uv sync` reads (its help lists them as ``[env: NAME=]``)."""
    uv = [shutil.which("uv") or "python3", *([] if shutil.which("uv") else ["-m", "uv"])]
    return frozenset(re.findall(r"\[env:\s+(\w+)=", _run([*uv, "sync", "--help"])))


def _url(spec: ServiceSpec, name: str) -> tuple[str, int]:
    url = spec.env.get(name)
    assert url, f"{spec.name}: {name} is not set"
    parts = urlsplit(url)
    assert parts.hostname and parts.port, f"{spec.name}: {name}={url} names no host:port"
    return parts.hostname, parts.port


def _deployment_pools() -> set[str]:
    doc = load_yaml(REPO / "deployments.yaml")
    return {d["work_pool"]["name"] for d in doc["deployments"]}


# -- commands ------------------------------------------------------------------------------


#: Prefect's options that go before the command (``prefect --no-prompt deploy``)
PREFECT_GLOBAL_FLAGS = ("--no-prompt", "--prompt")


def check_argv(where: str, argv: tuple[str, ...], tmp: Path) -> None:
    """``argv`` runs a real program of the project's image with options it accepts: a
    ``python -m`` module, a Prefect command, or a console script of pyproject.toml."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    if argv[:2] == ("python", "-m"):
        module = argv[2]
        assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"
        help_text = _run([sys.executable, "-m", module, "--help"])
        for flag in _flags(argv[3:]):
            assert _has_option(help_text, flag), f"{where}: {module} has no option {flag}"
    elif argv[0] == "prefect":
        rest = [a for a in argv[1:] if a not in PREFECT_GLOBAL_FLAGS]
        sub = rest[: next((i for i, a in enumerate(rest) if a.startswith("-")), len(rest))]
        assert sub, f"{where}: no Prefect command"
        help_text = _prefect_help(sub, tmp)
        for flag in _flags(tuple(rest)):
            assert _has_option(help_text, flag), f"{where}: `prefect {' '.join(sub)}` has no {flag}"
        root_help = _prefect_help([], tmp)
        for flag in set(argv) & set(PREFECT_GLOBAL_FLAGS):
            assert _has_option(root_help, flag), f"{where}: prefect has no option {flag}"
    elif argv[0] in scripts:
        assert argv[0] == "scholar-ops", f"{where}: {argv[0]} is not checked here yet"
        from scholar_ops.cli import build_parser

        try:
            build_parser().parse_args(list(argv[1:]))
        except SystemExit:
            pytest.fail(f"{where}: scholar-ops does not accept {' '.join(argv[1:])}")
    else:
        pytest.fail(f"{where}: {argv[0]!r} is no program of this project or of Prefect")


@pytest.mark.parametrize("name", [s.name for s in _ours()])
def test_project_services_run_real_programs(name: str, tmp_path: Path) -> None:
    check_argv(name, services()[name].command, tmp_path)


def _readme_runs() -> list[tuple[str, tuple[str, ...]]]:
    """(service, argv) of every ``docker compose run`` command of docker/README.md."""
    out = []
    for line in (DOCKER / "README.md").read_text(encoding="utf-8").splitlines():
        words = shlex.split(line.split("#", 1)[0]) if "docker compose run" in line else []
        if words[:3] != ["docker", "compose", "run"]:
            continue
        rest = words[3:]
        while rest[0].startswith("-"):  # run's own options: --rm, -v SRC:DST, -e NAME
            rest = rest[2:] if rest[0] in ("-v", "--volume", "-e", "--env") else rest[1:]
        out.append((rest[0], tuple(rest[1:])))
    return out


def test_readme_commands_run_real_programs(tmp_path: Path) -> None:
    runs = _readme_runs()
    assert len(runs) >= 3, runs
    for service, argv in runs:
        assert service in services(), f"docker/README.md: no service {service}"
        assert services()[service].project_image
        check_argv(f"docker/README.md: {' '.join(argv)}", argv, tmp_path)


def test_the_image_runs_the_worker_by_default() -> None:
    image = project_image()
    assert image.cmd == services()["prefect-worker"].command
    assert image.cmd[:3] == ("prefect", "worker", "start")


def test_workers_serve_every_pool_of_the_deployments() -> None:
    from prefect.workers.process import ProcessWorker

    workers = [s for s in _ours() if s.command[:3] == ("prefect", "worker", "start")]
    assert workers, "no Prefect worker in the stack"
    served = {w.option("--pool") for w in workers}
    assert _deployment_pools() <= served, f"pools without a worker: {_deployment_pools() - served}"
    for worker in workers:
        # a process worker runs flows inside its own container: the project is there
        assert worker.option("--type") == ProcessWorker.type


def test_health_service_command_parses_and_listens_on_its_port() -> None:
    from scholar_ops.monitoring.health import service as health_service

    spec = services()["monitoring-service"]
    assert spec.command[:3] == ("python", "-m", health_service.__name__)
    args = health_service._parse_args(list(spec.command[3:]))
    assert args.port == health_service.DEFAULT_PORT
    assert set(spec.ports) == {args.port}
    # its default host is loopback: in a container it must listen on every interface
    assert health_service.DEFAULT_HOST == "127.0.0.1"
    assert args.host == "0.0.0.0"


def test_prefect_server_command_listens_on_its_port() -> None:
    spec = services()["prefect-server"]
    assert spec.command[:3] == ("prefect", "server", "start")
    default = _prefect_default("PREFECT_SERVER_API_PORT")
    port = int(spec.option("--port") or str(default))
    assert set(spec.ports) == {port}
    assert spec.option("--host") == "0.0.0.0"


def test_prefect_server_image_is_the_locked_prefect() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (locked,) = [p["version"] for p in lock["package"] if p["name"] == "prefect"]
    python = re.match(r"python:(\d+\.\d+)", project_image().base)
    assert python, project_image().base
    spec = services()["prefect-server"]
    assert _repo(spec.image) == "prefecthq/prefect"
    assert _tag(spec.image) == f"{locked}-python{python[1]}"
    assert load_yaml(REPO / "deployments.yaml")["prefect-version"] == locked


@pytest.mark.parametrize("name", [n for n, s in services().items() if _repo(s.image) in UPSTREAM])
def test_upstream_programs_match_the_debian_binaries(name: str) -> None:
    """Same version as the binary the tests run, every option exists, the port is the one
    the program listens on, the data is on the volume the image's user can write."""
    spec = services()[name]
    binary, data_dir = UPSTREAM[_repo(spec.image)]
    version = _run([binary, "--version"]).split("version ", 1)[1].split()[0].split("+")[0]
    assert _tag(spec.image) == f"v{version}", f"{name}: image {spec.image}, Debian {version}"
    help_text = _run([binary, "--help"])
    for flag in _flags(spec.command):
        assert _has_option(help_text, flag), f"{name}: {binary} has no {flag}"
    listen = spec.option("--web.listen-address")
    if listen is None:
        default = re.search(r'--web\.listen-address="?([^"\s]*)"?', help_text)
        assert default, f"{binary} --help shows no default listen address"
        listen = default[1]
    assert set(spec.ports) == {int(listen.rsplit(":", 1)[1])}
    assert data_dir in spec.mounts, f"{name}: no volume on {data_dir}, the image user's directory"
    data = spec.option(DATA_OPTION[_repo(spec.image)])
    assert data is not None and (data == data_dir or data.startswith(data_dir + "/")), data


def test_worker_stops_on_sigint() -> None:
    for spec in _ours():
        if spec.command[:2] == ("prefect", "worker"):
            assert spec.stop_signal == "SIGINT", spec.name


def test_project_volumes_are_created_for_the_image_user() -> None:
    image = project_image()
    made = " ".join(image.run)
    for spec in _ours():
        for target, source in spec.mounts.items():
            if not source.startswith("/"):  # a named volume takes the directory's owner
                assert re.search(rf"install -d -o \S+ -g \S+ {re.escape(target)}\b", made), (
                    f"{spec.name}: {target} is not created for the image's user"
                )
    assert image.user.split(":")[0].isdigit(), "USER must be numeric (runAsNonRoot)"


# -- ports and addresses ---------------------------------------------------------------------


def test_published_ports_are_the_container_ports() -> None:
    for spec in services().values():
        for target, published in spec.ports.items():
            assert published == target, f"{spec.name}: {published}:{target}"


def _address_texts() -> dict[str, str]:
    """Everything that names a service by host:port inside the stack."""
    texts = {
        f"{s.name} environment": "\n".join(f"{k}={v}" for k, v in s.env.items())
        for s in services().values()
    }
    texts |= {f"{s.name} command": " ".join(s.command) for s in services().values()}
    paths = [PROMETHEUS_YML, DATASOURCES_YML, ALERTMANAGER_YML, DOCKER / "README.md"]
    for top in CODE_DIRS:  # examples and defaults in the code (blocks/monitoring.py...)
        paths += sorted((REPO / top).rglob("*.py"))
    for path in paths:
        texts[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
    return texts


def test_every_address_of_a_service_uses_its_port() -> None:
    names = "|".join(re.escape(n) for n in services())
    address = re.compile(rf"(?<![\w.-])({names}):(\d+)(?![\d.])")
    found = set()
    for where, text in _address_texts().items():
        for host, port in address.findall(text):
            found.add(host)
            assert int(port) in services()[host].ports, f"{where}: {host}:{port}"
    # Prometheus reaches all of these, the clients reach the Prefect API
    assert {"pushgateway", "alertmanager", "monitoring-service", "prometheus"} <= found
    assert "prefect-server" in found


def test_healthchecks_fetch_their_own_port() -> None:
    for name, urls in healthcheck_urls().items():
        for url in urls:
            parts = urlsplit(url)
            assert parts.hostname == "localhost", f"{name}: {url}"
            assert parts.port in services()[name].ports, f"{name}: {url}"


def test_urls_for_the_browser_use_published_ports() -> None:
    """URLs a person opens (Prefect UI links, the UI's API, AlertManager's links) go to
    localhost and the published port."""
    server = services()["prefect-server"]
    for name in ("PREFECT_UI_URL", "PREFECT_UI_API_URL"):
        host, port = _url(server, name)
        assert (host, port) == ("localhost", server.ports[4200]), name
    assert server.env["PREFECT_UI_API_URL"].endswith("/api")
    am = services()["alertmanager"]
    external = urlsplit(am.option("--web.external-url") or "")
    assert (external.hostname, external.port) == ("localhost", next(iter(am.ports.values())))


# -- environment --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [s.name for s in _ours()])
def test_every_variable_is_read_by_someone(name: str) -> None:
    image_env = project_image().env
    for var in services()[name].env:
        if var == "PATH":
            continue
        if var.startswith("PREFECT_"):
            assert var in prefect_setting_names(), f"{name}: {var} is no Prefect setting"
        elif var.startswith("UV_"):
            assert var in image_env, f"{name}: {var} is for building the image only"
            assert var in uv_env_names(), f"{name}: uv reads no {var}"
        else:
            assert var in code_env_names(), f"{name}: no code of this project reads {var}"


def test_prefect_server_variables_are_prefect_settings() -> None:
    spec = services()["prefect-server"]
    for var in spec.env:
        assert var in prefect_setting_names(), var
    # its database (SQLite under PREFECT_HOME) is on a volume
    assert spec.env["PREFECT_HOME"] in spec.mounts


def test_clients_reach_the_prefect_api() -> None:
    server = services()["prefect-server"]
    clients = [s for s in _ours() if s.command[0] in ("prefect", "scholar-ops")]
    assert clients
    for spec in clients:
        host, port = _url(spec, "PREFECT_API_URL")
        assert (host, port) == ("prefect-server", next(iter(server.ports)))
        assert spec.env["PREFECT_API_URL"].endswith("/api")


def test_workers_find_the_project() -> None:
    """The deployments' pull step (scholar_ops.project) needs SCHOLAR_OPS_HOME holding
    deployments.yaml and the flows: the image's WORKDIR, where they are copied."""
    from scholar_ops.project import HOME_ENV

    image = project_image()
    pull = load_yaml(REPO / "deployments.yaml")["pull"]
    assert any("scholar_ops.project.set_project_directory" in step for step in pull)
    in_workdir = set()
    for sources, dest in image.copies:
        for src in sources:
            path = f"{dest}{src}" if dest.endswith("/") else dest
            in_workdir.add(path.removeprefix("./"))
    assert {"deployments.yaml", "flows", "tasks", "blocks", "scholar_ops"} <= in_workdir
    for spec in _ours():
        if spec.command[:2] == ("prefect", "worker"):
            assert spec.env.get(HOME_ENV) == image.workdir, spec.name


def test_clients_push_metrics_and_alert_where_the_stack_has_them() -> None:
    from blocks.monitoring import PUSHGATEWAY_URL_ENV, MonitoringSettings

    push = services()["pushgateway"]
    am = services()["alertmanager"]
    for spec in _ours():
        if spec.command[:2] != ("prefect", "worker"):
            continue
        assert _url(spec, PUSHGATEWAY_URL_ENV) == ("pushgateway", next(iter(push.ports)))
        # the value is one the code accepts (tasks/metrics.py builds this from it)
        MonitoringSettings(pushgateway_url=spec.env[PUSHGATEWAY_URL_ENV])
        assert _url(spec, "SCHOLAR_OPS_ALERTMANAGER_URL") == ("alertmanager", next(iter(am.ports)))


def test_health_service_environment_loads() -> None:
    from scholar_ops.monitoring.health.config import ENV_PREFIX, HealthConfig

    spec = services()["monitoring-service"]
    config = HealthConfig.load(None, env=dict(spec.env))
    assert config.disk is not None
    assert config.disk.paths == tuple(spec.env[f"{ENV_PREFIX}DISK_PATHS"].split(os.pathsep))


def test_grafana_secret_files_are_mounted() -> None:
    from tests.docker.compose import compose_model

    spec = services()["grafana"]
    mounted = {
        f"/run/secrets/{s['source']}" for s in compose_model()["services"]["grafana"]["secrets"]
    }
    for var, value in spec.env.items():
        if var.endswith("__FILE"):
            assert value in mounted, var
