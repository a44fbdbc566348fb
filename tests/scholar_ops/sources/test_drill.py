"""Restore drills of every component against real services (scholar_ops.sources.drill, no Prefect):
each restores the latest snapshot into a scratch place, verifies it and leaves nothing
behind; a damaged repository, a role without CREATEDB and a tree that differs from
its manifest are drill failures."""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.chroma.dump import backup_chroma
from scholar_ops.sources.drill import (
    DRILL_DB_PREFIX,
    drill_chroma,
    drill_files,
    drill_postgres,
    drill_redis,
    verify_files,
)
from scholar_ops.sources.files.backup import backup_files
from scholar_ops.sources.files.restore import restore_files
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.postgres.dump import backup_database
from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.dump import backup_redis
from scholar_ops.sources.redis.server import throwaway_redis
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import ConfigError, IntegrityError, SnapshotNotFound
from scholar_ops.vault.pack import pack_name
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage
from tests.helpers import fill_chroma


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(
        LocalStorage(tmp_path / "repo"), MasterKey.from_string("drill-tests-master-key-0000")
    )


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def _scratch_databases(conn: PgConnInfo) -> list[str]:
    with psycopg.connect(**conn.with_db("postgres").connect_kwargs()) as c:
        rows = c.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (DRILL_DB_PREFIX + "%",)
        ).fetchall()
    return [r[0] for r in rows]


def test_postgres_drill_restores_into_a_new_cluster_and_checks_content(
    repo, pg_server, scratch, caplog
):
    """The default drill: the disaster case, into a new throwaway cluster (roles made
    there), every table's content compared exactly; the target's server is not touched."""
    db = f"drill_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(db)
    conn = PgConnInfo(host=pg_server.host, port=pg_server.port, dbname=db, user=pg_server.user)
    owner = f"drill_owner_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
            c.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(owner)))
            # COPY's text of timestamptz depends on the session's time zone: the drill
            # compares under the backup's settings, whatever the new cluster's default.
            c.execute(
                sql.SQL("ALTER DATABASE {} SET TimeZone = 'Asia/Kolkata'").format(
                    sql.Identifier(db)
                )
            )
        with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
            c.execute("CREATE TABLE papers (id int PRIMARY KEY, title text, at timestamptz)")
            c.execute(
                "INSERT INTO papers SELECT g, 'paper ' || g, now() - g * interval '1 hour' "
                "FROM generate_series(1, 300) g"
            )
            c.execute("CREATE TABLE no_key (x float8)")
            c.execute("INSERT INTO no_key SELECT random() FROM generate_series(1, 50)")
            c.execute(sql.SQL("ALTER TABLE papers OWNER TO {}").format(sql.Identifier(owner)))
            c.execute("SELECT lo_from_bytea(0, 'drill me')")
        snap = backup_database(repo, conn, target="papers-db")

        result = drill_postgres(repo, conn, "papers-db", scratch_dir=scratch)
        assert result.ok, result.mismatches
        assert result.checked[0] == "2 tables, 350 rows restored into a new cluster"
        assert "content (SHA-256 of COPY)" in result.checked[1]
        assert "1 large objects (size and MD5)" in result.checked
        assert f"roles created: {owner}" in result.checked
        assert _scratch_databases(conn) == []  # nothing on the target's server
        assert list(scratch.iterdir()) == []  # the cluster's directory is gone

        # The comparison is of the text itself: read back under another time zone than
        # the backup's, the timestamps differ, and the drill names the table.
        bad = copy.deepcopy(snap)
        bad.details["session"]["TimeZone"] = "UTC"
        result = drill_postgres(repo, conn, "papers-db", snap=bad, scratch_dir=scratch)
        assert not result.ok
        assert result.mismatches == ["table public.papers: content differs from the backup"]
    finally:
        pg_server.drop_database(db)
        with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))


def test_postgres_drill_into_a_scratch_database_and_drops_it(repo, pg_server):
    db = f"drill_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(db)
    conn = PgConnInfo(host=pg_server.host, port=pg_server.port, dbname=db, user=pg_server.user)
    role = f"drill_nocreate_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
            c.execute("CREATE TABLE papers (id int PRIMARY KEY, title text)")
            c.execute("INSERT INTO papers SELECT g, 'paper ' || g FROM generate_series(1, 300) g")
            c.execute("CREATE TABLE empty_one (x int)")
            c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        backup_database(repo, conn, target="papers-db")

        result = drill_postgres(repo, conn, "papers-db", into="database")
        assert result.ok, result.mismatches
        assert result.component == "postgres" and result.target == "papers-db"
        assert result.checked[0].startswith("2 tables, 300 rows")
        assert 0 <= result.snapshot_age_s < 120 and result.duration_s > 0
        assert result.short_id == result.snapshot_id[:8]
        assert _scratch_databases(conn) == []

        # A role that cannot create databases: a clear failure, nothing created.
        as_role = PgConnInfo(**{**conn.__dict__, "user": role})
        with pytest.raises(ConfigError, match=f"role '{role}'.*cannot create databases"):
            drill_postgres(repo, as_role, "papers-db", into="database")
        assert _scratch_databases(conn) == []
        # With CREATEDB (not a superuser): restored without the source's ownership.
        with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
            c.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(role)))
        assert drill_postgres(repo, as_role, "papers-db", into="database").ok
        assert _scratch_databases(conn) == []
        with pytest.raises(SnapshotNotFound):
            drill_postgres(repo, conn, "no-such-target", into="database")
    finally:
        pg_server.drop_database(db)
        with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_redis_drill_starts_a_throwaway_server_and_removes_it(repo, tmp_path, scratch):
    # A source that streams its RDB at once (no 5 s wait for more replicas).
    with throwaway_redis(tmp_path / "source", config={"repl-diskless-sync-delay": 0}) as source:
        client = source.client()
        pipe = client.pipeline()
        for i in range(200):
            pipe.set(f"cache:{i}", os.urandom(50))
            pipe.hset(f"session:{i}", mapping={"user": str(i)})
        pipe.rpush("jobs", "a", "b")
        pipe.execute()
        client.close()
        backup_redis(repo, RedisConnInfo(host=source.host, port=source.port), target="cache")
    result = drill_redis(repo, "cache", scratch_dir=scratch)
    assert result.ok, result.mismatches
    assert result.checked[0].startswith("401 keys in 1 database ")
    assert list(scratch.iterdir()) == []


