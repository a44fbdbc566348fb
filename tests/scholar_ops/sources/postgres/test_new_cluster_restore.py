"""Restores into a NEW PostgreSQL cluster: the day the original server is gone (issue 12).

The source database has objects owned by an application role, grants to a read-only
group (with a login member), row-level security, extensions, a large object with an
owner and a grant, partitions, quoted unicode identifiers, per-role and per-database
settings, database privileges and default privileges. It is backed up and restored
into clusters that never saw it; the schema dump with owners and privileges, every
table's content, the roles and the large object must come back the same.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from scholar_ops.sources.postgres import roles as roles_mod
from scholar_ops.sources.postgres.cluster import PgServer, throwaway_cluster
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.postgres.dump import backup_database
from scholar_ops.sources.postgres.restore import RestoreOptions, restore_database
from scholar_ops.testbed.sample.fingerprint import database_fingerprint
from scholar_ops.vault.errors import SourceError, TargetUnsuitable
from scholar_ops.vault.repository import Repository

SETUP = r"""
CREATE ROLE app_owner LOGIN PASSWORD 'owner-secret-1' CONNECTION LIMIT 7;
ALTER ROLE app_owner SET statement_timeout = '5min';
CREATE ROLE app_reader NOLOGIN;
CREATE ROLE "Ünï User" LOGIN PASSWORD 'reader-secret-2' IN ROLE app_reader;
CREATE ROLE unrelated_role LOGIN;
CREATE DATABASE appdb OWNER app_owner;
\connect appdb
ALTER DATABASE appdb SET work_mem = '8MB';
ALTER ROLE app_reader IN DATABASE appdb SET search_path = app, public;
REVOKE CONNECT, TEMPORARY ON DATABASE appdb FROM PUBLIC;
GRANT CONNECT ON DATABASE appdb TO app_reader;
CREATE EXTENSION pgcrypto;
CREATE EXTENSION citext;
SET ROLE app_owner;
CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO app_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO app_reader;
CREATE TABLE app.accounts (id bigserial PRIMARY KEY, email citext UNIQUE NOT NULL,
                           secret bytea DEFAULT gen_random_bytes(8), tenant text NOT NULL);
ALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.accounts TO app_reader
    USING (tenant = current_setting('app.tenant', true));
