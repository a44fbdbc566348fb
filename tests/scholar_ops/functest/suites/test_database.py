"""The database suite on real stores: Great Expectations on PostgreSQL tables, Redis
invariants, Chroma collections, cross-store consistency; unreachable stores are
ServiceUnavailable, a store the plan needs but the context lacks is an errored test."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest
from pydantic import SecretStr

from scholar_ops.functest.config import parse_plan
from scholar_ops.functest.context import Stores, SuiteContext
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.stores import Scrubber, sqlalchemy_url
from scholar_ops.functest.suites.database import Settings, run
from scholar_ops.sources.process import free_port


def ctx_for(**stores) -> SuiteContext:
    return SuiteContext(base_url="http://127.0.0.1:9", stores=Stores(**stores), request_timeout=5)


def by_name(suite):
    return {t.test_name: t for t in suite.tests}


@pytest.fixture(scope="session")
def gx_loaded():
    """Great Expectations takes seconds to import: once per session."""
    import great_expectations  # noqa: F401


# -- no services ----------------------------------------------------------------------------


def test_importing_the_suite_loads_neither_great_expectations_nor_chromadb():
    code = (
        "import sys, scholar_ops.functest.suites.database\n"
        "print(','.join(m for m in ('great_expectations', 'chromadb', 'sqlalchemy') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_settings_reject_what_would_silently_check_nothing():
    with pytest.raises(ValueError, match="not a column name"):
        Settings.model_validate({"postgres": {"tables": {"t": {"not_null": ["a; drop"]}}}})
    with pytest.raises(ValueError, match="must be a SELECT"):
        Settings.model_validate(
            {"consistency": [{"postgres_query": "DELETE FROM chunks", "chroma_collection": "c"}]}
        )
    with pytest.raises(ValueError, match=r"\{id\} exactly once"):
        Settings.model_validate(
            {"consistency": [{"postgres_query": "SELECT id FROM c", "chroma_collection": "c",
                              "id_format": "chunk"}]}
        )  # fmt: skip
    with pytest.raises(ValueError, match="min is above max"):
        Settings.model_validate(
            {"postgres": {"tables": {"t": {"ranges": {"a": {"min": 2, "max": 1}}}}}}
        )


def test_scrubber_and_sqlalchemy_url_keep_passwords_out_of_messages():
    dsn = "postgresql://app:s3cr%40t@db.example:5433/scholar?sslmode=disable"
    url = sqlalchemy_url(dsn)
    assert url.startswith("postgresql+psycopg://app:") and "db.example:5433/scholar" in url
    assert "sslmode=disable" in url
    scrub = Scrubber(dsn, url)
    text = f"could not connect to {url} nor {dsn}; also postgresql://x:other@h/d password=abc"
    cleaned = scrub(text)
    assert "s3cr" not in cleaned and "other" not in cleaned and "abc" not in cleaned
    assert "db.example" in scrub(f"error at {dsn}") or "***" in scrub(f"error at {dsn}")


# -- PostgreSQL with Great Expectations -----------------------------------------------------

SCHEMA = """
CREATE TABLE documents (id serial PRIMARY KEY, title text, content_type text);
CREATE TABLE chunks (id serial PRIMARY KEY, document_id int, ordinal int, text text,
                     embedding_dim int);
