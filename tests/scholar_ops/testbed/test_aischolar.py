"""The launcher of the reference application (scholar_ops.testbed.aischolar)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from scholar_ops.testbed.aischolar import FAULTS, AIScholar


def test_the_object_the_fixture_yields(aischolar_clean: AIScholar):
    app = aischolar_clean
    assert app.url == f"http://127.0.0.1:{app.port}"
    assert app.database_url.startswith("postgresql://")
    assert app.redis_url.startswith("redis://") and app.chroma.startswith("http://")
    assert httpx.get(app.url + "/health/live", timeout=10).status_code == 200
    # the test user exists from the start
    assert app.token(app.test_user, app.test_password)


def test_set_faults_switches_the_named_ones_and_reset_turns_all_off(aischolar_clean: AIScholar):
    app = aischolar_clean
    assert app.set_faults(slow_search=True, broken_button=True) == {
        name: name in ("slow_search", "broken_button") for name in FAULTS
    }
    shown = httpx.get(
        app.url + "/api/admin/faults", headers={"X-Admin-Token": app.admin_token}, timeout=10
    ).json()
    assert shown["slow_search"] and shown["broken_button"] and not shown["search_500"]
    app.reset_faults()
    shown = httpx.get(
        app.url + "/api/admin/faults", headers={"X-Admin-Token": app.admin_token}, timeout=10
    ).json()
    assert not any(shown.values())
    with pytest.raises(ValueError, match="unknown fault"):
        app.set_faults(no_such_fault=True)


def test_create_user_is_idempotent(aischolar_clean: AIScholar):
    app = aischolar_clean
    name = f"sotest-{uuid.uuid4().hex[:8]}"
    first = app.create_user(name, "a-long-password")
    assert app.create_user(name, "a-long-password") == first
