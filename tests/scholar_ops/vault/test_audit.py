"""The audit trail (scholar_ops.vault.audit) on both storage backends: what is recorded,
that tampering is found naming the record, concurrent appenders, and no secrets."""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import threading
import time

import pytest

from scholar_ops.vault import audit
from scholar_ops.vault.archiver import BackupWriter, backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto import aead
from scholar_ops.vault.crypto.keys import KeySet, MasterKey
from scholar_ops.vault.errors import StorageError
from scholar_ops.vault.lock import Lock, remove_locks
from scholar_ops.vault.prune import forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream

PASSWORD = "hunter2-very-secret"


def _records(repo: Repository) -> list[audit.Record]:
    records, problems = audit.read_all(repo)
    assert not problems
    return records


def _names(repo: Repository) -> list[str]:
    return sorted(o.name for o in repo.storage.list(audit.AUDIT_PREFIX))


def test_operations_are_recorded_with_outcome_and_snapshots(repo, master, monkeypatch):
    monkeypatch.setenv(audit.FLOW_RUN_ENV, "run-from-env")
    (init,) = _records(repo)
    assert (init.operation, init.outcome, init.seq, init.prev) == ("init", "ok", 1, [])
    assert init.user and init.host and init.pid == os.getpid()

    a = backup_stream(repo, io.BytesIO(os.urandom(50_000)), component="files", target="docs")
    b = backup_stream(repo, io.BytesIO(os.urandom(50_000)), component="redis", target="cache")
    out = io.BytesIO()
    restore_stream(repo, a, out)
    assert check(repo).ok
    forget_and_prune(repo, [b.backup_id])
    stale = Lock(repo.storage, repo, "backup files/gone")
    stale.info.refreshed = time.time() - 3600
    stale._write()
    assert [r.name for r in remove_locks(repo.storage, repo)] == [stale.info.name]
    repo.rotate_master_key(MasterKey.from_string("a-new-master-key-0123456789abcdef"))

    records = _records(repo)
    got = [(r.operation, r.outcome, r.snapshots) for r in records[1:]]
    assert got == [
        ("backup", "ok", [a.backup_id]),
        ("backup", "ok", [b.backup_id]),
        ("restore", "ok", [a.backup_id]),
        ("check", "ok", []),
        ("prune", "ok", [b.backup_id]),
        ("unlock", "ok", []),
        ("key-rotate", "ok", []),
    ]
    assert [r.seq for r in records] == list(range(1, 9))
    assert records[1].details == {
        "component": "files",
        "target": "docs",
        "backup_type": "incremental",
    }
    assert records[6].details["removed"] == 1
    assert all(r.flow_run_id == "run-from-env" for r in records[1:])
    # A straight chain: each record names the one before it, by the hash of its bytes.
    for before, after in itertools.pairwise(records):
        assert after.prev == [{"name": before.name, "sha256": before.sha256}]
    report = audit.verify(repo)
    assert report.ok and report.tips == [records[-1].name]
    assert audit.tip(repo) == (8, records[-1].sha256)


def test_failures_are_recorded_with_one_line(repo):
    class Broken(io.RawIOBase):
        def readinto(self, b):
            raise OSError("pg_dump exited 1:\n  connection refused")

    with pytest.raises(OSError):
        backup_stream(repo, Broken(), component="postgres", target="aischolar")
    snap = backup_stream(repo, io.BytesIO(b"x" * 1000), component="files", target="t")
    repo.storage.delete(next(iter(repo.storage.list("data/"))).name)
    with pytest.raises(Exception):  # noqa: B017 (the missing pack: whatever names it)
        restore_stream(repo, snap, io.BytesIO())
    report = check(repo)
    assert not report.ok
    failed = [r for r in _records(repo) if r.outcome == "failed"]
    assert [(r.operation, r.snapshots) for r in failed] == [
        ("backup", []),
        ("restore", [snap.backup_id]),
        ("check", [snap.backup_id]),
    ]
    assert failed[0].error == "pg_dump exited 1: connection refused"
    assert "\n" not in (failed[1].error or "") and "data/" in (failed[1].error or "")
    assert (failed[2].error or "").startswith("1 problem(s), first: data/")


