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
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from scholar_ops.netutil import free_port, wait_for_port

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
DEBIAN_PACKAGE = "prometheus-pushgateway"
PERSISTENCE_NAME = "pushgateway.data"
LOG_NAME = "pushgateway.log"


class PushgatewayStartError(RuntimeError):
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
    exe = PUSHGATEWAY if Path(PUSHGATEWAY).exists() else shutil.which(DEBIAN_PACKAGE)
    if exe is None:
        raise PushgatewayStartError(
            f"prometheus-pushgateway not found: run `make deps` (Debian: apt-get install "
            f"{DEBIAN_PACKAGE})"
        )
    return exe


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


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # it writes the persistence file, then exits
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_ready(proc: subprocess.Popen[bytes], host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:  # listening (or exited: poll() tells) ...
        if proc.poll() is not None:
            raise PushgatewayStartError(f"prometheus-pushgateway exited {proc.returncode}")
        try:
            wait_for_port(port, host, timeout=0.25)
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise PushgatewayStartError(
                    f"prometheus-pushgateway does not listen after {timeout:.0f} s"
                ) from None
    url = f"http://{host}:{port}/-/ready"
    while True:  # ... then ready (the persistence file loaded)
        if proc.poll() is not None:
            raise PushgatewayStartError(f"prometheus-pushgateway exited {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise PushgatewayStartError(f"the Pushgateway is not ready after {timeout:.0f} s")
        time.sleep(0.05)


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
    persistence, logfile = root / PERSISTENCE_NAME, root / LOG_NAME
    host = "127.0.0.1"
    try:
        last_error = ""
        for _attempt in range(3):  # a free port can be taken before the gateway binds it
            port = free_port()
            argv = pushgateway_argv(
                exe, f"{host}:{port}", persistence, admin_api=admin_api, log_level=log_level
            )
            with logfile.open("ab") as log:
                proc = subprocess.Popen(
                    argv, cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            try:
                _wait_ready(proc, host, port, start_timeout)
            except PushgatewayStartError as e:
                _stop(proc, stop_timeout)
                last_error = f"{e}\n--- {LOG_NAME} ---\n{_tail(logfile)}"
                if "address already in use" not in last_error.lower():
                    break  # not a port race: retrying would fail the same way
                continue
            except BaseException:
                _stop(proc, stop_timeout)
                raise
            try:
                yield PushgatewayServer(host, port, exe, persistence, logfile, proc.pid)
            finally:
                _stop(proc, stop_timeout)
            return
        raise PushgatewayStartError(f"could not start prometheus-pushgateway: {last_error}")
    finally:
        if not keep_data:
            shutil.rmtree(root, ignore_errors=True)
