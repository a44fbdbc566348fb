"""The reference AI Scholar application over HTTP, on real PostgreSQL, Redis and Chroma."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import psycopg
import redis

from scholar_ops.aischolar.embedding import DIMENSION
from scholar_ops.testbed.aischolar import AIScholar


def _user(app: AIScholar) -> dict[str, str]:
    name, password = f"sotest-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    app.create_user(name, password)
    return {"Authorization": f"Bearer {app.token(name, password)}"}


def _upload(app: AIScholar, h: dict[str, str], title: str, content: str) -> dict[str, Any]:
    r = httpx.post(
        f"{app.url}/api/documents",
        headers=h,
        timeout=10,
        json={"title": title, "content": content, "content_type": "text/markdown"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_documents_search_ask_cache_delete(aischolar_clean: AIScholar):
    app = aischolar_clean
    h = _user(app)
    token = uuid.uuid4().hex[:10]
    doc = _upload(
        app,
        h,
        "sotest paper",
        f"# Findings\nThe zorblax{token} method halves latency.\n\nOther text.",
    )
    assert doc["chunks"] >= 1
    files = {"file": ("notes.md", b"# Notes\nQuokkas are marsupials.", "text/markdown")}
    up = httpx.post(f"{app.url}/api/documents/upload", headers=h, files=files, timeout=10)
    assert up.status_code == 201 and up.json()["title"] == "notes.md"
    assert up.json()["content_type"] == "text/markdown"
    txt = httpx.post(
        f"{app.url}/api/documents/upload",
        headers=h,
        timeout=10,
        data={"title": "sotest plain"},
        files={"file": ("plain.txt", b"Wombats dig burrows.", "text/plain")},
    )
    assert txt.status_code == 201, txt.text
    assert (txt.json()["title"], txt.json()["content_type"]) == ("sotest plain", "text/plain")
    full = httpx.get(f"{app.url}/api/documents/{txt.json()['id']}", headers=h, timeout=10).json()
    assert full["content"] == "Wombats dig burrows." and full["chunks"] == 1
    with psycopg.connect(app.database_url) as conn:
        dims = conn.execute(
            "SELECT DISTINCT embedding_dim FROM chunks WHERE document_id = %s", (doc["id"],)
        ).fetchall()
    assert dims == [(DIMENSION,)]
    stored = app_collection(app).get(
        where={"document_id": doc["id"]}, include=["metadatas", "embeddings"]
    )
    assert stored["ids"] and all(i.startswith("chunk-") for i in stored["ids"])
    assert {m["ordinal"] for m in stored["metadatas"]} == set(range(doc["chunks"]))
    assert len(stored["embeddings"][0]) == DIMENSION
    bad = httpx.post(
        f"{app.url}/api/documents/upload",
        headers=h,
        timeout=10,
        files={"file": ("x.pdf", b"%PDF", "application/pdf")},
    )
    assert bad.status_code == 415
    listed = httpx.get(f"{app.url}/api/documents", headers=h, timeout=10).json()["documents"]
    assert {d["id"] for d in listed} == {doc["id"], up.json()["id"], txt.json()["id"]}

    hits = httpx.post(
        f"{app.url}/api/search",
        headers=h,
        timeout=10,
        json={"query": f"zorblax{token} latency", "top_k": 3},
    ).json()["results"]
    assert hits[0]["document_id"] == doc["id"] and f"zorblax{token}" in hits[0]["text"]
    assert set(hits[0]) == {"chunk_id", "document_id", "title", "text", "score"}

    q = {"question": f"what does the zorblax{token} method do?", "top_k": 3}
    first = httpx.post(f"{app.url}/api/ask", headers=h, json=q, timeout=10).json()
    assert f"zorblax{token}" in first["answer"] and not first["cached"]
    assert first["sources"][0]["document_id"] == doc["id"]
    second = httpx.post(f"{app.url}/api/ask", headers=h, json=q, timeout=10).json()
    assert second["cached"] and second["answer"] == first["answer"]
    me = httpx.get(f"{app.url}/api/me", headers=h, timeout=10).json()
    answers = redis.Redis.from_url(app.redis_url).keys(f"aischolar:answer:{me['id']}:*")
    assert answers and all(0 < redis.Redis.from_url(app.redis_url).ttl(k) <= 600 for k in answers)

    assert (
        httpx.delete(f"{app.url}/api/documents/{doc['id']}", headers=h, timeout=10).status_code
        == 204
    )
    hits = httpx.post(
        f"{app.url}/api/search",
        headers=h,
        timeout=10,
        json={"query": f"zorblax{token}", "top_k": 5},
    ).json()["results"]
    assert all(r["document_id"] != doc["id"] for r in hits)
    col = app_collection(app)
    assert not col.get(where={"document_id": doc["id"]}, include=[])["ids"]
    with psycopg.connect(app.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM chunks WHERE document_id = %s", (doc["id"],)
        ).fetchone()
    assert row == (0,)
    again = httpx.post(f"{app.url}/api/ask", headers=h, json=q, timeout=10).json()
    assert not again["cached"]  # the cache forgot answers over the deleted document


def app_collection(app: AIScholar) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    port = int(app.chroma.rsplit(":", 1)[1])
    client = chromadb.HttpClient(
        host="127.0.0.1", port=port, settings=ChromaSettings(anonymized_telemetry=False)
    )
    return client.get_collection("aischolar_chunks", embedding_function=None)


def test_auth_is_enforced_and_users_are_isolated(aischolar_clean: AIScholar):
    app = aischolar_clean
    for method, path in [
        ("GET", "/api/documents"),
        ("POST", "/api/search"),
        ("POST", "/api/ask"),
        ("GET", "/api/me"),
        ("DELETE", "/api/documents/1"),
    ]:
        r = httpx.request(method, f"{app.url}{path}", json={}, timeout=10)
        assert r.status_code == 401, (method, path)
    bogus = {"Authorization": "Bearer not-a-token"}
    assert httpx.get(f"{app.url}/api/me", headers=bogus, timeout=10).status_code == 401
    a, b = _user(app), _user(app)
    doc = _upload(app, a, "sotest private", "Secret capybara research.")
    assert (
        httpx.get(f"{app.url}/api/documents/{doc['id']}", headers=b, timeout=10).status_code == 404
    )
    hits = httpx.post(f"{app.url}/api/search", headers=b, json={"query": "capybara"}, timeout=10)
    assert hits.json()["results"] == []
    assert httpx.get(f"{app.url}/api/documents", headers=b, timeout=10).json() == {"documents": []}
    gone = httpx.delete(f"{app.url}/api/documents/{doc['id']}", headers=b, timeout=10)
    assert gone.status_code == 404
    mine = httpx.get(f"{app.url}/api/documents/{doc['id']}", headers=a, timeout=10)
    assert mine.status_code == 200  # B's delete did not touch it
    wrong = httpx.post(
        f"{app.url}/api/auth/login",
        timeout=10,
        json={"username": app.test_user, "password": "wrong-password"},
    )
    assert wrong.status_code == 401
    dup = httpx.post(
        f"{app.url}/api/auth/register",
        timeout=10,
        json={"username": app.test_user, "password": "whatever-123"},
    )
    assert dup.status_code == 409
    for bad in (
        {"username": "sotest-x"},
        {"username": "no spaces allowed", "password": "long-enough-1"},
        {"username": "sotest-short", "password": "short"},
    ):
        r = httpx.post(f"{app.url}/api/auth/register", json=bad, timeout=10)
        assert r.status_code == 422, bad


def test_sessions_carry_a_ttl_and_logout_ends_them(aischolar_clean: AIScholar):
    app = aischolar_clean
    h = _user(app)
    token = h["Authorization"][7:]
    r = redis.Redis.from_url(app.redis_url)
    assert 0 < r.ttl(f"aischolar:session:{token}") <= 3600
    assert httpx.post(f"{app.url}/api/auth/logout", headers=h, timeout=10).status_code == 204
    assert httpx.get(f"{app.url}/api/me", headers=h, timeout=10).status_code == 401


def test_fault_switches(aischolar_clean: AIScholar):
    app = aischolar_clean
    h = _user(app)
    doc = _upload(app, h, "sotest faults", "Axolotls regrow limbs.")
    search = {"query": "axolotls", "top_k": 2}
    assert (
        httpx.put(
            f"{app.url}/api/admin/faults",
            json={"search_500": True},
            timeout=10,
            headers={"X-Admin-Token": "wrong"},
        ).status_code
        == 403
    )
    app.set_faults(search_500=True)
    assert (
        httpx.post(f"{app.url}/api/search", headers=h, json=search, timeout=10).status_code == 500
    )
    app.set_faults(renamed_field=True)
    hit = httpx.post(f"{app.url}/api/search", headers=h, json=search, timeout=10).json()["results"][
        0
    ]
    assert "similarity" in hit and "score" not in hit
    app.set_faults(slow_search=True)
    r = httpx.post(f"{app.url}/api/search", headers=h, json=search, timeout=10)
    assert r.status_code == 200 and r.elapsed.total_seconds() >= 1.4
    app.set_faults(broken_button=True)
    js = httpx.get(f"{app.url}/static/app.js", timeout=10).text
    assert 'bind("search-button", search)' not in js and 'bind("ask-button", ask)' in js
    app.set_faults(missing_vectors=True)
    lost = _upload(app, h, "sotest lost", "Tardigrades survive vacuum.")
    assert not app_collection(app).get(where={"document_id": lost["id"]}, include=[])["ids"]
    with psycopg.connect(app.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM chunks WHERE document_id = %s", (lost["id"],)
        ).fetchone()
    assert row is not None and row[0] >= 1
    app.reset_faults()
    assert 'bind("search-button", search)' in httpx.get(f"{app.url}/static/app.js", timeout=10).text
    for d in (doc, lost):
        httpx.delete(f"{app.url}/api/documents/{d['id']}", headers=h, timeout=10)


def test_rate_limit_answers_429_with_retry_after(aischolar_clean: AIScholar, tmp_path):
    from scholar_ops.testbed.aischolar import running_aischolar

    app = aischolar_clean
    with running_aischolar(
        database_url=app.database_url,
        redis_url=app.redis_url,
        chroma=app.chroma,
        admin_token="t",
        workdir=tmp_path,
        env_extra={"AISCHOLAR_RATE_LIMIT_PER_MINUTE": "3"},
    ) as limited:
        h = _user(limited)
        codes = [
            httpx.post(
                f"{limited.url}/api/ask", headers=h, timeout=10, json={"question": f"q{i}"}
            ).status_code
            for i in range(5)
        ]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = httpx.post(f"{limited.url}/api/ask", headers=h, json={"question": "q"}, timeout=10)
        assert 0 < int(r.headers["Retry-After"]) <= 60


def test_frontend_openapi_and_health(aischolar_clean: AIScholar):
    app = aischolar_clean
    page = httpx.get(app.url + "/", timeout=10).text
    for element in (
        "login-username",
        "login-password",
        "login-button",
        "upload-file",
        "search-input",
        "search-button",
        "ask-button",
        "answer",
        "sources",
        "status",
    ):
        assert f'id="{element}"' in page
    schema = httpx.get(app.url + "/openapi.json", timeout=10).json()
    assert {"/api/search", "/api/ask", "/api/documents", "/api/auth/login"} <= set(schema["paths"])
    assert "/api/admin/faults" not in schema["paths"]
    assert httpx.get(app.url + "/health/live", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(app.url + "/health/ready", timeout=30)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "chroma": "ok"}
    js = httpx.get(app.url + "/static/app.js", timeout=10)
    css = httpx.get(app.url + "/static/app.css", timeout=10)
    assert js.status_code == css.status_code == 200 and "javascript" in js.headers["content-type"]
    health = httpx.get(app.url + "/health/database", timeout=30).json()
    assert health["status"] == "healthy"
    assert set(health["checks"]) == {"postgres", "redis", "chroma"}