def test_prune_never_deletes_audit_records(repo):
    snaps = [
        backup_stream(repo, io.BytesIO(os.urandom(20_000)), component="files", target="t")
        for _ in range(3)
    ]
    before = set(_names(repo))
    report = forget_and_prune(repo, [s.backup_id for s in snaps])
    assert report.packs_deleted >= 1
    after = set(_names(repo))
    assert before < after and len(after - before) == 1
    assert audit.verify(repo).ok


def test_an_audit_failure_does_not_fail_a_committed_backup(repo, caplog):
    storage = repo.storage
    real_put = storage.put

    def put(name: str, data: bytes) -> None:
        if name.startswith(audit.AUDIT_PREFIX):
            raise StorageError("audit prefix is read-only here")
        real_put(name, data)

    storage.put = put
    try:
        with (
            caplog.at_level(logging.WARNING, "scholar_ops.vault.audit"),
            BackupWriter(repo, component="files", target="t") as w,
        ):
            w.add_stream("s", io.BytesIO(b"data" * 1000))
            snap = w.commit()
    finally:
        storage.put = real_put
    assert repo.load_snapshot(snap.backup_id) == snap
    assert isinstance(w.audit_error, StorageError)
    assert "could not record backup (ok)" in caplog.text
    assert [r.operation for r in _records(repo)] == ["init"]


def _three(repo: Repository) -> list[audit.Record]:
    for i in range(3):
        audit.append(repo, "check", details={"i": i})
    return _records(repo)


def test_a_deleted_middle_record_is_named(repo):
    records = _three(repo)
    repo.storage.delete(records[2].name)
    report = audit.verify(repo)
    assert not report.ok
    assert report.problems[0].object_name == records[2].name
    assert f"record {records[3].name} names it" in report.problems[0].message
    # check reports it too
    assert any(p.object_name == records[2].name for p in check(repo).problems)


def test_an_edited_record_is_named(repo, master):
    records = _three(repo)
    target = records[1]
    payload = json.loads(repo.get_sealed(target.name))
    payload["operation"] = "restore"
    # Re-sealed with a key set the repository does not have (an attacker's).
    other = KeySet.generate()
    repo.storage.put(
        target.name,
        aead.seal(other.enc_key, other.key_id, target.name, json.dumps(payload).encode()),
    )
    problems = audit.verify(repo).problems
    assert problems[0].object_name == target.name and "unknown key" in problems[0].message
    # Bytes flipped in another record.
    data = bytearray(repo.storage.get(records[3].name))
    data[-3] ^= 0x01
    repo.storage.put(records[3].name, bytes(data))
    problems = audit.verify(repo).problems
    assert [p.object_name for p in problems] == [target.name, records[3].name]


def test_swapped_records_are_named(repo):
    records = _three(repo)
    x, y = records[1], records[2]
    dx, dy = repo.storage.get(x.name), repo.storage.get(y.name)
    repo.storage.put(x.name, dy)
    repo.storage.put(y.name, dx)
    problems = audit.verify(repo).problems
    assert [p.object_name for p in problems[:2]] == [x.name, y.name]
    assert f"written as {y.name}" in problems[0].message


def test_a_record_replaced_by_a_genuine_other_one_breaks_the_link(repo):
    """An older authentic record put back under a newer name is caught by its hash link
    (and the name binding); a later record taking an earlier one's place too."""
    records = _three(repo)
    sealed = repo.seal(records[2].name, repo.get_sealed(records[1].name))
    repo.storage.put(records[2].name, sealed)
    problems = audit.verify(repo).problems
    assert problems and problems[0].object_name == records[2].name


