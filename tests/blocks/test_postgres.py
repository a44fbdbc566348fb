"""PostgresTarget: validation, password sources, secrecy, a real connection."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from prefect.blocks.system import Secret
from pydantic import SecretStr, ValidationError

from blocks.postgres import PostgresTarget
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.vault.errors import ConfigError

PASSWORD = "pw-0123-do-not-log"


def test_defaults_and_slug():
    t = PostgresTarget(database="scholar")
    assert t.conninfo() == PgConnInfo(
        host="127.0.0.1",
        port=5432,
        dbname="scholar",
        user="postgres",
        password=None,
        sslmode="prefer",
        connect_timeout=10,
    )
    assert t.target_name == "scholar"
    assert PostgresTarget.get_block_type_name() == "scholar-ops PostgreSQL target"
    assert PostgresTarget.get_block_type_slug() == "scholar-ops-postgresql-target"


def test_conninfo_with_password():
    t = PostgresTarget(
        host="db.internal",
        port=6543,
        database="scholar",
        user="backup",
        password=SecretStr(PASSWORD),
        sslmode="require",
        connect_timeout=5,
        label="main-db",
    )
    info = t.conninfo()
    assert info == PgConnInfo("db.internal", 6543, "scholar", "backup", PASSWORD, "require", 5)
    assert info.connect_kwargs()["password"] == PASSWORD
    assert t.target_name == "main-db"


def test_database_is_required():
    with pytest.raises(ValidationError) as exc:
        PostgresTarget.model_validate({})
    assert [e["loc"] for e in exc.value.errors()] == [("database",)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"sslmode": "required"}, "sslmode"),
        ({"database": "  "}, "database must not be empty"),
        ({"hots": "x"}, r"unknown field 'hots' \(did you mean 'host'\?\)"),
        ({"pasword": PASSWORD}, r"did you mean 'password'\?"),
    ],
)
def test_invalid_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ValidationError, match=match) as exc:
        PostgresTarget(**{"database": "db", **kwargs})
    assert PASSWORD not in str(exc.value)


def test_password_and_password_secret_are_mutually_exclusive():
    with pytest.raises(ValidationError, match="either password or password_secret") as exc:
        PostgresTarget(database="db", password=SecretStr(PASSWORD), password_secret="pg-password")
    assert PASSWORD not in str(exc.value)


def test_empty_strings_from_the_ui_mean_unset():
    t = PostgresTarget(database="db", password=SecretStr(""), password_secret="pg-pw", label=" ")
    assert t.password is None and t.password_secret == "pg-pw" and t.label is None


def test_the_password_never_shows():
    t = PostgresTarget(database="db", password=SecretStr(PASSWORD))
    for text in (
        repr(t),
        str(t),
        repr(t.model_dump()),
        t.model_dump_json(),
        repr(t.model_dump(mode="json")),
        repr(t.conninfo()),
        t.conninfo().describe(),
    ):
        assert PASSWORD not in text, text
    assert t.password == SecretStr(PASSWORD)


def test_password_from_a_saved_secret_block(prefect_harness):
    name = f"pg-password-{uuid.uuid4().hex[:8]}"
    digits = "000123"  # Secret.get() would JSON-decode this to the int 123
    Secret(value=SecretStr(digits)).save(name)
    t = PostgresTarget(database="db", password_secret=name)
    assert t.conninfo().password == digits
    assert t.conninfo().connect_kwargs()["password"] == digits


def test_missing_password_secret_is_a_clear_error(prefect_harness):
    t = PostgresTarget(database="db", password_secret="no-such-secret-block")
    with pytest.raises(ConfigError, match=r"'no-such-secret-block' holding the password"):
        t.conninfo()


def test_saved_target_round_trips(prefect_harness):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    PostgresTarget(
        host="db.internal", database="scholar", password=SecretStr(PASSWORD), label="main"
    ).save(name)
    loaded = PostgresTarget.load_sync(name)
    assert loaded.conninfo().password == PASSWORD
    assert (loaded.host, loaded.target_name) == ("db.internal", "main")


def test_connects_to_a_real_server(pg_server, pg_db):
    dbname = pg_db.rsplit("/", 1)[1]
    t = PostgresTarget(
        host=pg_server.host,
        port=pg_server.port,
        database=dbname,
        user=pg_server.user,
        password=SecretStr(PASSWORD),
        connect_timeout=5,
    )
    kwargs = t.conninfo().connect_kwargs()
    # The server trusts every local connection, so the password is not checked
    # there: that it is handed to libpq is checked here.
    assert kwargs["password"] == PASSWORD
    with psycopg.connect(**kwargs) as conn:
        row = conn.execute("SELECT current_database(), current_user").fetchone()
        assert conn.info.password == PASSWORD  # what libpq was given
    assert row == (dbname, pg_server.user)
