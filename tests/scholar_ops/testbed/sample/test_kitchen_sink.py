"""The kitchen-sink database loads cleanly, and the fingerprint proves a pg_dump |
pg_restore copy equal while reporting deliberate changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from scholar_ops.testbed.sample import KITCHEN_SINK_SQL, DatabaseFingerprint, database_fingerprint
from scholar_ops.testbed.sample.fingerprint import _split_password, normalize_schema_dump
from tests.fixtures.postgres import PgServer

TIMEOUT = 120


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert proc.returncode == 0, f"{cmd[0]} exited {proc.returncode}: {proc.stderr}"


def load_kitchen_sink(pg_server: PgServer, dsn: str) -> None:
    _run(
        [
            pg_server.tool("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            str(KITCHEN_SINK_SQL),
            dsn,
        ]
    )


@pytest.fixture
def kitchen_sink(pg_server: PgServer, pg_db: str) -> str:
    load_kitchen_sink(pg_server, pg_db)
    return pg_db


def _copy(pg_server: PgServer, source: str, target: str, tmp_path: Path) -> None:
    """pg_dump -Fc | pg_restore, through a file."""
    dump = tmp_path / "source.dump"
    _run([pg_server.tool("pg_dump"), "-Fc", "-f", str(dump), f"--dbname={source}"])
    _run(
        [
            pg_server.tool("pg_restore"),
            "--exit-on-error",
            "--no-owner",
            f"--dbname={target}",
            str(dump),
        ]
    )


def test_loads_with_every_kind_of_object(pg_server: PgServer, kitchen_sink: str) -> None:
    fp = database_fingerprint(kitchen_sink, pg_server.tool("pg_dump"))
    assert fp.matviews == {"library.events_per_kind": True, "library.books_unpopulated": False}
    assert fp.sequences["library.ticket_seq"] == (1337, True)
    assert fp.sequences["library.reset_seq"] == (42, False)
    assert fp.sequences["library.unused_seq"] == (5, False)
    assert fp.sequences['"Ünïcode Schema"."Séquence ünïcode"'] == (-3, True)
    assert fp.sequences["library.books_id_seq"] == (501, True)  # identity column
    # partitions are tables of their own; the partitioned parent has no rows itself
    assert {t: fp.tables[t].rows for t in fp.tables if t.startswith("library.events")} == {
        "library.events_2023": 40,
        "library.events_2024": 40,
        "library.events_2025": 40,
        "library.events_default": 80,
    }
    assert fp.tables["library.no_pk"].rows == 7
    assert fp.tables["library.empty_table"].rows == 0
    assert fp.tables["library.no_columns"].rows == 2
    assert fp.tables['"MixedCase"."Order"'].rows == 2
    assert fp.tables['"Ünïcode Schema"."Täble with spaces"'].rows == 3
    for expected in (
        'CREATE SCHEMA "Ünïcode Schema";',
        "CREATE MATERIALIZED VIEW library.books_unpopulated AS",
        "PARTITION BY RANGE (happened_at);",
        "GENERATED ALWAYS AS (library.slugify(title)) STORED",
        "COMMENT ON TABLE library.authors IS 'People who wrote books';",
        "CREATE TRIGGER books_audit AFTER INSERT ON library.books",
    ):
        assert expected in fp.schema
    for line in fp.schema.splitlines():
        assert not line.startswith(("\\restrict", "\\unrestrict", "-- Dumped", "SELECT"))
        assert not line.startswith("SET ") or line.startswith("SET default_")
    assert "SET default_table_access_method = heap;" in fp.schema
    with psycopg.connect(kitchen_sink) as conn:
        row = conn.execute("SELECT length(body) FROM library.large_text WHERE id = 1").fetchone()
        assert row == (1 << 20,)
        row = conn.execute("SELECT c_bytea FROM library.all_types WHERE id = 1").fetchone()
        assert row is not None and b"\x00" in row[0] and b"\xff" in row[0]
        row = conn.execute(
            "SELECT t IS NULL FROM (SELECT c_smallint, c_integer, c_bigint, c_numeric, c_text, "
            "c_bytea, c_jsonb, c_xml, c_int_array, c_composite, c_oid, c_tstzrange "
            "FROM library.all_types WHERE id = 2) t"
        ).fetchone()
        assert row == (True,)


def test_fingerprint_equal_to_itself_and_to_a_restored_copy(
    pg_server: PgServer, kitchen_sink: str, other_db: str, tmp_path: Path
) -> None:
    pg_dump = pg_server.tool("pg_dump")
    source = database_fingerprint(kitchen_sink, pg_dump)
    assert source.diff(database_fingerprint(kitchen_sink, pg_dump)) == []

    _copy(pg_server, kitchen_sink, other_db, tmp_path)
    restored = database_fingerprint(other_db, pg_dump)
    assert source.diff(restored) == []
    assert source == restored


def test_deliberate_changes_are_reported(
    pg_server: PgServer, kitchen_sink: str, other_db: str, tmp_path: Path
) -> None:
    pg_dump = pg_server.tool("pg_dump")
    _copy(pg_server, kitchen_sink, other_db, tmp_path)
    source = database_fingerprint(kitchen_sink, pg_dump)

    with psycopg.connect(other_db, autocommit=True) as conn:
        # one duplicate of three changed, one partition row gone, a sequence moved,
        # the unpopulated materialized view refreshed, a column added
        conn.execute(
            "UPDATE library.no_pk SET c = 1.6 WHERE ctid = "
            "(SELECT ctid FROM library.no_pk WHERE b = 'dup' LIMIT 1)"
        )
        conn.execute("DELETE FROM library.events WHERE id = 200")
        conn.execute("UPDATE library.alias_clash SET h = 'deux' WHERE t = 2")
        conn.execute("SELECT setval('library.ticket_seq', 2000)")
        conn.execute("REFRESH MATERIALIZED VIEW library.books_unpopulated")
        conn.execute('ALTER TABLE "MixedCase"."Order" ADD COLUMN extra int')
    diff = source.diff(database_fingerprint(other_db, pg_dump))

    assert diff[0].startswith("schema differs:")
    assert "+    extra integer" in diff[0]
    assert diff[1].startswith('table "MixedCase"."Order": same 2 rows but different content')
    assert "table library.events_default: 80 rows vs 79" in diff
    assert any(d.startswith("table library.alias_clash: same 2 rows but diff") for d in diff)
    assert any(d.startswith("table library.no_pk: same 7 rows but different content") for d in diff)
    assert "sequence library.ticket_seq: last_value 1337 vs 2000" in diff
    assert "materialized view library.books_unpopulated: not populated vs populated" in diff
    assert len(diff) == 7, diff


def test_diff_names_missing_objects() -> None:
    a = DatabaseFingerprint(schema="x\n", sequences={"s.a": (1, False)}, matviews={})
    b = DatabaseFingerprint(schema="x\n", sequences={"s.b": (1, True)}, matviews={"m.v": True})
    assert a.diff(b) == [
        "sequence s.a: only in this database",
        "sequence s.b: only in the other database",
        "materialized view m.v: only in the other database",
    ]
    assert a.diff(a) == []


def test_normalize_schema_dump() -> None:
    dump = "\n".join(
        [
            "--",
            "-- PostgreSQL database dump",
            "--",
            "",
            "\\restrict AbC123",
            "",
            "-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)",
            "-- Dumped by pg_dump version 16.1",
            "",
            "SET statement_timeout = 0;",
            "SELECT pg_catalog.set_config('search_path', '', false);",
            "",
            "SET default_tablespace = '';",
            "",
            "CREATE TABLE public.t (a int);   ",
            "",
            "\\unrestrict AbC123",
            "",
        ]
    )
    assert normalize_schema_dump(dump) == (
        "--\n-- PostgreSQL database dump\n--\n\n"
        "SET default_tablespace = '';\n\nCREATE TABLE public.t (a int);\n"
    )


def test_password_goes_to_the_environment_not_the_command_line() -> None:
    dsn, env = _split_password(
        "postgresql://backup:s3cr%40t@db.example:6543/scholar?sslmode=require"
    )
    assert env["PGPASSWORD"] == "s3cr@t"
    assert "s3cr" not in dsn
    assert "host=db.example" in dsn and "port=6543" in dsn and "dbname=scholar" in dsn
    assert "sslmode=require" in dsn