def test_chroma_drills_logical_and_physical(repo, tmp_path, scratch):
    store = tmp_path / "chroma"
    fill_chroma(
        ChromaSource.embedded(store).client(), {"chunks": 60}, metadata={"hnsw:space": "cosine"}
    )
    source = ChromaSource.embedded(store)
    snap = backup_chroma(repo, source, target="vectors")
    backup_chroma(repo, source, target="vectors-physical", physical=True)

    logical = drill_chroma(repo, "vectors", scratch_dir=scratch)
    assert logical.ok, logical.mismatches
    assert logical.checked[0] == "1 collection, 60 records restored into a new embedded store"
    assert "every record against the backup" in logical.checked[2]
    assert logical.checked[3] == "digests of 1 collection against those recorded at backup time"
    assert logical.checked[4].startswith("50 nearest-neighbour queries of sample records")
    assert logical.checked[4].endswith("lowest mean recall@10 100% (90% required)")

    physical = drill_chroma(repo, "vectors-physical", scratch_dir=scratch)
    assert physical.ok, physical.mismatches
    assert physical.checked[0].startswith("physical copy: 1 collection, 60 records")
    assert physical.checked[3].startswith("digests of 1 collection ")
    assert list(scratch.iterdir()) == []

    # A restore that does not match the backup's digests: the drill fails with one line.
    bad = copy.deepcopy(snap)
    bad.details["collections"][0]["digests"]["metadatas"] = "00" * 32
    failed = drill_chroma(repo, "vectors", snap=bad, scratch_dir=scratch)
    assert not failed.ok and len(failed.mismatches) == 1
    assert failed.mismatches[0] == (
        f"restored Chroma data of snapshot {snap.short_id}: 1 difference: collection chunks: "
        "the metadatas of the backup stream differ from what was read from the source at "
        "backup time"
    )
    assert list(scratch.iterdir()) == []


def _fill_files(root: Path) -> None:
    (root / "papers").mkdir(parents=True)
    (root / "papers" / "résumé ✓.pdf").write_bytes(os.urandom(100_000))
    (root / "papers" / "empty.txt").write_bytes(b"")
    (root / "config.yaml").write_text("retries: 3\n")
    (root / "latest.pdf").symlink_to("papers/résumé ✓.pdf")
    (root / "locked").mkdir()
    (root / "locked" / "note.txt").write_text("read-only dir")
    (root / "locked").chmod(0o555)


def test_files_drill_checks_the_tree_and_leaves_nothing(repo, tmp_path, scratch):
    src = tmp_path / "uploads"
    _fill_files(src)
    try:
        snap = backup_files(repo, src, target="uploads")
    finally:
        (src / "locked").chmod(0o755)
    result = drill_files(repo, "uploads", scratch_dir=scratch)
    assert result.ok, result.mismatches
    assert result.checked[0].startswith("4 files (100024 bytes), 2 dirs, 1 symlink ")
    assert list(scratch.iterdir()) == []  # the read-only directory went too

    # verify_files compares the tree with the manifest: sizes, kinds, counts.
    dest = tmp_path / "restored"
    restored = restore_files(repo, snap, dest, chown=False)
    assert verify_files(snap, dest, restored) == []
    (dest / "config.yaml").write_text("retries: 30\n")
    (dest / "latest.pdf").unlink()
    restored.symlinks -= 1
    problems = verify_files(snap, dest, restored)
    assert any("'config.yaml': 12 bytes restored, 11 in the manifest" in p for p in problems)
    assert any("'latest.pdf' (symlink) is missing" in p for p in problems)
    assert any("0 symlinks restored, 1 in the snapshot's counts" in p for p in problems)


def test_a_damaged_pack_fails_the_drill_and_leaves_nothing(repo, tmp_path, scratch):
    src = tmp_path / "docs"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(50_000))
    snap = backup_files(repo, src, target="docs")
    for pack_id in snap.packs:
        path = Path(repo.storage.root) / pack_name(pack_id)
        data = bytearray(path.read_bytes())
        data[20] ^= 0xFF  # inside the first blob (after magic and key id)
        path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"snapshot {snap.short_id}"):
        drill_files(repo, "docs", scratch_dir=scratch)
    assert list(scratch.iterdir()) == []
