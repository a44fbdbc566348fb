"""Restores without a named destination go to a new place per run; a named one is used as
is. Two runs of a restore flow with its defaults both succeed, into different places."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from pydantic import SecretStr

from blocks.base import BackupRequest
from blocks.files import FilesTarget
from blocks.redis import RedisTarget
from blocks.repository import BackupRepository
from flows.backup.destinations import (
    DEFAULT_RESTORE_ROOT,
    restore_database,
    restore_directory,
    run_label,
)
from flows.backup.restore_files import restore_files
from flows.backup.restore_redis import restore_redis
from scholar_ops.vault.errors import TargetNotEmpty

LABEL = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9_.-]+$")


# -- the defaults themselves (no Prefect API) ---------------------------------------------


def test_a_given_place_is_used_as_is():
    assert restore_directory("/srv/restore", "/anything", "files") == "/srv/restore"
    assert restore_database("aischolar_restored") == "aischolar_restored"


def test_defaults_differ_per_run_and_say_when(tmp_path):
    a = restore_directory(None, str(tmp_path), "chroma")
    b = restore_directory("", str(tmp_path), "chroma")
    assert a != b
    for d in (a, b):
        assert Path(d).parent == tmp_path / "chroma"
        assert LABEL.match(Path(d).name), d
    label = run_label(datetime(2026, 12, 4, 8, 18, 40, tzinfo=UTC))
    assert label.startswith("20261204T081840Z-")


def test_default_database_names_are_new_valid_identifiers():
    names = {restore_database(None) for _ in range(3)}
    assert len(names) == 3
    for name in names:
        assert re.fullmatch(r"restored_\d{8}t\d{6}z_[a-z0-9_]+", name), name
        assert len(name) <= 63


def test_the_flows_default_root_is_the_documented_one():
    import inspect

    from flows.backup.restore_chroma import restore_chroma

    for flow in (restore_files, restore_redis, restore_chroma):
        default = inspect.signature(flow.fn).parameters["restore_root"].default
        assert default == DEFAULT_RESTORE_ROOT == "/var/lib/scholar-ops/restore"


# -- two runs with the defaults ------------------------------------------------------------


@pytest.fixture
def repository(prefect_harness, tmp_path) -> str:
    suffix = uuid.uuid4().hex[:8]
    Secret(value=SecretStr("destinations-key-" + suffix)).save(f"key-{suffix}")
    name = f"repo-{suffix}"
    BackupRepository(local_path=str(tmp_path / "repo"), master_key_secret=f"key-{suffix}").save(
        name
    )
    return name


def test_two_files_restores_with_defaults_go_to_two_new_directories(repository, tmp_path):
    tree = tmp_path / "uploads"
    (tree / "papers").mkdir(parents=True)
    (tree / "papers" / "a.pdf").write_bytes(b"%PDF a")
    repo = BackupRepository.load_sync(repository).open(create=True)
    FilesTarget(path=str(tree), label="uploads").backup(repo, BackupRequest("full"))
    root = tmp_path / "restore"

    first = restore_files(repository=repository, source_target="uploads", restore_root=str(root))
    second = restore_files(repository=repository, source_target="uploads", restore_root=str(root))

    assert first.destination != second.destination
    for result in (first, second):
        dest = Path(result.destination)
        assert dest.parent == root / "files" and LABEL.match(dest.name)
        # the flow run's name is in the directory's name: findable from the run in the UI
        assert re.match(r"^\d{8}T\d{6}Z-[a-z]+-[a-z]+$", dest.name), dest.name
        assert (dest / "papers" / "a.pdf").read_bytes() == b"%PDF a"
    # A destination named explicitly keeps today's rule: new or empty.
    with pytest.raises(TargetNotEmpty):
        restore_files(destination=first.destination, repository=repository, source_target="uploads")


def test_two_redis_rdb_restores_with_defaults_go_to_two_new_directories(
    repository, redis_server, tmp_path
):
    client = redis_server.client()
    client.flushall()
    client.set("paper:1", "attention")
    client.close()
    repo = BackupRepository.load_sync(repository).open(create=True)
    RedisTarget(host=redis_server.host, port=redis_server.port, label="cache").backup(
        repo, BackupRequest("full")
    )
    root = tmp_path / "restore"

    first = restore_redis(repository=repository, restore_root=str(root))
    second = restore_redis(repository=repository, restore_root=str(root))

    assert first.destination != second.destination
    for result in (first, second):
        rdb = Path(result.destination)
        assert rdb.name == "dump.rdb" and rdb.parent.parent == root / "redis"
        assert rdb.stat().st_size > 0 and result.figures["keys"] == 1
