"""Damage to every kind of stored object (fault matrix, README "Fault matrix"): a flipped
byte, a truncation to half, an emptied object, in the config, key sets, packs (data and
header), index, snapshots, tombstones, audit records and locks. ``scholar-ops check``
(the real command, in a subprocess) exits 3 naming the object (4 for a damaged lock,
which it will not guess past); restore refuses naming it; once the object is put back
check is clean. (Flipped bytes at several offsets: test_integrity.py; objects swapped or
copied over others: test_names_bound.py; WAL objects: sources/postgres/test_wal.py.)"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scholar_ops.cli.common import EXIT_DAMAGED, EXIT_LOCKED, EXIT_OK
from scholar_ops.testbed.datagen import GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import IntegrityError, RepositoryLocked
from scholar_ops.vault.prune import forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.snapshot import Snapshot
from scholar_ops.vault.storage import LocalStorage

MB = 1 << 20
ROOT = Path(__file__).resolve().parents[3]
BLOCK = "scholar-ops-repository"

DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "flip": lambda b: b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 0x01]) + b[len(b) // 2 + 1 :],
    "truncate": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
}


@pytest.fixture
def damaged_repo(tmp_path: Path, master: MasterKey) -> tuple[Repository, Snapshot]:
    repo = Repository.init(LocalStorage(tmp_path / "repo"), master, pack_size=1 * MB)
    old = backup_stream(repo, GeneratedStream(2 * MB, seed=31), component="c", target="t")
    kept = backup_stream(repo, GeneratedStream(3 * MB, seed=32), component="c", target="t")
    forget_and_prune(repo, [old.backup_id])  # leaves a tombstone (forgotten/)
    kinds = {o.name.split("/")[0] for o in repo.storage.list()}
    assert kinds >= {"config", "keys", "data", "index", "snapshots", "forgotten", "audit"}
    return repo, kept


def _cli_check(root: Path, master: MasterKey, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``scholar-ops check --read-data`` as an operator runs it (profile written by setup)."""
    config = tmp_path / "operator-config"
    profile = config / "repositories" / f"{BLOCK}.json"
    profile.parent.mkdir(parents=True, exist_ok=True)
    profile.write_text(
        json.dumps({"block": BLOCK, "local_path": str(root), "master_key_secret": "k"})
    )
    # no Prefect API, profile or other repository from the caller's environment
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "SCHOLAR_OPS_", "AWS_"))
    }
    env.update(
        SCHOLAR_OPS_REPOSITORY=BLOCK,
        SCHOLAR_OPS_CONFIG_DIR=str(config),
        SCHOLAR_OPS_STATE_DIR=str(tmp_path / "operator-state"),
        SCHOLAR_OPS_MASTER_KEY=master.secret.decode(),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        [sys.executable, "-m", "scholar_ops.cli", "check", "--read-data"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_damaged_object_is_named_by_check(
    damaged_repo: tuple[Repository, Snapshot], master: MasterKey
) -> None:
    repo, _ = damaged_repo
    storage = repo.storage
    names = sorted(o.name for o in storage.list())
    for name in names:
        original = storage.get(name)
        for how, damage in DAMAGE.items():
            storage.put(name, damage(original))
            try:
                try:
                    report = check(Repository.open(storage, master), read_data=1.0)
                except IntegrityError as e:  # config and key sets: read when opening
                    assert name.split("/")[0] in ("config", "keys"), (name, how, e)
                    assert e.object_name == name and name in str(e)
                    continue
                assert not report.ok, f"{how} of {name} went unnoticed"
                assert any(p.object_name == name for p in report.problems), (how, report)
            finally:
                storage.put(name, original)
    assert check(Repository.open(storage, master), read_data=1.0).ok


def test_a_damaged_lock_stops_check_naming_it(
    damaged_repo: tuple[Repository, Snapshot], master: MasterKey
) -> None:
    repo, _ = damaged_repo
    with repo.lock("backup"):
        (name,) = (o.name for o in repo.storage.list("locks/"))
        original = repo.storage.get(name)
        for damage in DAMAGE.values():
            repo.storage.put(name, damage(original))
            with pytest.raises(RepositoryLocked, match=f"unreadable lock object {name}"):
                check(Repository.open(repo.storage, master))
        repo.storage.put(name, original)
    assert check(repo).ok


def test_restore_refuses_damaged_objects_naming_them(
    damaged_repo: tuple[Repository, Snapshot], master: MasterKey
) -> None:
    repo, kept = damaged_repo
    storage = repo.storage
    names = [o.name for o in storage.list() if o.name.startswith(("data/", "index/", "snap"))]
    for name in names:
        original = storage.get(name)
        for how in ("truncate", "empty"):  # flips: test_integrity.py
            storage.put(name, DAMAGE[how](original))
            try:
                fresh = Repository.open(storage, master)
                with pytest.raises(IntegrityError) as exc:
                    restore_stream(fresh, fresh.find_snapshot(kept.backup_id), io.BytesIO())
                assert exc.value.object_name == name, (how, exc.value)
            finally:
                storage.put(name, original)


def test_the_check_command_exits_3_naming_each_kind_of_damaged_object(
    damaged_repo: tuple[Repository, Snapshot], master: MasterKey, tmp_path: Path
) -> None:
    repo, _ = damaged_repo
    root = Path(repo.storage.location.removeprefix("file://"))
    storage = repo.storage
    first_of_kind: dict[str, str] = {}
    for o in sorted(storage.list(), key=lambda o: o.name):
        first_of_kind.setdefault(o.name.split("/")[0], o.name)
    clean = _cli_check(root, master, tmp_path)
    assert clean.returncode == EXIT_OK, clean.stderr
    for name in first_of_kind.values():
        original = storage.get(name)
        for how in ("flip", "truncate"):
            storage.put(name, DAMAGE[how](original))
            try:
                done = _cli_check(root, master, tmp_path)
            finally:
                storage.put(name, original)
            assert done.returncode == EXIT_DAMAGED, (name, how, done.stderr)
            assert name in done.stderr, (name, how, done.stderr)
            assert "Traceback" not in done.stderr
    # a damaged lock: exit 4, naming it (`scholar-ops unlock --force` removes it)
    with repo.lock("backup"):
        (lock,) = (o.name for o in storage.list("locks/"))
        storage.put(lock, DAMAGE["flip"](storage.get(lock)))
        done = _cli_check(root, master, tmp_path)
        assert done.returncode == EXIT_LOCKED, done.stderr
        assert f"unreadable lock object {lock}" in done.stderr
        storage.delete(lock)
    assert _cli_check(root, master, tmp_path).returncode == EXIT_OK
