"""The PostgreSQL schema (idempotent, with the contract's constraints) and the pool."""

from __future__ import annotations

import threading

import psycopg
import pytest

from scholar_ops.aischolar.db import Pool


def _one(cur: psycopg.Cursor) -> int:
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def test_schema_is_idempotent_and_enforces_the_contract(pg_db: str):
    pool = Pool(pg_db, size=2)
    pool.create_schema()
    pool.create_schema()  # a second start changes nothing
    with psycopg.connect(pg_db, autocommit=True) as conn:
        uid = _one(
            conn.execute(
                "INSERT INTO users (username, password_hash) VALUES ('sotest-a', 'x') RETURNING id"
            )
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO users (username, password_hash) VALUES ('sotest-a', 'y')")
        doc = _one(
            conn.execute(
                "INSERT INTO documents (owner_id, title, content) VALUES (%s, 't', 'c') RETURNING id",
                (uid,),
            )
        )
        conn.execute(
            "INSERT INTO chunks (document_id, ordinal, text, embedding_dim) VALUES (%s, 0, 'c', 64)",
            (doc,),
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO chunks (document_id, ordinal, text, embedding_dim) "
                "VALUES (%s, 0, 'd', 64)",
                (doc,),
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO chunks (document_id, ordinal, text, embedding_dim) "
                "VALUES (%s, -1, 'd', 64)",
                (doc,),
            )
        conn.execute("DELETE FROM users WHERE id = %s", (uid,))  # cascades to the chunks
        assert conn.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (0,)


def test_pool_reuses_connections_bounds_them_and_rolls_back_on_error(pg_db: str):
    pool = Pool(pg_db, size=2)
    pool.create_schema()
    with pool.connection() as conn:
        first = conn.info.backend_pid
    with pool.connection() as conn:
        assert conn.info.backend_pid == first  # reused, not reopened
    with pytest.raises(ZeroDivisionError), pool.connection() as conn:
        conn.execute("INSERT INTO users (username, password_hash) VALUES ('sotest-r', 'x')")
        raise ZeroDivisionError
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)

    pids: set[int] = set()
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(5):
            with pool.connection() as c:
                pids.add(_one(c.execute("SELECT pg_backend_pid()")))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= len(pids) <= 2  # never more connections than the pool's size
    pool.ping()
    pool.close()
