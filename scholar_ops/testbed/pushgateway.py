"""A throwaway Prometheus Pushgateway from the local binary (demo, tests).

`throwaway_pushgateway()` runs Debian's prometheus-pushgateway on a free loopback port
with its persistence file (`pushgateway.data`) and its log in ``root``, waits for
/-/ready, and stops it at the end (SIGTERM, which makes it write the persistence file;
SIGKILL if it does not exit). A gateway started again on the same persistence file
holds the same groups: `PushgatewayServer.command()` is that command line.

It never touches a Pushgateway already running on the machine (port 9091).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from scholar_ops.sources.process import ServerStartError, find_program, running_server

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
DEBIAN_PACKAGE = "prometheus-pushgateway"
PERSISTENCE_NAME = "pushgateway.data"
LOG_NAME = "pushgateway.log"


class PushgatewayStartError(ServerStartError):
    """prometheus-pushgateway is missing or did not come up; the message ends with its log."""


@dataclass(frozen=True)
class PushgatewayServer:
    host: str
    port: int
    executable: str
    persistence_file: Path
    log_path: Path
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """host:port, as a Prometheus scrape target."""
        return f"{self.host}:{self.port}"

    def command(self, persistence_file: Path | str | None = None) -> list[str]:
        """The command line that serves this gateway's groups again, on the same port
        (``persistence_file``: how to spell the file, e.g. a relative path)."""
        return pushgateway_argv(
            self.executable, self.address, persistence_file or self.persistence_file
        )

    def metrics(self, timeout: float = 10) -> str:
        """The gateway's /metrics text (every pushed group, and its own metrics)."""
        response = httpx.get(f"{self.url}/metrics", timeout=timeout)
        response.raise_for_status()
        return response.text


def find_pushgateway() -> str:
    """/usr/bin/prometheus-pushgateway, else prometheus-pushgateway from PATH."""
    try:
        return find_program(DEBIAN_PACKAGE, package=DEBIAN_PACKAGE, candidates=[PUSHGATEWAY])
    except ServerStartError as e:
        raise PushgatewayStartError(str(e)) from None


def pushgateway_argv(
    exe: str,
    address: str,
    persistence_file: Path | str,
    *,
    admin_api: bool = False,
    log_level: str | None = None,
) -> list[str]:
    argv = [exe, f"--web.listen-address={address}", f"--persistence.file={persistence_file}"]
    if admin_api:
        argv.append("--web.enable-admin-api")
    if log_level:
        argv.append(f"--log.level={log_level}")
    return argv


def http_ready(path: str = "/-/ready") -> Callable[[int], bool]:
    """Ready when GET http://127.0.0.1:<port><path> answers 200 (Prometheus' tools)."""

    def ready(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


@contextmanager
def throwaway_pushgateway(
    root: Path,
    *,
    keep_data: bool = False,
    admin_api: bool = False,
    log_level: str = "warn",
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[PushgatewayServer]:
    """A running Pushgateway on 127.0.0.1 with ``root/pushgateway.data`` as its
    persistence file (an existing one is loaded); stopped on exit.

    ``admin_api``: --web.enable-admin-api (PUT /api/v1/admin/wipe deletes every group).
    ``root`` is removed at the end unless ``keep_data``."""
    exe = find_pushgateway()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    persistence = root / PERSISTENCE_NAME
    try:
        with running_server(
            DEBIAN_PACKAGE,
            lambda port: pushgateway_argv(
                exe, f"127.0.0.1:{port}", persistence, admin_api=admin_api, log_level=log_level
            ),
            cwd=root,
            log_path=root / LOG_NAME,
            ready=http_ready(),  # listening, and the persistence file loaded
            timeout=start_timeout,
            stop_timeout=stop_timeout,  # SIGTERM: it writes the persistence file, then exits
        ) as server:
            yield PushgatewayServer(
                server.host, server.port, exe, persistence, server.log_path, server.pid
            )
    except ServerStartError as e:
        raise PushgatewayStartError(str(e)) from None
    finally:
        if not keep_data:
            shutil.rmtree(root, ignore_errors=True)
