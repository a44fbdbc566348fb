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
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scholar_ops.sources.process import ServerStartError, find_program, running_server

RDB_NAME = "dump.rdb"


class RedisStartError(ServerStartError):
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
    return find_program("redis-server", package="redis-server")


def _place_rdb(rdb: Path, root: Path) -> None:
    dest = root / RDB_NAME
    if dest.exists() and os.path.samefile(rdb, dest):
        return
    dest.unlink(missing_ok=True)
    try:
        os.link(rdb, dest)  # the server only reads it (and never saves over it)
    except OSError:
        shutil.copyfile(rdb, dest)


def _pings(password: str | None) -> Callable[[int], bool]:
    """Ready when PING answers: loading a large RDB answers LOADING for a while."""

    def ready(port: int) -> bool:
        client = redis.Redis(
            host="127.0.0.1",
            port=port,
            password=password,
            socket_timeout=10,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            client.ping()
            return True
        except redis.AuthenticationError as e:
            raise RedisStartError(f"redis-server refused the password: {e}") from None
        except (redis.BusyLoadingError, redis.ConnectionError):
            return False
        finally:
            client.close()

    return ready


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
    try:
        if rdb is not None:
            _place_rdb(Path(rdb), root)
        extra: list[str] = []
        for name, value in (config or {}).items():
            extra += [f"--{name}", str(value)]
        if password is not None:
            extra += ["--requirepass", password]

        def argv(port: int) -> list[str]:
            return [
                exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
                "--dbfilename", RDB_NAME, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", "", *extra,
            ]  # fmt: skip

        # with no save points, SIGTERM exits without writing an RDB
        with running_server(
            "redis-server",
            argv,
            cwd=root,
            log_path=root / "redis.log",
            ready=_pings(password),
            timeout=start_timeout,
        ) as server:
            yield RedisServer(
                host=server.host, port=server.port, dir=root, password=password, pid=server.pid
            )
    except ServerStartError as e:
        raise RedisStartError(str(e)) from None
    finally:
        if made or not keep_data:
            shutil.rmtree(root, ignore_errors=True)
