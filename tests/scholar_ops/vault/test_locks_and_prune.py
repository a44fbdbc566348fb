"""Locks in the store, retention and prune."""

from __future__ import annotations

import io
import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from scholar_ops.testbed.datagen import GeneratedStream
from scholar_ops.vault.archiver import BackupWriter, backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.errors import RepositoryLocked
from scholar_ops.vault.lock import Lock, list_locks, remove_locks
from scholar_ops.vault.prune import RetentionPolicy, apply_policy, forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.snapshot import Snapshot

MB = 1 << 20


class SlowStream:
    """Yields data only when the test lets it, so a backup can be held open mid-way."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)
        self.started = threading.Event()
        self.go = threading.Event()

    def read(self, n: int = -1, /) -> bytes:
        self.started.set()
        self.go.wait(30)
        return self.data.read(n)


def test_delete_beside_a_backup_cannot_remove_chunks_it_uses(repo, master):
    base = GeneratedStream(8 * MB, seed=31).read()
    old = backup_stream(repo, io.BytesIO(base), component="c", target="t")
    # The next backup reuses every chunk of `old`; meanwhile someone forgets `old` and prunes.
    stream = SlowStream(base + b"tail")
    result: dict[str, object] = {}

    def run_backup() -> None:
        result["snap"] = backup_stream(
            Repository.open(repo.storage, master), stream, component="c", target="t"
        )

    t = threading.Thread(target=run_backup)
    t.start()
    assert stream.started.wait(30)
    other = Repository.open(repo.storage, master)
    with pytest.raises(RepositoryLocked, match="backup c/t"):
        forget_and_prune(other, [old.backup_id])
    # A waiting prune runs only once the backup has committed.
    pruner = threading.Thread(target=lambda: forget_and_prune(other, [old.backup_id], wait=60))
    pruner.start()
    time.sleep(0.5)
    assert repo.snapshot_ids() == [old.backup_id]
    stream.go.set()
    t.join(60)
    pruner.join(60)
    snap = result["snap"]
    assert isinstance(snap, Snapshot)
    assert repo.snapshot_ids() == [snap.backup_id]
    out = io.BytesIO()
    restore_stream(repo, repo.load_snapshot(snap.backup_id), out)
    assert out.getvalue() == base + b"tail"
    assert check(repo, read_data=1.0).ok


def test_prune_removes_only_unneeded_packs(repo):
    a = backup_stream(repo, GeneratedStream(10 * MB, seed=32), component="c", target="t")
    b = backup_stream(repo, GeneratedStream(10 * MB, seed=33), component="c", target="t")
    report = forget_and_prune(repo, [a.backup_id])
    assert report.packs_deleted == len(a.packs)
    remaining = {o.name.rsplit("/", 1)[-1] for o in repo.storage.list("data/")}
    assert remaining == set(b.packs)
    assert len(list(repo.storage.list("index/"))) == 1
    assert check(repo, read_data=1.0).ok
    from scholar_ops.testbed.datagen import CompareSink

    sink = CompareSink(GeneratedStream(10 * MB, seed=33))
    restore_stream(repo, repo.load_snapshot(b.backup_id), sink)
    assert sink.identical


def test_dry_run_changes_nothing(repo):
    a = backup_stream(repo, GeneratedStream(4 * MB, seed=34), component="c", target="t")
    before = sorted(o.name for o in repo.storage.list())
    report = forget_and_prune(repo, [a.backup_id], dry_run=True)
    assert report.packs_deleted == len(a.packs)
    assert sorted(o.name for o in repo.storage.list()) == before


def test_exclusive_locks_exclude_and_stale_locks_expire(repo):
    storage = repo.storage
    with (
        Lock(storage, repo, "prune", exclusive=True),
        pytest.raises(RepositoryLocked, match=r"exclusive lock .* \(prune\)"),
    ):
        Lock(storage, repo, "backup").acquire()
    with Lock(storage, repo, "backup a"), Lock(storage, repo, "backup b"):  # shared locks coexist
        assert len(list_locks(storage, repo).locks) == 2
    assert list_locks(storage, repo).locks == []
    # A lock whose holder stopped refreshing it (on another host) stops counting once stale.
    dead = Lock(storage, repo, "backup", clock=lambda: time.time() - 3600)
    dead.info.host = "another-host"
    dead._write()
    with Lock(storage, repo, "prune", exclusive=True):
        pass
    (removed,) = remove_locks(storage, repo)
    assert (
        "another-host" in removed.description
        and "not refreshed for 60 minutes" in removed.description
    )
    assert list_locks(storage, repo).locks == []


def test_a_lock_of_a_dead_process_on_this_host_is_stale_at_once(repo):
    storage = repo.storage
    gone = Lock(storage, repo, "backup c/t")
    gone.info.pid = _unused_pid()
    gone._write()
    live = Lock(storage, repo, "backup x/y")  # this process: alive
    live._write()
    (dead,) = [lk for lk in list_locks(storage, repo).locks if lk.pid == gone.info.pid]
    assert dead.stale_reason(30 * 60) == f"pid {gone.info.pid} on {gone.info.host} is gone"
    # An exclusive lock is granted at once beside the dead one, but not beside the live one.
    with pytest.raises(RepositoryLocked, match=r"backup x/y"):
        Lock(storage, repo, "prune", exclusive=True).acquire()
    live._remove()
    with Lock(storage, repo, "prune", exclusive=True):
        pass
    # unlock removes only the stale lock; force removes a live one too.
    live._write()
    removed = remove_locks(storage, repo)
    assert [r.name for r in removed] == [gone.info.name]
    assert [r.live for r in remove_locks(storage, repo, force=True)] == [True]
    assert list_locks(storage, repo).locks == []


def test_a_pid_reused_by_another_process_does_not_keep_a_lock_alive(repo):
    lock = Lock(repo.storage, repo, "backup c/t")
    assert lock.info.process_start is not None
    lock.info.process_start -= 3600  # "our" pid, but started an hour before this process
    lock._write()
    (held,) = list_locks(repo.storage, repo).locks
    assert held.holder_gone()


def test_lock_objects_are_sealed_and_reveal_nothing(repo):
    with Lock(repo.storage, repo, "backup postgres/secret-target-name"):
        (info,) = list(repo.storage.list("locks/"))
        raw = repo.storage.get(info.name)
    for word in (b"secret-target-name", b"backup", b"postgres", str(os.getpid()).encode()):
        assert word not in raw


def test_a_waiting_lock_says_who_holds_it(repo):
    said: list[str] = []
    with Lock(repo.storage, repo, "prune", exclusive=True):
        waiter = Lock(repo.storage, repo, "backup c/t", wait=0.5, on_wait=said.append)
        with pytest.raises(RepositoryLocked, match=r"\(prune\) held by"):
            waiter.acquire()
    assert len(said) == 1
    assert said[0].startswith("waiting up to 0 s for the repository lock (backup c/t)") or (
        "for the repository lock (backup c/t): exclusive lock" in said[0]
    )


def test_lock_is_refreshed_while_held(repo):
    lock = Lock(repo.storage, repo, "backup", refresh_every=0.05)
    with lock:
        first = lock.info.refreshed
        time.sleep(0.3)
        (held,) = list_locks(repo.storage, repo).locks
        assert held.refreshed > first


def _unused_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def _snap(ts: datetime, **kw) -> Snapshot:
    return Snapshot(
        backup_id=ts.isoformat(),
        backup_type="incremental",
        timestamp=ts.isoformat(),
        size_bytes=0,
        checksum="",
        encryption_key_id="",
        storage_location="",
        retention_until=kw.get("retention_until"),
        component=kw.get("component", "pg"),
        target="db",
    )


def test_retention_policy_keeps_last_daily_and_held_snapshots():
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    snaps = [_snap(now - timedelta(hours=6 * i)) for i in range(20)]  # 5 days, 4 a day
    held = _snap(now - timedelta(days=30), retention_until=(now + timedelta(days=1)).isoformat())
    keep, forget = apply_policy([*snaps, held], RetentionPolicy(keep_last=2, keep_daily=3), now)
    kept = {s.backup_id for s in keep}
    assert {snaps[0].backup_id, snaps[1].backup_id, held.backup_id} <= kept
    days = {datetime.fromisoformat(s.timestamp).date() for s in keep if s is not held}
    assert len(days) == 3
    assert len(keep) + len(forget) == 21
    assert len(keep) == 2 + 2 + 1  # last two share day 1 with the daily pick; two more days; held


def test_writer_outside_context_manager_is_an_error(repo):
    w = BackupWriter(repo, component="c", target="t")
    with pytest.raises(Exception, match="context manager"):
        w.add_stream("x", io.BytesIO(b"x"))


def test_find_snapshot_by_id_checks_the_component(repo):
    import io

    from scholar_ops.vault.archiver import backup_stream
    from scholar_ops.vault.errors import SnapshotNotFound

    snap = backup_stream(repo, io.BytesIO(b"x" * 1000), component="redis", target="cache")
    assert repo.find_snapshot(snap.backup_id[:8], component="redis").backup_id == snap.backup_id
    with pytest.raises(SnapshotNotFound, match=r"is a redis backup .*not a chroma one"):
        repo.find_snapshot(snap.backup_id[:8], component="chroma")


def test_latest_falls_back_to_a_targets_earlier_name_until_its_first_new_snapshot(repo):
    old = backup_stream(repo, io.BytesIO(b"old naming" * 100), component="postgres", target="db")
    found = repo.find_snapshot(
        "latest", component="postgres", target="pg-block", earlier_targets=["db"]
    )
    assert found.backup_id == old.backup_id
    new = backup_stream(
        repo, io.BytesIO(b"new naming" * 100), component="postgres", target="pg-block"
    )
    again = repo.find_snapshot(
        "latest", component="postgres", target="pg-block", earlier_targets=["db"]
    )
    assert again.backup_id == new.backup_id
    from scholar_ops.vault.errors import SnapshotNotFound

    with pytest.raises(SnapshotNotFound):
        repo.find_snapshot("latest", component="postgres", target="other")
