"""Every object is bound to its name: swapped, replayed and vanished objects are caught.

An attacker with write access to the bucket cannot substitute one backup for
another: an object copied over another's name still authenticates, but under
its own name, and every reader refuses it naming both objects.
"""

from __future__ import annotations

import io

import pytest

from scholar_ops.testbed.datagen import GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.errors import IntegrityError, MisplacedObject
from scholar_ops.vault.prune import forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream

MB = 1 << 20


@pytest.fixture
def two(repo):
    """Two snapshots of different targets, each with its own packs and index object."""
    a_data = GeneratedStream(3 * MB, seed=51).read()
    b_data = GeneratedStream(3 * MB, seed=52).read()
    a = backup_stream(repo, io.BytesIO(a_data), component="postgres", target="pg", name="db")
    b = backup_stream(repo, io.BytesIO(b_data), component="redis", target="cache", name="rdb")
    return repo, a, b, a_data


def _swap_onto(storage, source: str, victim: str) -> None:
    storage.put(victim, storage.get(source))


def _fresh(repo: Repository, master) -> Repository:
    return Repository.open(repo.storage, master)


def test_a_snapshot_copied_over_another_is_refused_naming_both(two, master):
    repo, a, b, _ = two
    a_name, b_name = f"snapshots/{a.backup_id}", f"snapshots/{b.backup_id}"
    _swap_onto(repo.storage, b_name, a_name)
    fresh = _fresh(repo, master)

    report = check(fresh)
    assert not report.ok
    (problem,) = [p for p in report.problems if p.object_name == a_name]
    assert b_name in problem.message and a.backup_id in problem.snapshot_ids

    # The listing keeps the good snapshot and does not show the Redis one twice.
    snaps, errors = fresh.scan_snapshots()
    assert [s.backup_id for s in snaps] == [b.backup_id]
    assert [e.object_name for e in errors] == [a_name]

    # Restoring the PostgreSQL snapshot refuses, naming both objects, and writes nothing.
    with pytest.raises(MisplacedObject) as exc:
        fresh.find_snapshot(a.backup_id[:12])
    assert a_name in str(exc.value) and b_name in str(exc.value)
    assert exc.value.declared_name == b_name


def test_packs_swapped_with_each_other_are_named_by_check_and_refused_by_restore(two, master):
    repo, a, b, _ = two
    pack_a, pack_b = (f"data/{p[:2]}/{p}" for p in (a.packs[0], b.packs[0]))
    original_a, original_b = repo.storage.get(pack_a), repo.storage.get(pack_b)
    repo.storage.put(pack_a, original_b)
    repo.storage.put(pack_b, original_a)
    fresh = _fresh(repo, master)

    report = check(fresh, read_data=1.0)
    by_name = {p.object_name: p.message for p in report.problems}
    assert pack_b in by_name[pack_a] and pack_a in by_name[pack_b]
    assert not any("damaged blob" in m for m in by_name.values())  # one clear finding per pack

    with pytest.raises(IntegrityError) as exc:
        restore_stream(fresh, fresh.load_snapshot(a.backup_id), io.BytesIO())
    assert pack_a in str(exc.value) and pack_b in str(exc.value)


def test_an_index_copied_over_another_is_named_by_check(two, master):
    repo, _a, _b, _ = two
    first, second = sorted(o.name for o in repo.storage.list("index/"))
    _swap_onto(repo.storage, first, second)
    report = check(_fresh(repo, master))
    (problem,) = [p for p in report.problems if p.object_name == second]
    assert first in problem.message
    # The snapshot whose index vanished is reported too: its chunks are no longer indexed.
    assert any("missing from the repository" in p.message for p in report.problems)


def test_a_key_file_under_another_key_id_is_refused(repo, master):
    (name,) = [o.name for o in repo.storage.list("keys/")]
    repo.storage.put("keys/00" + name[len("keys/") + 2 :], repo.storage.get(name))
    report = check(_fresh(repo, master))
    assert any(name in p.message for p in report.problems)


