"""PostgreSQL backup and restore through the store, on a real cluster.

The restored database must equal the source: schema-only dumps, per-table
content checksums, sequence values and materialized-view state.
"""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from scholar_ops.sources.postgres.dump import backup_database
from scholar_ops.sources.postgres.restore import RestoreOptions, restore_database
from scholar_ops.testbed.sample import KITCHEN_SINK_SQL
from scholar_ops.testbed.sample.fingerprint import database_fingerprint
from scholar_ops.vault.errors import SourceError, TargetNotEmpty


@pytest.fixture
def kitchen_sink(pg_server, source_db):
    subprocess.run(
        [pg_server.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg_server.dsn(source_db.dbname),
         "-f", str(KITCHEN_SINK_SQL)],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    return source_db


def _fp(pg_server, db):
    return database_fingerprint(pg_server.dsn(db), pg_server.tool("pg_dump"))


def test_kitchen_sink_round_trip_is_identical(pg_server, kitchen_sink, new_db_name, local_repo):
    snap = backup_database(local_repo, kitchen_sink, backup_type="full")
    names = {e.name for e in snap.entries}
    assert "schema.pgdump" in names and any(n.startswith("tables/") for n in names)
    assert all(t["rows"] >= 0 for t in snap.details["tables"])
    result = restore_database(local_repo, snap, kitchen_sink.with_db(new_db_name))
    assert not result.mismatches, result.mismatches
    diff = _fp(pg_server, kitchen_sink.dbname).diff(_fp(pg_server, new_db_name))
    assert diff == []


def test_restore_refuses_a_non_empty_database_unless_clean(
    pg_server, kitchen_sink, new_db_name, local_repo
):
    snap = backup_database(local_repo, kitchen_sink)
    target = kitchen_sink.with_db(new_db_name)
    restore_database(local_repo, snap, target)
    with psycopg.connect(**target.connect_kwargs(), autocommit=True) as c:
        c.execute("CREATE TABLE precious (x int)")
        c.execute("INSERT INTO precious VALUES (1)")
    with pytest.raises(TargetNotEmpty, match="already holds"):
        restore_database(local_repo, snap, target)
    with psycopg.connect(**target.connect_kwargs()) as c:  # untouched
        assert c.execute("SELECT x FROM precious").fetchall() == [(1,)]
    restore_database(local_repo, snap, target, RestoreOptions(clean=True))
    assert _fp(pg_server, kitchen_sink.dbname).diff(_fp(pg_server, new_db_name)) == []


def test_subset_restore_of_tables(pg_server, source_db, new_db_name, local_repo):
    with psycopg.connect(**source_db.connect_kwargs(), autocommit=True) as c:
        c.execute("CREATE SCHEMA app")
        c.execute("CREATE TABLE app.a (id int PRIMARY KEY, v text)")
        c.execute("CREATE INDEX a_v ON app.a (v)")
        c.execute("CREATE TABLE app.b (id int PRIMARY KEY, a_id int REFERENCES app.a)")
        c.execute("CREATE TABLE app.c (id int)")
        c.execute("INSERT INTO app.a SELECT g, 'v' || g FROM generate_series(1, 100) g")
        c.execute("INSERT INTO app.b SELECT g, g FROM generate_series(1, 50) g")
        c.execute("INSERT INTO app.c SELECT g FROM generate_series(1, 10) g")
    snap = backup_database(local_repo, source_db)
    target = source_db.with_db(new_db_name)
    result = restore_database(local_repo, snap, target, RestoreOptions(tables=["app.a", "app.b"]))
    assert result.row_counts == {"app.a": [100, 100], "app.b": [50, 50]}
    with psycopg.connect(**target.connect_kwargs()) as c:
        tables = {
            r[0]
            for r in c.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'app'::regnamespace"
            )
        }
        assert {"a", "b", "a_pkey", "a_v", "b_pkey"} <= tables and "c" not in tables
        fks = c.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'").fetchone()
        assert fks == (1,)


def _databases(pg_server) -> set[str]:
    with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
        return {r[0] for r in c.execute("SELECT datname FROM pg_database")}


