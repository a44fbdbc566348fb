"""The integration journey against the reference AI Scholar application: every step
passes when it is healthy and leaves no test data; a broken search fails its step,
skips the steps after it, and the cleanup still removes the document."""

from __future__ import annotations

import psycopg
import pytest
from pydantic import SecretStr

from scholar_ops.functest.context import Credentials, SuiteContext
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.settings import AuthSettings
from scholar_ops.functest.suites.integration import (
    ASK,
    CACHED,
    CREATE,
    DELETE,
    GONE,
    LOGIN,
    SEARCH,
    UPLOAD,
    Settings,
    run,
)
from scholar_ops.sources.process import free_port

STEPS = [CREATE, LOGIN, UPLOAD, SEARCH, ASK, CACHED, DELETE, GONE]
#: this file's own prefix: nothing another test leaves behind can be mistaken for ours
PREFIX = "sotestjourney-"
AUTH = AuthSettings.model_validate({"register": {"path": "/api/auth/register"}})


def ctx_for(app, **kwargs) -> SuiteContext:
    kwargs.setdefault("test_prefix", PREFIX)
    return SuiteContext(
        base_url=app.url, auth=AUTH, run_id="run-1234abcd", request_timeout=10, **kwargs
    )


def by_name(suite):
    return {t.test_name: t for t in suite.tests}


def documents_titled(app, pattern: str) -> int:
    with psycopg.connect(app.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM documents WHERE title LIKE %s", (pattern,))
        (count,) = row.fetchone() or (0,)
        return int(count)


def vectors_of(app, document_id: int) -> list[str]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    if str(app.chroma).startswith("http"):
        host, port = str(app.chroma).removeprefix("http://").split(":")
        client = chromadb.HttpClient(
            host=host, port=int(port), settings=ChromaSettings(anonymized_telemetry=False)
        )
    else:
        client = chromadb.PersistentClient(
            path=str(app.chroma), settings=ChromaSettings(anonymized_telemetry=False)
        )
    col = client.get_collection("aischolar_chunks", embedding_function=None)
    return list(col.get(where={"document_id": document_id}, include=[])["ids"])


def test_healthy_journey_passes_every_step_and_leaves_no_test_data(aischolar_clean):
    app = aischolar_clean
    suite = run(ctx_for(app), Settings())
    t = by_name(suite)
    assert [x.test_name for x in suite.tests] == STEPS, suite.tests
    for name in STEPS:
        assert t[name].status == "passed", (name, t[name].error_message, t[name].context)
    assert t[CACHED].severity == "medium" and t[SEARCH].severity == "critical"
    assert suite.status == "passed"

    username = t[CREATE].context["username"]
    assert username.startswith(PREFIX)
    doc_id = int(t[UPLOAD].context["document_id"])
    # nothing with the prefix remains: no document, no chunk, no vector
    assert documents_titled(app, f"{PREFIX}%") == 0
    with psycopg.connect(app.database_url) as conn:
        chunks = conn.execute("SELECT count(*) FROM chunks WHERE document_id = %s", (doc_id,))
        assert chunks.fetchone() == (0,)
        # the reference app cannot delete users: the test user remains, owning nothing
        owned = conn.execute(
            "SELECT count(d.id) FROM users u LEFT JOIN documents d ON d.owner_id = u.id "
            "WHERE u.username = %s",
            (username,),
        ).fetchone()
        assert owned == (0,)
    assert vectors_of(app, doc_id) == []


def test_broken_search_fails_its_step_skips_the_rest_and_still_cleans_up(aischolar_clean):
    app = aischolar_clean
    app.set_faults(search_500=True)
    suite = run(ctx_for(app), Settings())
    t = by_name(suite)
    assert [t[n].status for n in (CREATE, LOGIN, UPLOAD)] == ["passed"] * 3
    search = t[SEARCH]
    assert search.status == "failed" and search.severity == "critical"
    assert (
        search.context["actual"] == "HTTP 500" and search.context["endpoint"] == "POST /api/search"
    )
    for name in (ASK, CACHED, DELETE, GONE):
        assert t[name].status == "skipped", name
    assert "'search finds the document' did not pass" in t[ASK].error_message
    cleanup = t["cleanup removes the test document"]
    assert cleanup.status == "passed"
    doc_id = int(t[UPLOAD].context["document_id"])
    assert documents_titled(app, f"{PREFIX}%") == 0
    assert vectors_of(app, doc_id) == []
    assert suite.status == "failed"


def test_journey_with_the_configured_user_and_unreachable_target(aischolar_clean):
    app = aischolar_clean
    ctx = ctx_for(
        app,
        credentials=Credentials(app.test_user, SecretStr(app.test_password)),
        secrets=(app.test_password,),
    )
    suite = run(ctx, Settings(user="configured", document_title="{token} other title"))
    t = by_name(suite)
    assert t[CREATE].status == "skipped" and "configured test user" in t[CREATE].error_message
    assert all(t[n].status == "passed" for n in STEPS[1:]), suite.tests
    assert documents_titled(app, f"{PREFIX}%") == 0
    assert app.test_password not in repr(suite.tests)

    down = SuiteContext(base_url=f"http://127.0.0.1:{free_port()}", auth=AUTH)
    with pytest.raises(ServiceUnavailable, match="connection refused"):
        run(down, Settings())
