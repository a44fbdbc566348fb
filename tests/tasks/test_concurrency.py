"""Global concurrency limits: their names, their settings, and creating and holding them on a
real Prefect API (the session harness)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from pydantic import SecretStr

from blocks.chroma import ChromaTarget
from blocks.files import FilesTarget
from blocks.postgres import PostgresClusterTarget, PostgresTarget
from blocks.redis import RedisTarget
from scholar_ops.vault.errors import ConfigError
from tasks import concurrency as cc

PASSWORD = "pw-" + uuid.uuid4().hex


# -- names --------------------------------------------------------------------------------


def test_a_database_server_has_one_dump_limit_named_by_host_and_port_only():
    dump = PostgresTarget(
        host="DB.example.org", port=5433, database="scholar", user="backup",
        password=SecretStr(PASSWORD),
    )  # fmt: skip
    other_db = PostgresTarget(host="db.example.org", port=5433, database="other", user="u2")
    cluster = PostgresClusterTarget(host="db.example.org", port=5433, database="postgres")
    name = cc.dump_limit_name("postgres", dump)
    assert name == "scholar-ops dumps postgres db.example.org:5433"
    # every database of the server, and its base backups, share the server's slots
    assert cc.dump_limit_name("postgres", other_db) == name
    assert cc.dump_limit_name("postgres-base", cluster) == name
    assert PASSWORD not in name and "backup" not in name and "scholar" not in name.split()[-1]
    assert cc.dump_limit_name("postgres", PostgresTarget(host="db2", database="x")) != name


def test_redis_and_chroma_servers_have_limits_files_and_embedded_chroma_none(tmp_path):
    redis = RedisTarget(host="10.0.0.5", port=6380, password=SecretStr(PASSWORD))
    assert cc.dump_limit_name("redis", redis) == "scholar-ops dumps redis 10.0.0.5:6380"
    server = ChromaTarget(host="chroma.local", port=8001, token=SecretStr(PASSWORD))
    assert cc.dump_limit_name("chroma", server) == "scholar-ops dumps chroma chroma.local:8001"
    assert cc.dump_limit_name("chroma", ChromaTarget(path=str(tmp_path))) is None
    assert cc.dump_limit_name("files", FilesTarget(path=str(tmp_path))) is None


def test_names_never_hold_characters_prefect_refuses_nor_a_user_before_an_at():
    socket_dir = PostgresTarget(host="/var/run/postgresql", database="db")
    name = cc.dump_limit_name("postgres", socket_dir)
    assert name == "scholar-ops dumps postgres _var_run_postgresql:5432"
    sneaky = PostgresTarget(host=f"admin:{PASSWORD}@db.internal", database="db")
    assert cc.dump_limit_name("postgres", sneaky) == "scholar-ops dumps postgres db.internal:5432"
    prune = cc.prune_limit_name("s3://backups/scholar (endpoint http://minio:9000)")
    assert prune == "scholar-ops prune s3:__backups_scholar (endpoint http:__minio:9000)"
    assert not set("/%&<>") & set(cc.prune_limit_name("/srv/a%b&c<d>"))
    long = cc.prune_limit_name("/srv/" + "x" * 500)
    assert len(long) == cc.MAX_NAME
    assert long != cc.prune_limit_name("/srv/" + "x" * 499)  # the digest tells them apart


def test_settings_defaults_and_one_line_errors(monkeypatch):
    monkeypatch.delenv(cc.MAX_DUMPS_ENV, raising=False)
    monkeypatch.delenv(cc.LEASE_ENV, raising=False)
    assert cc.max_dumps_per_server() == 2
    assert cc.lease_seconds() == 120
    monkeypatch.setenv(cc.MAX_DUMPS_ENV, " 5 ")
    assert cc.max_dumps_per_server() == 5
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(cc.MAX_DUMPS_ENV, bad)
        with pytest.raises(ConfigError, match=f"{cc.MAX_DUMPS_ENV}=.*at least 1"):
            cc.max_dumps_per_server()
    monkeypatch.setenv(cc.LEASE_ENV, "30")
    with pytest.raises(ConfigError, match="at least 60"):
        cc.lease_seconds()


def test_without_an_api_the_work_runs_unlimited_and_touches_no_server():
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE,
        temporary_settings,
    )

    ran = []
    # No API URL, and no ephemeral server allowed: any client call would raise.
    with temporary_settings(
        updates={PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: False}, restore_defaults={PREFECT_API_URL}
    ):
        assert not cc.api_available()
        start = time.monotonic()
        with cc.slot("scholar-ops test no-api", 1, "test"):
            ran.append(1)
    assert ran == [1] and time.monotonic() - start < 1


# -- on a Prefect API ---------------------------------------------------------------------


def _limit(name: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def test_ensure_limit_creates_it_then_sets_its_size_back(prefect_harness):
    name = cc.limit_name("test", uuid.uuid4().hex[:8])
    cc.ensure_limit(name, 3)
    assert _limit(name).limit == 3
    cc.ensure_limit(name, 3)  # unchanged: no error, no duplicate
    cc.ensure_limit(name, 1)
    got = _limit(name)
    assert got.limit == 1 and got.active


def test_a_slot_is_held_across_threads_and_a_wait_times_out_naming_the_limit(
    prefect_harness, monkeypatch
):
    monkeypatch.setenv(cc.WAIT_ENV, "2")
    name = cc.limit_name("test", "one", uuid.uuid4().hex[:8])
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder() -> None:
        with cc.slot(name, 1, "first"):
            order.append("first in")
            inside.set()
            release.wait(30)
            order.append("first out")

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert inside.wait(60)
        assert _limit(name).active_slots == 1
        # the limit has one slot, held: a second holder waits, then fails naming it
        with (
            pytest.raises(cc.SlotTimeout, match=f"{name!r} \\(1\\).*within 2 s"),
            cc.slot(name, 1, "second"),
        ):
            order.append("second in")  # pragma: no cover - must not happen
    finally:
        release.set()
        t.join(60)
    assert order == ["first in", "first out"]
    monkeypatch.setenv(cc.WAIT_ENV, "60")
    with cc.slot(name, 1, "third"):  # free again
        assert _limit(name).active_slots == 1
    assert _limit(name).active_slots == 0


def test_an_error_inside_releases_the_slot(prefect_harness):
    name = cc.limit_name("test", "err", uuid.uuid4().hex[:8])
    with pytest.raises(RuntimeError, match="boom"), cc.slot(name, 1, "failing"):
        raise RuntimeError("boom")
    assert _limit(name).active_slots == 0