CREATE TABLE app.events (id bigint, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE app."Ünïcode Täble" ("naïve ✓" text PRIMARY KEY, "Größe" int);
INSERT INTO app.accounts (email, tenant)
    SELECT 'user' || g || '@example.org', 't' || (g % 3) FROM generate_series(1, 500) g;
INSERT INTO app.events SELECT g, DATE '2025-06-01' + g, jsonb_build_object('n', g)
    FROM generate_series(1, 400) g;
INSERT INTO app."Ünïcode Täble" VALUES ('ä', 1), ('✓', 2), ('日本', 3);
SELECT lo_from_bytea(424242, convert_to(repeat('large object payload ', 100000), 'UTF8'));
GRANT SELECT ON LARGE OBJECT 424242 TO app_reader;
RESET ROLE;
GRANT SELECT ON app."Ünïcode Täble" TO "Ünï User";
"""


def _psql(server: PgServer, script: str, db: str = "postgres") -> None:
    subprocess.run(
        [server.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server.dsn(db)],
        input=script.encode(),
        check=True,
        timeout=120,
        capture_output=True,
    )


def _info(server: PgServer, db: str) -> PgConnInfo:
    return PgConnInfo(host=server.host, port=server.port, dbname=db, user=server.user)


@pytest.fixture(scope="module")
def source() -> Iterator[PgServer]:
    with throwaway_cluster() as server:
        _psql(server, SETUP)
        yield server


@pytest.fixture
def new_cluster() -> Iterator[PgServer]:
    with throwaway_cluster() as server:
        yield server


def _roles(server: PgServer, names: list[str]) -> dict[str, Any]:
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        rows = c.execute(
            """SELECT a.rolname, a.rolcanlogin, a.rolconnlimit, a.rolpassword,
                      (SELECT array_agg(g.rolname ORDER BY g.rolname) FROM pg_auth_members m
                       JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = a.oid),
                      (SELECT array_agg(x ORDER BY x) FROM pg_db_role_setting s,
                              unnest(s.setconfig) x WHERE s.setrole = a.oid)
               FROM pg_authid a WHERE a.rolname = ANY(%s)""",
            (names,),
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _database_settings(server: PgServer, db: str) -> tuple[Any, ...]:
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        row = c.execute(
            """SELECT pg_get_userbyid(datdba), datacl::text[],
                      (SELECT setconfig FROM pg_db_role_setting
                       WHERE setdatabase = d.oid AND setrole = 0)
               FROM pg_database d WHERE datname = %s""",
            (db,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def _large_object(server: PgServer, db: str) -> tuple[Any, ...]:
    with psycopg.connect(server.dsn(db), autocommit=True) as c:
        row = c.execute(
            """SELECT pg_get_userbyid(lomowner), lomacl::text[], md5(lo_get(oid))
               FROM pg_largeobject_metadata WHERE oid = 424242"""
        ).fetchone()
    assert row is not None
    return tuple(row)


ROLES = ["app_owner", "app_reader", "Ünï User"]


def test_restore_into_a_new_cluster_brings_roles_owners_grants_and_large_objects(
    source: PgServer, new_cluster: PgServer, local_repo: Repository
) -> None:
    snap = backup_database(local_repo, _info(source, "appdb"), backup_type="full")
    # the bootstrap superuser owns the extensions' objects; unrelated_role is not in it
    assert snap.details["cluster"]["roles"] == sorted([*ROLES, "postgres"])
    assert snap.details["cluster"]["role_passwords"] is True
    assert "SCRAM-SHA-256$" not in str(snap.details)  # hashes only in the encrypted entry
    assert {e["name"] for e in snap.details["cluster"]["extensions"]} == {"pgcrypto", "citext"}

    result = restore_database(local_repo, snap, _info(new_cluster, "appdb"))
    assert not result.mismatches, result.mismatches
    assert sorted(result.roles_created) == sorted(ROLES)
    assert result.large_objects == 1

    want = database_fingerprint(source.dsn("appdb"), source.tool("pg_dump"), owners=True)
    got = database_fingerprint(new_cluster.dsn("appdb"), new_cluster.tool("pg_dump"), owners=True)
    assert want.diff(got) == []
    assert "ALTER TABLE app.accounts OWNER TO app_owner;" in got.schema
    assert "CREATE POLICY tenant_isolation" in got.schema
    assert "GRANT SELECT ON TABLES  TO app_reader" in got.schema  # default privileges
    assert got.tables['app."Ünïcode Täble"'].rows == 3
    assert _roles(new_cluster, ROLES) == _roles(source, ROLES)  # attributes, hashes, settings
    assert _roles(new_cluster, ["unrelated_role"]) == {}
    assert _database_settings(new_cluster, "appdb") == _database_settings(source, "appdb")
    assert _large_object(new_cluster, "appdb") == _large_object(source, "appdb")
    # The application can log in with its own password and read through its policy.
    with psycopg.connect(
        host=new_cluster.host,
        port=new_cluster.port,
        dbname="appdb",
        user="Ünï User",
        password="reader-secret-2",
    ) as c:
        c.execute("SET app.tenant = 't1'")
        assert c.execute("SELECT count(*) FROM app.accounts").fetchone() == (167,)


def test_roles_skip_into_a_cluster_that_has_them_and_fail_on_one_that_lacks_them(
    source: PgServer, new_cluster: PgServer, local_repo: Repository
) -> None:
    snap = backup_database(local_repo, _info(source, "appdb"), backup_type="full")
    with pytest.raises(TargetUnsuitable, match=r"lacks role.*app_owner.*--roles create"):
        restore_database(
            local_repo, snap, _info(new_cluster, "appdb"), RestoreOptions(roles="fail")
        )
    with psycopg.connect(new_cluster.dsn(), autocommit=True) as c:  # nothing was written
        assert c.execute("SELECT 1 FROM pg_database WHERE datname = 'appdb'").fetchone() is None
        assert c.execute("SELECT 1 FROM pg_roles WHERE rolname = 'app_owner'").fetchone() is None

    # The roles exist already (made by the operator, with a different connection limit):
    # --roles skip uses them and changes none of them.
    _psql(
        new_cluster,
        "CREATE ROLE app_owner LOGIN CONNECTION LIMIT 3; CREATE ROLE app_reader;"
        'CREATE ROLE "Ünï User" LOGIN;',
    )
    result = restore_database(
        local_repo, snap, _info(new_cluster, "appdb"), RestoreOptions(roles="skip")
    )
    assert not result.mismatches and result.roles_created == []
    want = database_fingerprint(source.dsn("appdb"), source.tool("pg_dump"), owners=True)
    got = database_fingerprint(new_cluster.dsn("appdb"), new_cluster.tool("pg_dump"), owners=True)
    assert want.diff(got) == []
    assert _roles(new_cluster, ["app_owner"])["app_owner"][1] == 3  # not altered
    assert _large_object(new_cluster, "appdb") == _large_object(source, "appdb")


def test_missing_roles_with_skip_restore_without_owners_and_say_so(
    source: PgServer, new_cluster: PgServer, local_repo: Repository
) -> None:
    snap = backup_database(local_repo, _info(source, "appdb"), backup_type="full")
    result = restore_database(
        local_repo, snap, _info(new_cluster, "appdb"), RestoreOptions(roles="skip")
    )
    assert not result.mismatches
    assert any("--roles skip" in w and "app_owner" in w for w in result.warnings)
    # the policy that names a missing role cannot exist without it: left out, and said so
    assert any("app.accounts.tenant_isolation" in w for w in result.warnings)
    want = database_fingerprint(source.dsn("appdb"), source.tool("pg_dump"))
    got = database_fingerprint(new_cluster.dsn("appdb"), new_cluster.tool("pg_dump"))
    assert got.tables == want.tables and got.sequences == want.sequences
    assert "CREATE POLICY" not in got.schema
    start = want.schema.index("--\n-- Name: accounts tenant_isolation")
    end = want.schema.index("--\n-- PostgreSQL database dump complete")
    assert got.schema == want.schema[:start] + want.schema[end:]  # all but the policy


def test_an_extension_the_new_server_lacks_is_named_before_anything_is_written(
    source: PgServer, new_cluster: PgServer, local_repo: Repository, monkeypatch
) -> None:
    real = roles_mod.collect

    def with_postgis(conn: Any) -> roles_mod.ClusterObjects:
        objs = real(conn)
        objs.extensions.append({"name": "postgis_nowhere", "version": "3.4", "schema": "public"})
        return objs

    monkeypatch.setattr(roles_mod, "collect", with_postgis)
    snap = backup_database(local_repo, _info(source, "appdb"), backup_type="full")
    with pytest.raises(TargetUnsuitable, match=r"cannot create extension\(s\) postgis_nowhere"):
        restore_database(local_repo, snap, _info(new_cluster, "appdb"))
    with psycopg.connect(new_cluster.dsn(), autocommit=True) as c:
        assert c.execute("SELECT 1 FROM pg_database WHERE datname = 'appdb'").fetchone() is None
        assert c.execute("SELECT 1 FROM pg_roles WHERE rolname = 'app_owner'").fetchone() is None


def test_a_backup_role_without_superuser_names_the_logins_whose_passwords_to_reset(
    source: PgServer, local_repo: Repository, caplog
) -> None:
    _psql(
        source,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_op') THEN "
        "CREATE ROLE backup_op LOGIN IN ROLE pg_read_all_data; END IF; END $$;"
        "GRANT CONNECT ON DATABASE appdb TO backup_op;",
    )
    conn = PgConnInfo(host=source.host, port=source.port, dbname="appdb", user="backup_op")
    # A policy that would hide rows from the backup role is an error, never a partial table.
    with pytest.raises(SourceError, match="row-level security policy for table"):
        backup_database(local_repo, conn, backup_type="full")
    _psql(source, "ALTER ROLE backup_op BYPASSRLS")
    with pytest.raises(SourceError, match=r"may not read large object 424242.*GRANT SELECT"):
        backup_database(local_repo, conn, backup_type="full")
    _psql(source, "GRANT SELECT ON LARGE OBJECT 424242 TO backup_op", db="appdb")
    snap = backup_database(local_repo, conn, backup_type="full")
    assert snap.details["cluster"]["role_passwords"] is True  # pg_read_all_data reads pg_authid
    # The application's owner backs its own database up, but may not read password hashes.
    owner = PgConnInfo(host=source.host, port=source.port, dbname="appdb", user="app_owner")
    snap = backup_database(local_repo, owner, backup_type="full")
    assert snap.details["cluster"]["role_passwords"] is False
    # backup_op holds grants (CONNECT, the large object): it is one of the database's roles
    logins = ["app_owner", "backup_op", "postgres", "Ünï User"]
    assert snap.details["passwordless_logins"] == logins
    assert f"set the passwords of {', '.join(logins)} again" in caplog.text