"""


def test_expectations_name_the_broken_column_with_its_count(pg_db, gx_loaded):
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(
            "INSERT INTO documents (title, content_type) VALUES "
            "('a', 'text/plain'), ('b', 'text/markdown')"
        )
        conn.execute(
            "INSERT INTO chunks (document_id, ordinal, text, embedding_dim) VALUES "
            "(1, 0, 'x', 64), (1, 1, NULL, 64), (2, 0, 'y', 64), (2, 0, 'z', 32), (77, 0, 'w', 64)"
        )
    settings = Settings.model_validate(
        {
            "postgres": {
                "tables": {
                    "documents": {
                        "not_null": ["id", "title"],
                        "unique": ["id"],
                        "in_set": {"content_type": ["text/plain", "text/markdown"]},
                        "row_count_min": 1,
                    },
                    "chunks": {
                        "not_null": ["document_id", "text"],
                        "unique": ["id", "ordinal"],
                        "ranges": {"ordinal": {"min": 0}},
                        "row_count_min": 10,
                    },
                    "missing_table": {"not_null": ["id"]},
                },
                "references": [
                    {"table": "chunks", "column": "document_id", "ref_table": "documents",
                     "ref_column": "id"}
                ],
                "embedding_dimension": {"table": "chunks", "column": "embedding_dim", "equals": 64},
            }
        }
    )  # fmt: skip
    suite = run(ctx_for(postgres_dsn=SecretStr(pg_db)), settings)
    t = by_name(suite)
    for name in (
        "postgres documents.id not null",
        "postgres documents.title not null",
        "postgres documents.id unique",
        "postgres documents.content_type in set",
        "postgres documents row count at least 1",
        "postgres chunks.document_id not null",
        "postgres chunks.id unique",
        "postgres chunks.ordinal at least 0",
    ):
        assert t[name].status == "passed", (name, t[name].error_message)

    null = t["postgres chunks.text not null"]
    assert null.status == "failed" and null.context["unexpected_count"] == "1"
    assert null.error_message.startswith("1 of 5 values of text are NULL")

    dup = t["postgres chunks.ordinal unique"]
    assert dup.status == "failed" and dup.context["unexpected_count"] == "4"  # 0 x4
    assert "0 x4" in dup.context["samples"]

    dim = t["postgres chunks.embedding_dim equals 64"]
    assert dim.status == "failed" and dim.context["unexpected_count"] == "1"
    assert dim.context["samples"] == "32"

    rows = t["postgres chunks row count at least 10"]
    assert rows.status == "failed" and rows.context["actual"] == "5 rows"

    ref = t["postgres chunks.document_id references documents.id"]
    assert ref.status == "failed" and ref.severity == "critical"
    assert ref.context["orphan_rows"] == "1" and ref.context["missing_values"] == "77"

    missing = t["postgres missing_table.id not null"]
    assert missing.status == "failed" and "does not exist" in missing.error_message
    assert suite.status == "failed"
    assert all(x.duration >= 0 for x in suite.tests)


# -- Redis ----------------------------------------------------------------------------------


def test_redis_keys_without_ttl_and_memory_limit(redis_server, redis_client):
    redis_client.set("aischolar:session:tok-with-ttl", "1", ex=600)
    redis_client.set("aischolar:session:leaky-token", "2")  # no TTL: the finding
    for i in range(30):
        redis_client.set(f"aischolar:answer:1:{i}", "a", ex=600)
    redis_client.set("other:key", "x")  # not matched by any pattern
    settings = Settings.model_validate(
        {
            "redis": {
                "ttl_required": ["aischolar:session:*", "aischolar:answer:*"],
                "max_memory_bytes": 1 << 40,
            }
        }
    )
    suite = run(ctx_for(redis_url=SecretStr(redis_server.url)), settings)
    t = by_name(suite)
    sessions = t["redis aischolar:session:* keys have a TTL"]
    assert sessions.status == "failed" and sessions.severity == "medium"
    assert sessions.context["without_ttl"] == "1" and sessions.context["keys_scanned"] == "2"
    # the key is named, but not the token at its end
    assert "aischolar:session:leak…" in sessions.error_message
    assert "leaky-token" not in sessions.error_message
    answers = t["redis aischolar:answer:* keys have a TTL"]
    assert answers.status == "passed" and answers.context["keys_scanned"] == "30"
    assert t["redis used memory below 1024 GiB"].status == "passed"

    tight = Settings.model_validate({"redis": {"max_memory_bytes": 1000, "max_keys_scanned": 5}})
    suite = run(ctx_for(redis_url=SecretStr(redis_server.url)), tight)
    (memory,) = suite.tests
    assert memory.status == "failed" and memory.test_name == "redis used memory below 1000 B"
    assert int(memory.context["used_memory"]) > 1000


# -- Chroma and consistency -----------------------------------------------------------------


def test_chroma_collections_and_cross_store_consistency(pg_db, chroma_server):
    name = f"c_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE chunks (id serial PRIMARY KEY, text text)")
        conn.execute("INSERT INTO chunks (text) SELECT 't' || g FROM generate_series(1, 23) g")
    client = chroma_server.client()
    col = client.create_collection(name, embedding_function=None)
    ids = [f"chunk-{i}" for i in range(1, 24) if i not in (5, 17)]  # 5 and 17 lost
    ids += ["chunk-999", "stray-vector"]  # orphans
    col.add(ids=ids, embeddings=[[0.1] * 64 for _ in ids])

    settings = Settings.model_validate(
        {
            "chroma": {
                "collections": {
                    name: {"dimension": 64, "min_count": 5},
                    "no_such_collection": {"dimension": 64},
                }
            },
            "consistency": [
                {
                    "postgres_query": "SELECT id FROM chunks",
                    "chroma_collection": name,
                    "id_format": "chunk-{id}",
                    "batch_size": 4,  # several pages on both sides
                }
            ],
        }
    )
    ctx = ctx_for(postgres_dsn=SecretStr(pg_db), chroma=chroma_server.url)
    suite = run(ctx, settings)
    t = by_name(suite)
    assert t[f"chroma {name} exists"].status == "passed"
    assert t[f"chroma {name} count at least 5"].status == "passed"
    assert t[f"chroma {name} dimension 64"].status == "passed"
    gone = t["chroma no_such_collection exists"]
    assert gone.status == "failed" and gone.severity == "critical"
    assert t["chroma no_such_collection dimension 64"].status == "skipped"

    missing = t[f"consistency every row of chunks has its vector in {name}"]
    assert missing.status == "failed" and missing.severity == "critical"
    assert missing.context["missing_vectors"] == "2" and missing.context["rows_checked"] == "23"
    assert "chunk-5, chunk-17" in missing.error_message

    orphans = t[f"consistency no orphaned vectors in {name}"]
    assert orphans.status == "failed" and orphans.severity == "high"
    assert orphans.context["orphaned_vectors"] == "2" and orphans.context["vectors_checked"] == "23"
    assert set(orphans.context["samples"].split(", ")) == {"chunk-999", "stray-vector"}

    # repaired: both checks pass
    col.add(ids=["chunk-5", "chunk-17"], embeddings=[[0.2] * 64] * 2)
    col.delete(ids=["chunk-999", "stray-vector"])
    t = by_name(run(ctx, settings))
    assert t[f"consistency every row of chunks has its vector in {name}"].status == "passed"
    assert t[f"consistency no orphaned vectors in {name}"].status == "passed"


# -- unreachable and unconfigured stores ----------------------------------------------------


def test_unreachable_stores_are_unavailable_before_any_verdict(tmp_path):
    port = free_port()
    dsn = f"postgresql://app:hunter2@127.0.0.1:{port}/scholar"
    pg = Settings.model_validate({"postgres": {"tables": {"chunks": {"not_null": ["id"]}}}})
    with pytest.raises(ServiceUnavailable) as e:
        run(ctx_for(postgres_dsn=SecretStr(dsn)), pg)
    assert "PostgreSQL at postgresql://127.0.0.1" in str(e.value)
    assert "hunter2" not in str(e.value) and "app" not in str(e.value).split("unavailable")[0]

    rd = Settings.model_validate({"redis": {"ttl_required": ["a:*"]}})
    with pytest.raises(ServiceUnavailable, match=r"Redis at redis://127\.0\.0\.1"):
        run(ctx_for(redis_url=SecretStr(f"redis://:hunter2@127.0.0.1:{port}/0")), rd)

    ch = Settings.model_validate({"chroma": {"collections": {"c": {}}}})
    with pytest.raises(ServiceUnavailable, match="directory does not exist"):
        run(ctx_for(chroma=str(tmp_path / "absent")), ch)
    assert not (tmp_path / "absent").exists()  # never created


def test_a_store_the_plan_needs_but_the_context_lacks_is_an_errored_test(redis_server):
    settings = Settings.model_validate(
        {
            "postgres": {"tables": {"chunks": {"not_null": ["id"]}}},
            "redis": {"max_memory_bytes": 1 << 40},
            "consistency": [{"postgres_query": "SELECT id FROM chunks", "chroma_collection": "c"}],
        }
    )
    suite = run(ctx_for(redis_url=SecretStr(redis_server.url)), settings)
    t = by_name(suite)
    assert t["stores.postgres is configured"].status == "error"
    assert "postgres and consistency" in t["stores.postgres is configured"].error_message
    assert t["stores.chroma is configured"].status == "error"
    assert t["redis used memory below 1024 GiB"].status == "passed"  # the rest still ran
    assert suite.status == "failed"


def test_the_section_parses_inside_a_plan():
    plan = parse_plan(
        {
            "target": {"base_url": "http://127.0.0.1:8000"},
            "suites": {"database": {"redis": {"ttl_required": ["aischolar:session:*"]}}},
        }
    )
    assert plan.configured() == ["database"]
    assert plan.section("database").timeout() == 300.0


# -- against the reference AI Scholar application --------------------------------------------

#: the plan sections the README shows (stores come from the context here)
EXAMPLE = """
target:
  name: aischolar
  base_url: http://127.0.0.1:8000
