"""Each service fixture really starts its own service and works."""

from __future__ import annotations

import os

import psycopg
import pytest
import redis

from scholar_ops.sources.postgres.cluster import PgServer
from scholar_ops.sources.redis.server import RedisServer


def test_pg_server_is_ours(pg_server: PgServer) -> None:
    assert pg_server.host == "127.0.0.1"
    assert pg_server.port != 5432
    assert (pg_server.datadir / "PG_VERSION").exists()
    with psycopg.connect(pg_server.dsn(), connect_timeout=10) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        assert row[0] == str(pg_server.datadir)
        fsync = conn.execute("SHOW fsync").fetchone()
        assert fsync is not None and fsync[0] == "off"


def test_pg_db_create_table_and_read_back(pg_db: str) -> None:
    with psycopg.connect(pg_db, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE papers (id serial PRIMARY KEY, title text NOT NULL)")
        conn.execute(
            "INSERT INTO papers (title) VALUES (%s), (%s)", ("Attention", "Retrieval — RAG")
        )
        conn.commit()
    with psycopg.connect(pg_db, connect_timeout=10) as conn:
        rows = conn.execute("SELECT id, title FROM papers ORDER BY id").fetchall()
    assert rows == [(1, "Attention"), (2, "Retrieval — RAG")]


def test_pg_db_is_fresh_each_time(pg_db: str) -> None:
    with psycopg.connect(pg_db, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert row == (0,)


def test_create_database_helper(pg_server: PgServer) -> None:
    dsn = pg_server.create_database("helper_check")
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_database()").fetchone()
        assert row == ("helper_check",)
    finally:
        pg_server.drop_database("helper_check")


def test_redis_server_is_ours(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"


def test_redis_set_get(redis_client: redis.Redis) -> None:
    redis_client.set("scholar:key", b"value")
    assert redis_client.get("scholar:key") == b"value"


def test_redis_client_is_flushed(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_harness_runs_a_flow() -> None:
    from prefect import flow

    @flow
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5


def test_webhook_receiver_and_smtp_sink_record_what_arrives(webhook_receiver, smtp_sink):
    import smtplib
    from email.message import EmailMessage

    import httpx

    from tests.fixtures.sinks import message_text

    httpx.post(webhook_receiver.url("/hook"), json=[{"labels": {"alertname": "X"}}], timeout=5)
    got = webhook_receiver.wait_for(lambda r: True, timeout=5, path="/hook")
    assert got.json() == [{"labels": {"alertname": "X"}}]

    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = "backup failed ✓", "a@example.org", "b@example.org"
    msg.set_content("postgres/aischolar: connection refused")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as s:
        s.send_message(msg)
    _, m = smtp_sink.wait_for(lambda m: True, timeout=5)
    assert "postgres/aischolar" in message_text(m) and "backup failed" in message_text(m)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to user postgres")
def test_cluster_under_a_directory_postgres_cannot_enter_is_a_clear_error(tmp_path):
    from scholar_ops.sources.postgres.cluster import throwaway_cluster

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    with (
        pytest.raises(RuntimeError, match=r"cannot enter .*locked.*chmod o\+x"),
        throwaway_cluster(locked / "pg"),
    ):
        pass
