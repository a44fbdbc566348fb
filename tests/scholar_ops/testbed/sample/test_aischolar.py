"""The generated AI Scholar database: shape, determinism, daily churn, size estimate."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from scholar_ops.testbed.sample import (
    apply_daily_churn,
    create_schema,
    database_fingerprint,
    load_sample,
    row_counts,
    scale_for_bytes,
)
from scholar_ops.testbed.sample.aischolar import (
    EMBEDDING_DIMS,
    HISTORY_END,
    QUERIES_PER_USER_DAY,
    QUERY_LOG_DAYS,
    TABLES,
)
from tests.fixtures.postgres import PgServer

DOCS = 300


def _load(dsn: str, documents: int = DOCS, seed: int = 7) -> dict[str, int]:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        create_schema(conn)
        return load_sample(conn, documents=documents, seed=seed)


def _scalar(conn: psycopg.Connection, query: str) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_load_sample_tables_and_counts(pg_db: str) -> None:
    counts = _load(pg_db)
    assert set(counts) == set(TABLES)
    users = DOCS // 20
    assert counts["users"] == users
    assert counts["documents"] == DOCS
    assert 3.5 * DOCS <= counts["document_chunks"] <= 4.5 * DOCS
    assert counts["embeddings"] == counts["document_chunks"]
    expected_queries = users * QUERIES_PER_USER_DAY * QUERY_LOG_DAYS
    assert 0.5 * expected_queries <= counts["query_log"] <= 1.2 * expected_queries

    with psycopg.connect(pg_db, connect_timeout=10) as conn:
        assert row_counts(conn) == counts
        # a document's content is its chunks, in order; chunks are 400-600 characters
        assert (
            _scalar(
                conn,
                "SELECT count(*) FROM public.documents d WHERE content IS DISTINCT FROM "
                "(SELECT string_agg(text, '' ORDER BY chunk_index) FROM public.document_chunks c "
                "WHERE c.document_id = d.id)",
            )
            == 0
        )
        lengths = conn.execute(
            "SELECT min(length(text)), max(length(text)) FROM public.document_chunks c "
            "JOIN public.documents d ON d.id = c.document_id WHERE length(d.content) > 1700"
        ).fetchone()
        assert lengths is not None and lengths[0] >= 380 and lengths[1] <= 620
        avg_content = _scalar(conn, "SELECT avg(length(content))::int FROM public.documents")
        assert isinstance(avg_content, int) and 1500 <= avg_content <= 2500
        # every embedding has 384 dimensions, values of limited precision
        assert (
            _scalar(
                conn,
                f"SELECT count(*) FROM public.embeddings WHERE array_length(vector, 1) <> {EMBEDDING_DIMS}",
            )
            == 0
        )
        sample = _scalar(
            conn, "SELECT vector::text FROM public.embeddings ORDER BY chunk_id LIMIT 1"
        )
        assert isinstance(sample, str)
        assert all(len(v.lstrip("-")) <= 8 for v in sample.strip("{}").split(","))
        # the query log lies in the last QUERY_LOG_DAYS days before HISTORY_END
        span = conn.execute(
            "SELECT min(created_at), max(created_at) FROM public.query_log"
        ).fetchone()
        assert span is not None
        assert HISTORY_END - timedelta(days=QUERY_LOG_DAYS) <= span[0] <= span[1] < HISTORY_END
        # the serial sequences follow the loaded ids
        conn.execute(
            "INSERT INTO public.users (email, name) VALUES ('new@example.org', 'New User')"
        )
        assert _scalar(conn, "SELECT max(id) FROM public.users") == DOCS // 20 + 1


def test_same_seed_same_database(pg_server: PgServer, pg_db: str, other_db: str) -> None:
    _load(pg_db, seed=11)
    _load(other_db, seed=11)
    pg_dump = pg_server.tool("pg_dump")
    first = database_fingerprint(pg_db, pg_dump)
    assert first == database_fingerprint(other_db, pg_dump)
    assert first.total_rows > 1000

    # the same churn on both stays equal; then one more day on one side differs
    with psycopg.connect(pg_db) as a, psycopg.connect(other_db) as b:
        assert apply_daily_churn(a, seed=3) == apply_daily_churn(b, seed=3)
    assert database_fingerprint(pg_db, pg_dump) == database_fingerprint(other_db, pg_dump)
    with psycopg.connect(pg_db) as a:
        apply_daily_churn(a, seed=4)
    diff = database_fingerprint(pg_db, pg_dump).diff(database_fingerprint(other_db, pg_dump))
    assert any(d.startswith("table public.query_log: ") for d in diff), diff


def test_different_seed_different_data(pg_server: PgServer, pg_db: str, other_db: str) -> None:
    _load(pg_db, documents=40, seed=1)
    _load(other_db, documents=40, seed=2)
    pg_dump = pg_server.tool("pg_dump")
    diff = database_fingerprint(pg_db, pg_dump).diff(database_fingerprint(other_db, pg_dump))
    assert any(d.startswith("table public.embeddings: ") for d in diff), diff
    assert not any(d.startswith("schema") for d in diff)


def test_daily_churn_changes_about_the_right_amounts(pg_db: str) -> None:
    documents = 2000
    _load(pg_db, documents=documents, seed=5)
    with psycopg.connect(pg_db, connect_timeout=10) as conn:
        before = row_counts(conn)
        embeddings_before: dict[int, str] = dict(
            conn.execute("SELECT chunk_id, md5(vector::text) FROM public.embeddings").fetchall()
        )
        changed = apply_daily_churn(conn, seed=1)
        after = row_counts(conn)

        assert changed["documents_inserted"] == documents // 100  # 1%
        assert changed["documents_updated"] == 2  # 0.1%
        assert 3 * 20 <= changed["chunks_inserted"] <= 5 * 20
        assert changed["embeddings_inserted"] == changed["chunks_inserted"]
        assert 2 <= changed["chunks_updated"] <= 4
        assert changed["embeddings_updated"] == changed["chunks_updated"]
        assert changed["queries_inserted"] == round(before["query_log"] * 0.02)
        assert after == {
            "users": before["users"],
            "documents": before["documents"] + changed["documents_inserted"],
            "document_chunks": before["document_chunks"] + changed["chunks_inserted"],
            "embeddings": before["embeddings"] + changed["embeddings_inserted"],
            "query_log": before["query_log"] + changed["queries_inserted"],
        }

        # the day after the history: new documents and queries, updated_at bumped
        day = HISTORY_END
        touched = _scalar(
            conn,
            f"SELECT count(*) FROM public.documents WHERE updated_at >= '{day.isoformat()}'",
        )
        assert touched == changed["documents_inserted"] + changed["documents_updated"]
        assert (
            _scalar(
                conn,
                f"SELECT count(*) FROM public.query_log WHERE created_at >= '{day.isoformat()}' "
                f"AND created_at < '{(day + timedelta(days=1)).isoformat()}'",
            )
            == changed["queries_inserted"]
        )
        # content still equals its chunks for every document, old and new
        assert (
            _scalar(
                conn,
                "SELECT count(*) FROM public.documents d WHERE content IS DISTINCT FROM "
                "(SELECT string_agg(text, '' ORDER BY chunk_index) FROM public.document_chunks c "
                "WHERE c.document_id = d.id)",
            )
            == 0
        )
        embeddings_after: dict[int, str] = dict(
            conn.execute("SELECT chunk_id, md5(vector::text) FROM public.embeddings").fetchall()
        )
        changed_vectors = [k for k, v in embeddings_before.items() if embeddings_after[k] != v]
        assert len(changed_vectors) == changed["embeddings_updated"]

        # the next day follows on
        apply_daily_churn(conn, seed=2, new_queries=10, new_documents_pct=0)
        last = _scalar(conn, "SELECT max(created_at) FROM public.query_log")
        assert last is not None and str(last) >= str(day + timedelta(days=1))


@pytest.mark.parametrize("documents", [400])
def test_scale_for_bytes_roughly_right(pg_db: str, documents: int) -> None:
    _load(pg_db, documents=documents)
    with psycopg.connect(pg_db, connect_timeout=10) as conn:
        size = _scalar(conn, "SELECT pg_database_size(current_database())")
    assert isinstance(size, int)
    estimate = scale_for_bytes(size)
    assert 0.75 * documents <= estimate <= 1.25 * documents
    assert scale_for_bytes(80_000_000) == pytest.approx(6000, rel=0.1)
    assert scale_for_bytes(0) >= 1
