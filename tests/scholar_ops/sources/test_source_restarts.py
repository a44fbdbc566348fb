"""A source server going away mid-backup (fault matrix, README "Fault matrix"): PostgreSQL
restarted (``pg_ctl restart -m fast``) while pg_dump streams, Redis killed while it sends
its RDB over SYNC. Each on its own throwaway server (the session servers stay untouched).
The backup fails with a one-line SourceError marked transient (the backup task retries
those), commits no snapshot, the earlier snapshot stays whole, and the next run succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from scholar_ops.cli.common import EXIT_FAILED, first_line
from scholar_ops.cli.errors import exit_code
from scholar_ops.monitoring.backup_status import failure_reason
from scholar_ops.sources.postgres.cluster import PgServer, server_os_user, throwaway_cluster
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.postgres.dump import backup_database
from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.dump import backup_redis
from scholar_ops.sources.redis.server import throwaway_redis
from scholar_ops.vault.archiver import Progress
from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import SourceError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage

MB = 1 << 20

pytestmark = pytest.mark.services  # its own PostgreSQL and Redis servers


class _SlowStorage(LocalStorage):
    """Local storage whose pack uploads take ``delay`` seconds: the backup's bounded upload
    queue then holds the source mid-stream (pg_dump blocked on its pipe, Redis on its
    socket) long enough for the fault to land inside the transfer."""

    delay = 0.0

    def put(self, name: str, data: bytes) -> None:
        if name.startswith("data/"):
            time.sleep(self.delay)
        super().put(name, data)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    master = MasterKey.from_string("source-restart-master-key-0000")
    return Repository.init(_SlowStorage(tmp_path / "repo"), master, pack_size=1 * MB)


def _slow(repo: Repository, delay: float) -> None:
    assert isinstance(repo.storage, _SlowStorage)
    repo.storage.delay = delay


class _Once:
    """A progress callback that runs ``action`` in a thread once ``at`` bytes were read."""

    def __init__(self, at: int, action: Callable[[], None]) -> None:
        self.at, self.action = at, action
        self.thread: threading.Thread | None = None

    def __call__(self, p: Progress) -> None:
        if self.thread is None and p.bytes_read >= self.at:
            self.thread = threading.Thread(target=self.action)
            self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(120)


def _kill_with_children(pid: int) -> None:
    """SIGKILL a redis-server and its forked children (a diskless SYNC is sent by a fork)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    with throwaway_cluster() as server:
        yield server


def test_postgres_restarted_mid_dump_fails_clearly_and_the_next_run_succeeds(
    own_pg: PgServer, repo: Repository
) -> None:
    own_pg.create_database("app")
    conn = PgConnInfo(host=own_pg.host, port=own_pg.port, dbname="app", user=own_pg.user)
    with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as c:
        c.execute(
            "CREATE TABLE docs AS SELECT i, md5(i::text) || repeat(md5((i * 7)::text), 12) "
            "AS body FROM generate_series(1, 200000) i"
        )
    kept = backup_database(repo, conn)

    prefix, _, _ = server_os_user()

    def restart() -> None:
        log = str(own_pg.datadir.parent / "postgres.log")
        pg_ctl = [own_pg.tool("pg_ctl"), "restart", "-D", str(own_pg.datadir), "-m", "fast"]
        subprocess.run(
            [*prefix, *pg_ctl, "-w", "-t", "60", "-l", log],
            cwd=own_pg.datadir.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the new postmaster must not hold our pipes
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=90,
        )

    trigger = _Once(2 * MB, restart)
    _slow(repo, 0.3)
    try:
        with pytest.raises(SourceError) as failed:
            backup_database(repo, conn, backup_type="full", progress=trigger)
    finally:
        trigger.join()
        _slow(repo, 0.0)
    line = first_line(failed.value)
    # the command line prints this first line only
    assert "public.docs" in line, line
    # which of the two libpq reports depends on when the restart lands
    assert "server closed the connection" in line or "terminating connection" in line, line
    assert failed.value.transient, line  # the backup task retries it
    assert exit_code(failed.value) == EXIT_FAILED
    assert failure_reason(failed.value) == "source_unreachable"

    assert repo.snapshot_ids() == [kept.backup_id], "no half snapshot"
    assert check(repo, read_data=1.0).ok
    snap = backup_database(repo, conn, backup_type="full")
    assert repo.snapshot_ids() == sorted([kept.backup_id, snap.backup_id])
    assert check(repo, read_data=1.0).ok


def test_redis_killed_during_sync_fails_clearly_and_the_next_run_succeeds(
    repo: Repository, tmp_path: Path
) -> None:
    config = {"repl-diskless-sync-delay": 0}
    with throwaway_redis(tmp_path / "redis-1", config=config) as server:
        client = server.client()
        pipe = client.pipeline(transaction=False)
        for i in range(3000):
            pipe.set(f"doc:{i}", os.urandom(16 * 1024))
        pipe.execute()
        conn = RedisConnInfo(host=server.host, port=server.port)
        kept = backup_redis(repo, conn)
        assert server.pid is not None
        pid = server.pid
        trigger = _Once(2 * MB, lambda: _kill_with_children(pid))
        _slow(repo, 0.3)
        try:
            with pytest.raises(SourceError) as failed:
                backup_redis(repo, conn, backup_type="full", progress=trigger)
        finally:
            trigger.join()
            _slow(repo, 0.0)
    line = first_line(failed.value)
    assert "\n" not in str(failed.value), line
    assert failed.value.transient, line
    assert exit_code(failed.value) == EXIT_FAILED
    assert failure_reason(failed.value) == "source_unreachable"
    assert repo.snapshot_ids() == [kept.backup_id], "no half snapshot"
    assert check(repo, read_data=1.0).ok

    # the server is back (a new process, its data loaded again): the next run succeeds
    with throwaway_redis(tmp_path / "redis-2", config=config) as server:
        server.client().set("doc:0", b"back")
        snap = backup_redis(repo, RedisConnInfo(host=server.host, port=server.port))
    assert snap.backup_id in repo.snapshot_ids()
    assert check(repo, read_data=1.0).ok
