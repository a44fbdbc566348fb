"""Throwaway Prometheus and AlertManager servers (Debian's packages), for tests and the stack.

``ServerLauncher(kind, ...)`` starts one server per call with the configuration
given as YAML text, each on a free loopback port in its own directory, waits
for /-/ready and returns an ``ObservabilityServer``; ``stop_all()`` stops every
server it started (``server.stop()`` one earlier). Render configurations with
``scholar_ops.testbed.alerting`` for the production rules, routes and templates
pointed at loopback services. Prometheus runs with --web.enable-lifecycle
(``server.reload()`` after rewriting ``server.config_path``); AlertManager
with clustering off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scholar_ops.sources.process import (
    RunningServer,
    find_program,
    log_tail,
    running_server,
    stop_process,
)
from scholar_ops.testbed.pushgateway import http_ready

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


@dataclass
class ObservabilityServer:
    """One Prometheus or AlertManager process, listening on 127.0.0.1:port."""

    kind: str
    workdir: Path
    config_path: Path
    process: RunningServer = field(repr=False)

    @property
    def host(self) -> str:
        return self.process.host

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """host:port, as a Prometheus target or an alerting endpoint."""
        return f"{self.host}:{self.port}"

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, timeout=30)

    def api(self, endpoint: str, **params: Any) -> Any:
        """The `data` of a successful Prometheus /api/v1/<endpoint> answer (raises otherwise)."""
        response = self.get(f"/api/v1/{endpoint}", **params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(
                f"{self.kind} /api/v1/{endpoint} {params}: HTTP {response.status_code} {body}"
            )
        return body["data"]

    def reload(self) -> None:
        """Re-read the configuration file (POST /-/reload)."""
        httpx.post(f"{self.url}/-/reload", timeout=30).raise_for_status()

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def running(self) -> bool:
        return self.process.running()

    def stop(self) -> None:
        stop_process(self.process.proc, 15)


def prometheus_args(workdir: Path, config_path: Path, port: int) -> list[str]:
    return [
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]


def alertmanager_args(workdir: Path, config_path: Path, port: int) -> list[str]:
    return [
        f"--config.file={config_path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: a single, private instance
        "--log.level=warn",
    ]


#: kind -> (its program, the Debian package bringing it, its arguments)
KINDS: dict[str, tuple[str, str, Callable[[Path, Path, int], list[str]]]] = {
    "prometheus": (PROMETHEUS, "prometheus", prometheus_args),
    "alertmanager": (ALERTMANAGER, "prometheus-alertmanager", alertmanager_args),
}


class ServerLauncher:
    """Starts servers of one kind in directories from ``make_dir``; stops them all at the end."""

    def __init__(self, kind: str, make_dir: Callable[[str], Path]) -> None:
        path, package, args = KINDS[kind]
        self.kind = kind
        self.exe = find_program(Path(path).name, package=package, candidates=[path])
        self.args = args
        self.make_dir = make_dir
        self._stack = ExitStack()

    def __call__(
        self, config: str, *, extra_args: Sequence[str] = (), ready_timeout: float = 60.0
    ) -> ObservabilityServer:
        workdir = self.make_dir(self.kind)
        config_path = workdir / f"{self.kind}.yml"
        config_path.write_text(config, encoding="utf-8")
        process = self._stack.enter_context(
            running_server(
                self.kind,
                lambda port: [self.exe, *self.args(workdir, config_path, port), *extra_args],
                cwd=workdir,
                log_path=workdir / f"{self.kind}.log",
                ready=http_ready(),
                timeout=ready_timeout,
                stop_timeout=15,
            )
        )
        return ObservabilityServer(self.kind, workdir, config_path, process)

    def stop_all(self) -> None:
        self._stack.close()