def test_clean_restore_of_a_table_with_a_serial_column_keeps_its_sequence(
    pg_server, source_db, new_db_name, local_repo
):
    """The reported case: --clean --table public.users of a table with a serial id."""
    with psycopg.connect(**source_db.connect_kwargs(), autocommit=True) as c:
        c.execute("CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE)")
        c.execute("CREATE TABLE papers (id bigint GENERATED ALWAYS AS IDENTITY, title text)")
        c.execute("INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 40) g")
        c.execute("INSERT INTO papers (title) SELECT 't' || g FROM generate_series(1, 5) g")
    snap = backup_database(local_repo, source_db)
    users = {s["name"]: s for s in snap.details["sequences"]}["users_id_seq"]
    assert users["owned_by"] == "public.users" and users["used_by"] == ["public.users"]
    target = source_db.with_db(new_db_name)
    restore_database(local_repo, snap, target)
    with psycopg.connect(**target.connect_kwargs(), autocommit=True) as c:
        c.execute("DELETE FROM users WHERE id > 10")
    result = restore_database(
        local_repo, snap, target, RestoreOptions(clean=True, tables=["public.users"])
    )
    assert result.row_counts == {"public.users": [40, 40]}
    with psycopg.connect(**target.connect_kwargs(), autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM users").fetchone() == (40,)
        # The sequence came along, owned by its column, at the backed-up value.
        assert c.execute("INSERT INTO users (email) VALUES ('new') RETURNING id").fetchone() == (
            41,
        )
        owned = c.execute("SELECT pg_get_serial_sequence('users', 'id')").fetchone()
        assert owned == ("public.users_id_seq",)
        # --clean replaced the database: the other table is not part of the subset.
        assert c.execute("SELECT to_regclass('papers')").fetchone() == (None,)
    assert not any("__restoring_" in d or "__replaced_" in d for d in _databases(pg_server))


def test_a_failed_clean_restore_leaves_the_existing_database_as_it_was(
    pg_server, source_db, new_db_name, local_repo, monkeypatch
):
    from scholar_ops.sources.postgres import restore as restore_module

    with psycopg.connect(**source_db.connect_kwargs(), autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
        c.execute("INSERT INTO t SELECT generate_series(1, 100)")
    snap = backup_database(local_repo, source_db)
    target = source_db.with_db(new_db_name)
    restore_database(local_repo, snap, target)
    with psycopg.connect(**target.connect_kwargs(), autocommit=True) as c:
        c.execute("CREATE TABLE precious (x text)")
        c.execute("INSERT INTO precious VALUES ('only copy')")
    before = _fp(pg_server, new_db_name)

    def broken_load(*args, **kwargs):
        raise SourceError("COPY failed: the disk is full")

    monkeypatch.setattr(restore_module, "_load_table", broken_load)
    with pytest.raises(SourceError, match="disk is full"):
        restore_database(local_repo, snap, target, RestoreOptions(clean=True))
    assert _fp(pg_server, new_db_name).diff(before) == []
    with psycopg.connect(**target.connect_kwargs()) as c:
        assert c.execute("SELECT x FROM precious").fetchall() == [("only copy",)]
    assert not any("__restoring_" in d for d in _databases(pg_server))


def test_failing_dump_gives_pg_message_and_no_snapshot(pg_server, source_db, local_repo):
    with psycopg.connect(**source_db.connect_kwargs(), autocommit=True) as c:
        c.execute("CREATE TABLE secret (x int)")
        c.execute("DROP ROLE IF EXISTS weak")
        c.execute("CREATE ROLE weak LOGIN")
    weak = source_db.__class__(**{**source_db.__dict__, "user": "weak"})
    with pytest.raises(SourceError, match="permission denied") as exc:
        backup_database(local_repo, weak)
    assert not exc.value.transient
    gone = source_db.__class__(**{**source_db.__dict__, "port": 1, "connect_timeout": 2})
    with pytest.raises(SourceError, match="cannot connect") as exc:
        backup_database(local_repo, gone)
    assert exc.value.transient
    assert local_repo.snapshot_ids() == []


def test_dump_is_one_consistent_snapshot_while_writes_go_on(
    pg_server, source_db, new_db_name, local_repo
):
    import threading

    with psycopg.connect(**source_db.connect_kwargs(), autocommit=True) as c:
        c.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, body text)")
        c.execute("CREATE TABLE order_lines (id bigserial PRIMARY KEY, body text)")
        c.execute(
            "INSERT INTO orders (body) SELECT repeat('o', 500) FROM generate_series(1, 20000)"
        )
        c.execute(
            "INSERT INTO order_lines (body) SELECT repeat('l', 500) FROM generate_series(1, 20000)"
        )
    stop = threading.Event()

    def writer() -> None:
        with psycopg.connect(**source_db.connect_kwargs()) as w:
            while not stop.is_set():
                with w.transaction():  # both tables grow together, atomically
                    w.execute("INSERT INTO orders (body) VALUES ('new')")
                    w.execute("INSERT INTO order_lines (body) VALUES ('new')")

    t = threading.Thread(target=writer)
    t.start()
    try:
        snap = backup_database(local_repo, source_db)
    finally:
        stop.set()
        t.join(30)
    rows = {t["name"]: t["rows"] for t in snap.details["tables"]}
    assert rows["orders"] == rows["order_lines"] > 20000 - 1
    result = restore_database(local_repo, snap, source_db.with_db(new_db_name))
    assert result.row_counts["public.orders"][1] == result.row_counts["public.order_lines"][1]