auth:
  register: {path: /api/auth/register}
stores:
  postgres: {env: AISCHOLAR_DATABASE_URL}
  redis: {env: AISCHOLAR_REDIS_URL}
  chroma: {env: AISCHOLAR_CHROMA}
suites:
  database:
    postgres:
      tables:
        users:
          not_null: [id, username, password_hash]
          unique: [id, username]
        documents:
          not_null: [id, owner_id, title]
          unique: [id]
          in_set: {content_type: [text/plain, text/markdown]}
        chunks:
          not_null: [id, document_id, ordinal, text]
          unique: [id]
          ranges: {ordinal: {min: 0}}
      references:
        - {table: documents, column: owner_id, ref_table: users, ref_column: id}
        - {table: chunks, column: document_id, ref_table: documents, ref_column: id}
      embedding_dimension: {table: chunks, column: embedding_dim, equals: 64}
    redis:
      ttl_required: ["aischolar:session:*", "aischolar:answer:*", "aischolar:rate:*"]
      max_memory_bytes: 536870912
    chroma:
      collections:
        aischolar_chunks: {dimension: 64, min_count: 1}
    consistency:
      - postgres_query: SELECT id FROM chunks
        chroma_collection: aischolar_chunks
        id_format: "chunk-{id}"
  integration: {}
