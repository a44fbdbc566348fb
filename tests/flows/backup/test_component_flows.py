"""Backups of every component in one run (PostgreSQL, Redis, Chroma, files) and their
restore flows, under the Prefect test harness with real services."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import redis
from prefect.blocks.system import Secret
from pydantic import SecretStr

from blocks.chroma import ChromaTarget
from blocks.files import FilesTarget
from blocks.postgres import PostgresTarget
from blocks.redis import RedisTarget
from blocks.repository import BackupRepository
from flows.backup.backup_catalog import backup_catalog
from flows.backup.full_backup import full_backup
from flows.backup.group import BackupFailed
from flows.backup.incremental_backup import incremental_backup
from flows.backup.restore_chroma import restore_chroma
from flows.backup.restore_files import restore_files
from flows.backup.restore_redis import restore_redis
from flows.backup.verify_repository import verify_repository
from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.redis.server import throwaway_redis
from scholar_ops.vault.errors import TargetNotEmpty
from tests.helpers import DIM, fill_chroma, redis_state, tree_state


def _fill_redis(client: redis.Redis) -> None:
    client.flushall()
    pipe = client.pipeline()
    for i in range(3000):
        pipe.set(f"cache:{i}", os.urandom(200))
        pipe.hset(f"session:{i}", mapping={"user": str(i), "seen": "now"})
        pipe.expire(f"session:{i}", 3600)
    pipe.rpush("jobs", *[f"job-{i}" for i in range(50)])
    pipe.zadd("popular", {f"doc-{i}": i for i in range(100)})
    pipe.xadd("events", {"kind": "login"})
    pipe.execute()
    db1 = redis.Redis(
        host=client.connection_pool.connection_kwargs["host"],
        port=client.connection_pool.connection_kwargs["port"],
        db=1,
    )
    db1.sadd("tags", "ai", "rag", "ml")
    db1.close()


def _fill_files(root: Path) -> None:
    (root / "papers").mkdir(parents=True)
    (root / "papers" / "résumé ✓.pdf").write_bytes(os.urandom(300_000))
    (root / "papers" / "empty.txt").write_bytes(b"")
    (root / "config.yaml").write_text("retries: 3\n")
    (root / "latest.pdf").symlink_to("papers/résumé ✓.pdf")
    (root / "cache").mkdir()
    (root / "cache" / "x.tmp").write_text("skip me")


def _ttl_flags(state: dict[Any, tuple[Any, Any, int]]) -> dict[Any, tuple[Any, Any, bool]]:
    """TTLs as "has one": the remaining milliseconds move on between the two reads."""
    return {k: (kind, value, ttl > 0) for k, (kind, value, ttl) in state.items()}


@pytest.fixture
def app(prefect_harness, pg_server, redis_server, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    key = f"master-{suffix}"
    Secret(value=SecretStr("component-flow-key-" + suffix)).save(key)
    repo = f"repo-{suffix}"
    BackupRepository(local_path=str(tmp_path / "repo"), master_key_secret=key).save(repo)

    db = f"app_{suffix}"
    pg_server.create_database(db)
    with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
        c.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
        c.execute("INSERT INTO docs SELECT g, 'doc ' || g FROM generate_series(1, 2000) g")
    PostgresTarget(host=pg_server.host, port=pg_server.port, database=db, user=pg_server.user).save(
        f"pg-{suffix}"
    )

    client = redis_server.client()
    _fill_redis(client)
    RedisTarget(host=redis_server.host, port=redis_server.port, label="cache").save(
        f"redis-{suffix}"
    )

    chroma_path = tmp_path / "chroma"
    fill_chroma(
        ChromaSource.embedded(chroma_path).client(),
        {"chunks": 400},
        seed=5,
        metadata={"hnsw:space": "cosine"},
    )
    ChromaTarget(path=str(chroma_path), label="vectors").save(f"chroma-{suffix}")

    uploads = tmp_path / "uploads"
    _fill_files(uploads)
    FilesTarget(path=str(uploads), exclude=["*.tmp"], label="uploads").save(f"files-{suffix}")
    yield {
        "suffix": suffix,
        "repo": repo,
        "db": db,
        "redis": client,
        "chroma_path": chroma_path,
        "uploads": uploads,
        "targets": {
            "postgres_targets": [f"pg-{suffix}"],
            "redis_targets": [f"redis-{suffix}"],
            "chroma_targets": [f"chroma-{suffix}"],
            "file_targets": [f"files-{suffix}"],
        },
    }
    client.close()
    pg_server.drop_database(db)


def test_every_component_in_one_group_then_incremental_then_restores(app, redis_server, tmp_path):
    full = full_backup(**app["targets"], repository=app["repo"])
    by_component = {r.component: r for r in full}
    assert sorted(by_component) == ["chroma", "files", "postgres", "redis"]
    catalog = backup_catalog(repository=app["repo"])
    groups = {s["group"] for s in catalog}
    assert len(catalog) == 4 and len(groups) == 1 and None not in groups
    assert by_component["chroma"].items == "1 collection, 400 records"
    assert by_component["files"].items.startswith("3 files")  # x.tmp excluded

    # Small changes everywhere: the second run stores little.
    app["redis"].set("cache:new", b"fresh")
    col = ChromaSource.embedded(app["chroma_path"]).client().get_collection("chunks")
    col.upsert(
        ids=["chunks-1"],
        embeddings=np.ones((1, DIM), dtype=np.float32),
        documents=["changed"],
        metadatas=[{"year": 1999, "field": "nlp"}],
    )
    (app["uploads"] / "new.txt").write_text("new upload")
    inc = incremental_backup(**app["targets"], repository=app["repo"])
    inc_by = {r.component: r for r in inc}
    for component in ("redis", "files", "chroma"):
        assert inc_by[component].new_bytes < 0.5 * by_component[component].new_bytes, component
    assert inc_by["files"].new_bytes < 1000  # only the new 10-byte file (the 300 kB one unchanged)
    assert "3 unchanged" in inc_by["files"].items

    # Redis into a fresh server, keys and TTLs equal to the source.
    source_state = _ttl_flags(redis_state(redis_server.host, redis_server.port))
    with throwaway_redis(tmp_path / "redis2") as other:
        name = f"redis-restore-{app['suffix']}"
        RedisTarget(host=other.host, port=other.port).save(name)
        result = restore_redis(target=name, repository=app["repo"], source_target="cache")
        assert result.mismatches == [] and result.restored.startswith(f"{len(source_state)} keys")
        assert _ttl_flags(redis_state(other.host, other.port)) == source_state
        # A second restore into the now non-empty server is refused.
        with pytest.raises(TargetNotEmpty):
            restore_redis(target=name, repository=app["repo"], source_target="cache")
    rdb = restore_redis(rdb_dir=str(tmp_path / "rdb"), repository=app["repo"])
    assert rdb.mismatches == [] and (tmp_path / "rdb" / "dump.rdb").stat().st_size > 0

    # Chroma into a new directory: records equal, neighbours verified by the restore.
    restored_dir = tmp_path / "chroma-restored"
    result = restore_chroma(directory=str(restored_dir), repository=app["repo"])
    assert result.figures["collections"] == ["chunks"] and result.figures["records"] == 400
    got = ChromaSource.embedded(restored_dir).client().get_collection("chunks")
    want = col.get(include=["embeddings", "documents", "metadatas"])
    have = got.get(ids=want["ids"], include=["embeddings", "documents", "metadatas"])
    assert have["documents"] == want["documents"] and have["metadatas"] == want["metadatas"]
    assert np.allclose(np.asarray(have["embeddings"]), np.asarray(want["embeddings"]), rtol=1e-6)

    # Files: the tree as it was at the incremental backup, *.tmp excluded.
    dest = tmp_path / "uploads-restored"
    result = restore_files(destination=str(dest), repository=app["repo"], source_target="uploads")
    expected = tree_state(app["uploads"])
    del expected["cache/x.tmp"]
    assert tree_state(dest) == expected
    with pytest.raises(TargetNotEmpty):
        restore_files(destination=str(dest), repository=app["repo"], source_target="uploads")

    assert verify_repository(repository=app["repo"], read_data=1.0).ok


def test_a_failed_component_fails_the_run_and_the_others_stay_valid(app, monkeypatch):
    import flows.backup.group as group
    from tasks.targets import backup_target

    monkeypatch.setattr(group, "backup_target", backup_target.with_options(retries=0))
    bad = f"redis-bad-{app['suffix']}"
    RedisTarget(port=1, label="down").save(bad)
    targets = {**app["targets"], "redis_targets": [bad]}
    with pytest.raises(BackupFailed) as exc:
        incremental_backup(**targets, repository=app["repo"])
    message = str(exc.value)
    assert "redis/" + bad in message and "1 of 4 targets failed" in message
    for component in ("postgres", "chroma", "files"):
        assert component + "/" in message.split("others succeeded")[1]
    catalog = backup_catalog(repository=app["repo"])
    assert sorted(s["component"] for s in catalog) == ["chroma", "files", "postgres"]
    assert len({s["group"] for s in catalog}) == 1
    assert verify_repository(repository=app["repo"], read_data=1.0).ok


def test_no_targets_is_a_clear_error(prefect_harness):
    with pytest.raises(ValueError, match="no targets to back up"):
        full_backup(repository="whatever")
