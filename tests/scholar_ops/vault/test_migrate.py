"""A format-1 repository (written by an earlier release) is upgraded in place, losing nothing."""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
from pathlib import Path

import pytest

from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import FormatTooOld
from scholar_ops.vault.migrate import migrate
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer, restore_stream
from scholar_ops.vault.storage import LocalStorage

FIXTURE = Path(__file__).with_name("data") / "format1-repository"
MASTER = MasterKey.from_string("format-1-fixture-master-key-0123456789")
SNAPSHOTS = {
    "c66712efd7c89eef52c69b2f4580db22751fd32a4e1ae7bafac33d616f93118f": (
        "3ba3301ad7d5a00023d4d6ec9a2f7d39613506d8922804d2cae937d988f9a83c"
    ),
    "803ed02bfc6e115b06b4f3c98d265c73f7521018c3fce590b2f31780b63a1efc": (
        "40e29833768782533bbbb76934db867bde6eedd0e949a63ec263088aa06abeb7"
    ),
}
FILES_SNAPSHOT = "3f2afad7241c2cab392ae45b8c83539cc64edf9297ce535d5f653ebcb1cf53de"


@pytest.fixture
def old_repo(tmp_path) -> LocalStorage:
    shutil.copytree(FIXTURE, tmp_path / "repo")
    return LocalStorage(tmp_path / "repo")


def _assert_everything_restores(storage: LocalStorage) -> None:
    repo = Repository.open(storage, MASTER)
    assert check(repo, read_data=1.0).ok
    for backup_id, sha in SNAPSHOTS.items():
        out = io.BytesIO()
        restore_stream(repo, repo.load_snapshot(backup_id), out)
        assert hashlib.sha256(out.getvalue()).hexdigest() == sha
    files = repo.load_snapshot(FILES_SNAPSHOT)
    entry = next(e for e in files.entries if e.name == "dir/a.txt")
    assert b"".join(Restorer(repo).iter_entry(files, entry)) == b"hello format 1\n" * 100


def test_a_format_1_repository_is_refused_with_the_command_that_upgrades_it(old_repo):
    with pytest.raises(FormatTooOld, match="scholar-ops migrate"):
        Repository.open(old_repo, MASTER)


def _blobs(pack: bytes) -> bytes:
    """A pack without its sealed header: magic, key id and the blobs."""
    (hlen,) = struct.unpack(">I", pack[-4:])
    return pack[: len(pack) - 4 - hlen]


def test_migrate_upgrades_in_place_and_every_snapshot_restores(old_repo):
    blobs_before = {o.name: _blobs(old_repo.get(o.name)) for o in old_repo.list("data/")}
    report = migrate(old_repo, MASTER)
    assert (report.from_version, report.to_version) == (1, 2)
    assert report.snapshots == 3 and report.index_objects == 3 and report.packs == 3
    # The packs keep their blobs byte for byte (only their headers are re-sealed).
    assert {n: _blobs(old_repo.get(n)) for n in blobs_before} == blobs_before
    _assert_everything_restores(old_repo)
    assert not migrate(old_repo, MASTER).changed  # a second run does nothing
    assert not list(old_repo.list("locks/"))


def test_an_interrupted_migration_finishes_when_run_again(old_repo, monkeypatch):
    real_put = old_repo.put
    puts = {"n": 0}

    def failing_put(name: str, data: bytes) -> None:
        if not name.startswith("locks/"):
            puts["n"] += 1
            if puts["n"] == 5:  # after the packs and one index object
                raise OSError("disk went away")
        real_put(name, data)

    monkeypatch.setattr(old_repo, "put", failing_put)
    with pytest.raises(OSError):
        migrate(old_repo, MASTER)
    monkeypatch.setattr(old_repo, "put", real_put)
    with pytest.raises(FormatTooOld):
        Repository.open(old_repo, MASTER)  # still format 1 until the config is rewritten
    for o in list(old_repo.list("locks/")):  # the interrupted run's lock (this process is alive)
        old_repo.delete(o.name)
    report = migrate(old_repo, MASTER)
    assert report.changed
    _assert_everything_restores(old_repo)