def test_a_snapshot_put_back_after_prune_is_reported_and_not_used(two, master):
    repo, a, b, a_data = two
    saved = {o.name: repo.storage.get(o.name) for o in repo.storage.list()}  # an older copy
    forget_and_prune(repo, [a.backup_id])
    # The attacker puts the forgotten snapshot (and its packs and index) back.
    for name, data in saved.items():
        if name.startswith(("snapshots/", "data/", "index/")):
            repo.storage.put(name, data)
    fresh = _fresh(repo, master)
    snaps, errors = fresh.scan_snapshots()
    assert [s.backup_id for s in snaps] == [b.backup_id]
    assert "forgotten by a prune" in str(errors[0])
    report = check(fresh)
    assert any(
        p.object_name == f"snapshots/{a.backup_id}" and "forgotten by a prune" in p.message
        for p in report.problems
    )
    with pytest.raises(IntegrityError, match="forgotten by a prune"):
        fresh.find_snapshot(a.backup_id)
    # The next prune removes the replayed snapshot; the repository is clean again.
    report_prune = forget_and_prune(fresh, [])
    assert report_prune.snapshots_forgotten == [a.backup_id]
    assert check(fresh, read_data=1.0).ok
    out = io.BytesIO()
    restore_stream(fresh, fresh.load_snapshot(b.backup_id), out)
    assert len(out.getvalue()) == 3 * MB and a_data[:10] != out.getvalue()[:10]


def test_a_rollback_of_the_whole_repository_is_reported_by_check(two, master, tmp_path):
    repo, a, _b, _ = two
    state = tmp_path / "state"
    older = {o.name: repo.storage.get(o.name) for o in repo.storage.list()}
    assert check(repo, known_state=state).ok  # remembers a and b
    newer = backup_stream(repo, io.BytesIO(b"new data" * 1000), component="redis", target="cache")
    assert check(repo, known_state=state).ok  # remembers the newer one too
    # The bucket is rolled back to the older copy: the newer snapshot vanishes quietly.
    for o in list(repo.storage.list()):
        if o.name not in older and not o.name.startswith("locks/"):
            repo.storage.delete(o.name)
    for name, data in older.items():
        repo.storage.put(name, data)
    fresh = _fresh(repo, master)
    assert check(fresh).ok  # without memory, an older complete state looks fine
    report = check(fresh, known_state=state)
    problem, trail = sorted(report.problems, key=lambda p: p.object_name, reverse=True)
    assert problem.object_name == f"snapshots/{newer.backup_id}"
    assert "rolled back" in problem.message
    # The newest audit records went back with it; check remembers the trail's tip too.
    assert trail.object_name.startswith("audit/") and "rolled back" in trail.message
    # Reported until the operator accepts it; a prune's forgetting is never reported.
    assert not check(fresh, known_state=state).ok
    assert check(fresh, known_state=state, accept_missing=True).ok
    assert check(fresh, known_state=state).ok
    forget_and_prune(fresh, [a.backup_id])
    assert check(fresh, known_state=state).ok


def test_a_stale_partial_upload_is_a_notice_and_prune_removes_only_old_ones(repo, tmp_path):
    from scholar_ops.vault.storage.base import partial_uploads

    inner = getattr(repo.storage, "inner", repo.storage)
    if not hasattr(inner, "root"):
        pytest.skip("S3 puts are atomic: nothing is left behind")
    import os
    import time

    backup_stream(repo, io.BytesIO(b"x" * 10_000), component="c", target="t")
    old = inner.root / "data" / "ab" / ".tmp-interrupted"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"half a pack")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    young = inner.root / "data" / ".tmp-in-progress"
    young.write_bytes(b"being written")
    report = check(repo)
    assert report.ok
    assert any(
        "data/ab/.tmp-interrupted" in n and "interrupted upload" in n for n in report.notices
    )
    assert forget_and_prune(repo, []).partial_uploads_removed == 1
    assert [p.name for p in partial_uploads(repo.storage)] == ["data/.tmp-in-progress"]
