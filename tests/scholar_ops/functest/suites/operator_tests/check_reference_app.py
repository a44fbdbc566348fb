"""An operator's own checks of an AI Scholar deployment, run by the ``pytest`` suite.

Not collected by the project's test run (the name does not start with ``test_``); the
suite passes it by name. Everything about the target comes from the environment the
suite sets: SCHOLAR_OPS_TEST_BASE_URL, SCHOLAR_OPS_TEST_USERNAME,
SCHOLAR_OPS_TEST_PASSWORD, SCHOLAR_OPS_TEST_PREFIX. Records it creates start with the
prefix and are deleted at the end.
"""

from __future__ import annotations

import os
import secrets

import httpx
import pytest

BASE_URL = os.environ["SCHOLAR_OPS_TEST_BASE_URL"]
PREFIX = os.environ.get("SCHOLAR_OPS_TEST_PREFIX", "sotest-")


@pytest.fixture(scope="module")
def client():
    with httpx.Client(base_url=BASE_URL, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def headers(client):
    username = os.environ.get("SCHOLAR_OPS_TEST_USERNAME")
    password = os.environ.get("SCHOLAR_OPS_TEST_PASSWORD")
    if not username or not password:
        pytest.skip("the plan gives no credentials")
    body = {"username": username, "password": password}
    r = client.post("/api/auth/login", json=body)
    if r.status_code == 401:  # a fresh deployment: create the test user
        client.post("/api/auth/register", json=body)
        r = client.post("/api/auth/login", json=body)
    assert r.status_code == 200, f"login answered HTTP {r.status_code}"
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_the_service_is_live(client):
    assert client.get("/health/live").status_code == 200


def test_documents_need_a_token(client):
    assert client.get("/api/documents").status_code == 401


def test_the_test_user_is_who_it_says(client, headers):
    me = client.get("/api/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["username"] == os.environ["SCHOLAR_OPS_TEST_USERNAME"]


def test_a_markdown_upload_is_chunked_and_searchable(client, headers):
    token = f"{PREFIX}op-{secrets.token_hex(4)}"
    r = client.post(
        "/api/documents",
        headers=headers,
        json={
            "title": token,
            "content": f"# {token}\n\nOperators check this.",
            "content_type": "text/markdown",
        },
    )
    assert r.status_code == 201, f"upload answered HTTP {r.status_code}"
    doc = r.json()
    try:
        assert doc["chunks"] >= 1
        found = client.post("/api/search", headers=headers, json={"query": token, "top_k": 5})
        assert found.status_code == 200
        assert doc["id"] in [hit["document_id"] for hit in found.json()["results"]]
    finally:
        client.delete(f"/api/documents/{doc['id']}", headers=headers)
