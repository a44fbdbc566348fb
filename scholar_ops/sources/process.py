"""Local server processes run for a while: one way to find, start, wait for and stop them.

Restores start throwaway servers (a redis-server loading an RDB, a PostgreSQL
cluster), and so do the demo, the benchmarks and the tests (a Pushgateway,
Prometheus, AlertManager, an S3 stand-in, a Chroma server). Each is a program
run in the foreground on a free loopback port with its output in a log file:

- ``find_program`` finds it (or says which Debian package or ``make deps``
  brings it);
- ``running_server`` starts it with ``argv_for(port)``, retries on another
  port when something took the free one first, waits until it listens and
  ``ready(port)`` says so, and stops it on exit (SIGTERM, then SIGKILL);
  a start that fails raises ``ServerStartError`` ending with the log's tail.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scholar_ops.vault.errors import VaultError


class ServerStartError(VaultError):
    """A server did not come up; the message names it and ends with its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def find_program(name: str, *, package: str, candidates: Sequence[str | Path] = ()) -> str:
    """The first of ``candidates`` that exists, else ``name`` on PATH."""
    for c in candidates:
        if Path(c).exists():
            return str(c)
    found = shutil.which(name)
    if found is None:
        raise ServerStartError(
            f"{name} not found: run `make deps` (Debian: apt-get install {package})"
        )
    return found


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM (servers save and exit on it), then SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class RunningServer:
    name: str
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


_PORT_TAKEN = ("address already in use", "bind: address", "eaddrinuse")


@contextmanager
def running_server(
    name: str,
    argv_for: Callable[[int], list[str]],
    *,
    cwd: Path,
    log_path: Path,
    ready: Callable[[int], bool] | None = None,
    timeout: float = 60.0,
    stop_timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    attempts: int = 3,
) -> Iterator[RunningServer]:
    """Run ``argv_for(port)`` until the block ends (see the module docstring).

    ``ready(port)`` is asked until it returns True (it may raise ServerStartError
    to give up at once); without it, listening is enough.
    """
    host = "127.0.0.1"
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv_for(port),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
            )
        server = RunningServer(name, host, port, proc, log_path)
        try:
            _wait_ready(server, ready, timeout)
        except (ServerStartError, TimeoutError) as e:
            stop_process(proc, stop_timeout)
            last_error = f"{e}\n--- {log_path.name} ---\n{log_tail(log_path)}"
            if any(p in last_error.lower() for p in _PORT_TAKEN):
                continue  # another process took the port first: try another
            break
        except BaseException:
            stop_process(proc, stop_timeout)
            raise
        try:
            yield server
        finally:
            stop_process(proc, stop_timeout)
        return
    raise ServerStartError(f"could not start {name}: {last_error}")


def _wait_ready(server: RunningServer, ready: Callable[[int], bool] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    listening = False
    while True:
        if not server.running():
            raise ServerStartError(f"{server.name} exited {server.proc.returncode}")
        if not listening:
            try:
                wait_for_port(server.port, server.host, timeout=0.25)
                listening = True
            except TimeoutError:
                pass
        if listening and (ready is None or ready(server.port)):
            return
        if time.monotonic() > deadline:
            what = "listen" if not listening else "become ready"
            raise ServerStartError(f"{server.name} did not {what} within {timeout:.0f} s")
        time.sleep(0.05)