def test_concurrent_appenders_fork_and_merge_and_verify_clean(repo):
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(n: int) -> None:
        other = Repository.open(repo.storage, repo.master)
        try:
            barrier.wait()
            for i in range(6):
                audit.append(other, "backup", snapshots=[f"{n}-{i}"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    audit.append(repo, "check")  # merges whatever forks are left
    report = audit.verify(repo)
    assert report.ok, report.problems
    assert len(report.records) == 14
    assert report.tips == [report.records[-1].name]


def test_secrets_never_appear_in_records(tmp_path, storage):
    key_text = "the-master-key-text-0123456789abcdef"
    repo = Repository.init(storage, MasterKey.from_string(key_text))
    url = f"postgresql://backup:{PASSWORD}@db.internal:5432/aischolar"

    class Failing(io.RawIOBase):
        def readinto(self, b):
            raise OSError(
                f"cannot connect to {url} (password={PASSWORD}, PGPASSWORD='{PASSWORD}', "
                f"SCHOLAR_OPS_MASTER_KEY={PASSWORD}x) with key {key_text}"
            )

    with pytest.raises(OSError):
        backup_stream(repo, Failing(), component="postgres", target="aischolar")
    audit.append(repo, "restore", details={"to": url, "note": f"token: {PASSWORD}"})
    plain = b"".join(repo.get_sealed(n) for n in _names(repo))
    assert PASSWORD.encode() not in plain and key_text.encode() not in plain
    failed = _records(repo)[1]
    assert failed.error is not None and "db.internal:5432/aischolar" in failed.error
    assert "<secret>" in failed.error


def test_flow_run_id_from_the_repository_wins_over_the_environment(repo, monkeypatch):
    monkeypatch.setenv(audit.FLOW_RUN_ENV, "from-env")
    repo.flow_run_id = "from-the-tasks-layer"
    assert audit.append(repo, "check").flow_run_id == "from-the-tasks-layer"
    assert audit.append(repo, "check", flow_run_id="explicit").flow_run_id == "explicit"
    monkeypatch.delenv(audit.FLOW_RUN_ENV)
    repo.flow_run_id = None
    assert audit.append(repo, "check").flow_run_id is None


def test_a_component_backup_and_restore_are_recorded(repo, tmp_path):
    """The components' restores go through audit.restoring (files here; PostgreSQL, Redis
    and Chroma take the same path)."""
    from scholar_ops.sources.files.backup import backup_files
    from scholar_ops.sources.files.restore import restore_files

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    snap = backup_files(repo, str(src), target="uploads")
    restore_files(repo, snap, str(tmp_path / "dst"))
    with pytest.raises(Exception):  # noqa: B017 (not empty: refused before reading)
        restore_files(repo, snap, str(tmp_path / "dst"))
    got = [(r.operation, r.outcome, r.snapshots, r.details.get("target")) for r in _records(repo)]
    assert got[1:] == [
        ("backup", "ok", [snap.backup_id], "uploads"),
        ("restore", "ok", [snap.backup_id], "uploads"),
    ]


def test_check_remembers_the_tip_and_reports_a_rollback(repo, tmp_path):
    state = tmp_path / "state"
    backup_stream(repo, io.BytesIO(b"y" * 1000), component="files", target="t")
    assert check(repo, known_state=state).ok  # remembers record 2 (the check is record 3)
    newest = audit.append(repo, "check")
    assert check(repo, known_state=state).ok  # remembers record 4
    # The newest records deleted: the chain left behind verifies, but this host saw more.
    for name in _names(repo)[3:]:
        repo.storage.delete(name)
    assert newest.name not in _names(repo) and audit.verify(repo).ok
    problems = check(repo, known_state=state).problems
    assert [p.object_name for p in problems] == [newest.name]
    assert "newest audit record (number 4); it is gone, the newest now is number 3" in (
        problems[0].message
    )
    # Still reported by the next check (its own record does not hide it) until accepted.
    assert not check(repo, known_state=state).ok
    assert check(repo, known_state=state, accept_missing=True).ok
    assert check(repo, known_state=state).ok
