"""Throwaway Redis servers for the Redis adapter's tests (never the machine's 6379).

`redis_source` and `redis_target` (module): servers started by scholar_ops.sources.redis.server;
the source streams diskless RDBs without the default 5 s wait for more replicas.
`source` / `target` (function): their connection settings, every database emptied.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.server import RedisServer, throwaway_redis
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage

FAST_SYNC = {"repl-diskless-sync-delay": 0}


def conninfo(server: RedisServer, **kw: object) -> RedisConnInfo:
    return RedisConnInfo(host=server.host, port=server.port, password=server.password, **kw)  # type: ignore[arg-type]


def _emptied(server: RedisServer) -> RedisConnInfo:
    client = server.client()
    try:
        client.flushall()
        client.execute_command("FUNCTION", "FLUSH")
    finally:
        client.close()
    return conninfo(server)


@pytest.fixture(scope="module")
def redis_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with throwaway_redis(tmp_path_factory.mktemp("redis-src"), config=FAST_SYNC) as server:
        yield server


@pytest.fixture(scope="module")
def redis_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with throwaway_redis(tmp_path_factory.mktemp("redis-dst")) as server:
        yield server


@pytest.fixture
def source(redis_source: RedisServer) -> RedisConnInfo:
    return _emptied(redis_source)


@pytest.fixture
def target(redis_target: RedisServer) -> RedisConnInfo:
    return _emptied(redis_target)


@pytest.fixture
def local_repo(tmp_path) -> Repository:
    return Repository.init(
        LocalStorage(tmp_path / "repo"), MasterKey.from_string("redis-tests-master-key-00000")
    )
