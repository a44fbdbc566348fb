"""Throwaway Redis servers from the local redis-server binary (restores, drills, benchmarks, tests).

`throwaway_redis()` runs redis-server in the foreground on a free loopback port,
with its working directory in ``root``, and stops it at the end. Persistence is
off (``--save "" --appendonly no``): the server never writes an RDB of its own,
so one it was started from stays as it was. With ``rdb`` it starts from that RDB
file, placed as ``root/dump.rdb`` (a hard link when possible, else a copy); a
``dump.rdb`` already in ``root`` is loaded the same way. The context is entered
once the data set is loaded (PING answers), however long that takes, up to
``start_timeout``.

It never touches a Redis already running on the machine (port 6379).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scholar_ops.netutil import free_port, wait_for_port

RDB_NAME = "dump.rdb"


class RedisStartError(RuntimeError):
    """redis-server did not come up; the message ends with its log."""


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    dir: Path | None = None
    password: str | None = field(default=None, repr=False)
    pid: int | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def client(self, db: int = 0, **kwargs: object) -> redis.Redis:
        """A redis-py client on database ``db`` (bytes replies)."""
        opts: dict[str, object] = {"socket_timeout": 30, "socket_connect_timeout": 10}
        opts.update(kwargs)
        return redis.Redis(
            host=self.host,
            port=self.port,
            db=db,
            password=self.password,
            **opts,  # type: ignore[arg-type]
        )


def find_redis_server() -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RedisStartError(
            "redis-server not found: run `make deps` (Debian: apt-get install redis-server)"
        )
    return exe


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # with no save points, SIGTERM exits without writing an RDB
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _place_rdb(rdb: Path, root: Path) -> None:
    dest = root / RDB_NAME
    if dest.exists() and os.path.samefile(rdb, dest):
        return
    dest.unlink(missing_ok=True)
    try:
        os.link(rdb, dest)  # the server only reads it (and never saves over it)
    except OSError:
        shutil.copyfile(rdb, dest)


def _wait_ready(
    proc: subprocess.Popen[bytes], port: int, password: str | None, timeout: float
) -> None:
    """Until PING answers: loading a large RDB answers LOADING for a while."""
    deadline = time.monotonic() + timeout
    wait_for_port(port, timeout=min(timeout, 30))
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        password=password,
        socket_timeout=10,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RedisStartError(f"redis-server exited {proc.returncode}")
            try:
                client.ping()
                return
            except (redis.BusyLoadingError, redis.ConnectionError) as e:
                if isinstance(e, redis.AuthenticationError) or time.monotonic() > deadline:
                    raise RedisStartError(
                        f"redis-server not ready after {timeout:.0f} s: {e}"
                    ) from None
                time.sleep(0.05)  # loading its data (or exiting: poll() tells)
    finally:
        client.close()


@contextmanager
def throwaway_redis(
    root: Path | None = None,
    *,
    rdb: Path | None = None,
    keep_data: bool = False,
    config: Mapping[str, str | int] | None = None,
    password: str | None = None,
    start_timeout: float = 600.0,
) -> Iterator[RedisServer]:
    """A running redis-server in ``root`` (a fresh temporary directory by default); stopped on exit.

    ``config``: extra directives (``{"databases": 32, "repl-diskless-sync-delay": 0}``);
    ``password``: set as ``requirepass``. ``root`` is removed at the end unless
    ``keep_data`` (a directory made here is always removed).
    """
    exe = find_redis_server()
    made = root is None
    root = Path(tempfile.mkdtemp(prefix="scholar-ops-redis-")) if root is None else Path(root)
    root.mkdir(parents=True, exist_ok=True)
    logfile = root / "redis.log"
    try:
        if rdb is not None:
            _place_rdb(Path(rdb), root)
        extra: list[str] = []
        for name, value in (config or {}).items():
            extra += [f"--{name}", str(value)]
        if password is not None:
            extra += ["--requirepass", password]
        last_error = ""
        for _attempt in range(3):  # a free port can be taken before the server binds it
            port = free_port()
            argv = [
                exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
                "--dbfilename", RDB_NAME, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", "", *extra,
            ]  # fmt: skip
            with logfile.open("ab") as log:
                proc = subprocess.Popen(
                    argv,
                    cwd=root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                _wait_ready(proc, port, password, start_timeout)
            except (TimeoutError, RedisStartError, redis.RedisError) as e:
                last_error = f"{e}\n--- redis.log ---\n{_tail(logfile)}"
                _stop(proc)
                if "Address already in use" not in last_error:
                    break  # not a port race: retrying would fail the same way
                continue
            try:
                yield RedisServer(
                    host="127.0.0.1", port=port, dir=root, password=password, pid=proc.pid
                )
            finally:
                _stop(proc)
            return
        raise RedisStartError(f"could not start redis-server: {last_error}")
    finally:
        if made or not keep_data:
            shutil.rmtree(root, ignore_errors=True)