"""


def example_settings() -> Settings:
    import yaml

    return parse_plan(yaml.safe_load(EXAMPLE)).section("database")


def app_ctx(app) -> SuiteContext:
    return ctx_for(
        postgres_dsn=SecretStr(app.database_url),
        redis_url=SecretStr(app.redis_url),
        chroma=str(app.chroma),
    )


def upload(app, username: str, text: str) -> tuple[dict, int]:
    """Log in as ``username`` and upload ``text``: (auth headers, document id)."""
    import httpx

    password = "sotest password 1"
    app.create_user(username, password)
    with httpx.Client(base_url=app.url, timeout=10) as client:
        token = client.post(
            "/api/auth/login", json={"username": username, "password": password}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        r = client.post(
            "/api/documents",
            json={"title": f"{username} doc", "content": text, "content_type": "text/plain"},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        return headers, int(r.json()["id"])


def delete_document(app, headers: dict, doc_id: int) -> None:
    import httpx

    r = httpx.delete(f"{app.url}/api/documents/{doc_id}", headers=headers, timeout=10)
    assert r.status_code == 204


def chroma_collection(app):
    from scholar_ops.functest.stores import Scrubber, open_chroma

    return open_chroma(str(app.chroma), scrub=Scrubber()).get_collection(
        "aischolar_chunks", embedding_function=None
    )


def test_healthy_application_passes_the_example_plan(aischolar_clean, gx_loaded):
    app = aischolar_clean
    headers, doc_id = upload(app, f"sotest-db-{uuid.uuid4().hex[:6]}", "Healthy text. " * 40)
    try:
        suite = run(app_ctx(app), example_settings())
        failed = [(t.test_name, t.error_message) for t in suite.tests if t.status != "passed"]
        assert failed == []
        names = {t.test_name for t in suite.tests}
        assert {
            "postgres chunks.document_id references documents.id",
            "postgres chunks.embedding_dim equals 64",
            "redis aischolar:session:* keys have a TTL",
            "chroma aischolar_chunks dimension 64",
            "consistency every row of chunks has its vector in aischolar_chunks",
            "consistency no orphaned vectors in aischolar_chunks",
        } <= names
        assert len(suite.tests) >= 25
    finally:
        delete_document(app, headers, doc_id)


CONSISTENCY_ONLY = {
    "consistency": [
        {"postgres_query": "SELECT id FROM chunks", "chroma_collection": "aischolar_chunks",
         "id_format": "chunk-{id}"}
    ]
}  # fmt: skip


def test_missing_vectors_fault_is_a_critical_inconsistency_naming_the_chunks(aischolar_clean):
    app = aischolar_clean
    app.set_faults(missing_vectors=True)
    headers, doc_id = upload(app, f"sotest-mv-{uuid.uuid4().hex[:6]}", "Lost vectors. " * 40)
    try:
        with psycopg.connect(app.database_url) as conn:
            chunk_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM chunks WHERE document_id = %s ORDER BY id", (doc_id,)
                )
            ]
        assert chunk_ids
        suite = run(app_ctx(app), Settings.model_validate(CONSISTENCY_ONLY))
        t = by_name(suite)
        missing = t["consistency every row of chunks has its vector in aischolar_chunks"]
        assert missing.status == "failed" and missing.severity == "critical"
        assert missing.context["missing_vectors"] == str(len(chunk_ids))
        assert f"chunk-{chunk_ids[0]}" in missing.error_message
        assert t["consistency no orphaned vectors in aischolar_chunks"].status == "passed"
    finally:
        delete_document(app, headers, doc_id)


def test_an_orphaned_vector_and_a_session_without_ttl_are_found(aischolar_clean):
    import redis as redis_lib

    app = aischolar_clean
    col = chroma_collection(app)
    orphan = "chunk-987654321"
    col.add(ids=[orphan], embeddings=[[0.0] * 63 + [1.0]], metadatas=[{"document_id": -1}])
    r = redis_lib.Redis.from_url(app.redis_url)
    leaked = f"aischolar:session:sotest-{uuid.uuid4().hex}"
    r.set(leaked, "1")  # no TTL: a session that never expires
    try:
        settings = Settings.model_validate(
            {**CONSISTENCY_ONLY, "redis": {"ttl_required": ["aischolar:session:*"]}}
        )
        t = by_name(run(app_ctx(app), settings))
        orphans = t["consistency no orphaned vectors in aischolar_chunks"]
        assert orphans.status == "failed" and orphans.severity == "high"
        assert orphans.context["orphaned_vectors"] == "1" and orphan in orphans.error_message
        ttl = t["redis aischolar:session:* keys have a TTL"]
        assert ttl.status == "failed" and ttl.context["pattern"] == "aischolar:session:*"
        assert ttl.context["without_ttl"] == "1" and "aischolar:session:sote…" in ttl.error_message
    finally:
        col.delete(ids=[orphan])
        r.delete(leaked)
        r.close()
