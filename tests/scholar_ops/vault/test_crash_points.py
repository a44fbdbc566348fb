"""kill -9 of a backup or a prune at each point of its writes (fault matrix, README "Fault
matrix"): after the packs, mid-way through writing the index, after the index, mid-way
through writing the snapshot; a prune after its tombstone, after its consolidated index,
after its first pack delete. (Mid-way through the packs: test_crash.py.)

Each case is a real child process (crash_at.py) killed with SIGKILL at that point. Then:
the earlier snapshots restore identically, check is clean, no half snapshot is visible,
the dead process's lock holds nothing, and the next run succeeds (a backup reuses the
packs the killed one uploaded; a prune finishes the job)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scholar_ops.testbed.datagen import CompareSink, GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import IntegrityError
from scholar_ops.vault.prune import forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.storage import LocalStorage

MB = 1 << 20
ROOT = Path(__file__).resolve().parents[3]
SIZES = {1: 4 * MB, 2: 3 * MB, 3: 6 * MB}  # seed -> size of the generated stream


def _run_child(root: Path, master: MasterKey, **spec: object) -> subprocess.CompletedProcess[str]:
    arg = {"root": str(root), "master": master.secret.decode(), "forget": [], **spec}
    return subprocess.run(
        [sys.executable, str(Path(__file__).with_name("crash_at.py")), json.dumps(arg)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _identical(repo: Repository, backup_id: str, seed: int) -> bool:
    sink = CompareSink(GeneratedStream(SIZES[seed], seed=seed))
    restore_stream(repo, repo.find_snapshot(backup_id), sink)
    return sink.identical


@pytest.fixture
def two(tmp_path: Path, master: MasterKey) -> tuple[Repository, str, str]:
    repo = Repository.init(LocalStorage(tmp_path / "repo"), master, pack_size=1 * MB)
    a = backup_stream(repo, GeneratedStream(SIZES[1], seed=1), component="c", target="t")
    b = backup_stream(repo, GeneratedStream(SIZES[2], seed=2), component="c", target="t")
    return repo, a.backup_id, b.backup_id


def _killed(result: subprocess.CompletedProcess[str]) -> None:
    # What the operator sees: the process died of SIGKILL (a shell shows 137; a Prefect
    # flow run ends Crashed, which the failure automation alerts on), after "started".
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr)
    assert result.stdout.splitlines() == ["started"], result.stdout


@pytest.mark.parametrize(
    ("prefix", "when"),
    [
        ("index/", "rename"),  # packs uploaded, the index half-written (a .tmp-* file)
        ("index/", "after"),  # packs and index written, no snapshot
        ("snapshots/", "rename"),  # the snapshot half-written: the commit point not reached
    ],
    ids=["mid-index", "after-index", "mid-snapshot"],
)
def test_kill_9_of_a_backup_leaves_no_half_snapshot_and_the_next_run_reuses_its_packs(
    two: tuple[Repository, str, str], master: MasterKey, prefix: str, when: str
) -> None:
    repo, a, b = two
    root = Path(repo.storage.location.removeprefix("file://"))
    packs_before = {o.name for o in repo.storage.list("data/")}
    _killed(_run_child(root, master, op="backup", size=SIZES[3], seed=3, prefix=prefix, when=when))

    repo = Repository.open(LocalStorage(root), master)
    assert repo.snapshot_ids() == sorted([a, b]), "no half snapshot"
    uploaded = {o.name for o in repo.storage.list("data/")} - packs_before
    assert uploaded, "the killed backup had uploaded its packs"
    report = check(repo, read_data=1.0)
    assert report.ok, report.problems
    assert _identical(repo, a, 1) and _identical(repo, b, 2)
    (dead,) = repo.locks().locks
    assert dead.holder_gone()

    packs_now = {o.name for o in repo.storage.list("data/")}
    snap = backup_stream(repo, GeneratedStream(SIZES[3], seed=3), component="c", target="t")
    # nothing uploaded again: the packs are adopted (no index named them) or indexed
    assert snap.stats["packs_written"] == 0
    assert {o.name for o in repo.storage.list("data/")} == packs_now
    if prefix == "index/" and when == "rename":
        assert snap.stats["packs_reused"] >= len(uploaded)
    assert _identical(repo, snap.backup_id, 3)
    assert check(repo, read_data=1.0).ok
    # the leftovers (a .tmp-* file, an index of adopted packs) are garbage prune may clear
    forget_and_prune(repo)
    assert check(repo, read_data=1.0).ok
    assert all(_identical(repo, i, s) for i, s in ((a, 1), (b, 2), (snap.backup_id, 3)))


@pytest.mark.parametrize(
    ("prefix", "when"),
    [
        ("forgotten/", "after"),  # tombstone written, the snapshot not yet deleted
        ("index/", "after"),  # consolidated index written, old ones not yet deleted
        ("data/", "deleted"),  # the first unneeded pack deleted, the others not
    ],
    ids=["after-tombstone", "after-new-index", "after-first-pack-delete"],
)
def test_kill_9_of_a_prune_damages_no_kept_snapshot_and_the_next_prune_finishes(
    two: tuple[Repository, str, str], master: MasterKey, prefix: str, when: str
) -> None:
    repo, a, b = two
    root = Path(repo.storage.location.removeprefix("file://"))
    _killed(_run_child(root, master, op="prune", forget=[a], prefix=prefix, when=when))

    repo = Repository.open(LocalStorage(root), master)
    assert b in repo.snapshot_ids()
    assert _identical(repo, b, 2)
    report = check(repo, read_data=1.0)
    # check names the dead prune's lock (a notice: stale, `scholar-ops unlock` removes it)
    assert any("stale exclusive lock" in n and "(prune)" in n for n in report.notices)
    if prefix == "forgotten/":
        # The forgotten snapshot is still there: check reports it (exit 3 on the command
        # line), it is never used, and the next prune removes it.
        assert [p.object_name for p in report.problems] == [f"snapshots/{a}"]
        assert "did not finish" in report.problems[0].message
        assert a in repo.forgotten()
        snaps, errors = repo.scan_snapshots()  # what `scholar-ops snapshots` lists
        assert [s.backup_id for s in snaps] == [b]
        assert [e.object_name for e in errors] == [f"snapshots/{a}"]
        with pytest.raises(IntegrityError, match="forgotten by a prune"):
            repo.load_snapshot(a)
    else:
        assert report.ok, report.problems

    forget_and_prune(repo)
    assert repo.snapshot_ids() == [b]
    assert not list(repo.storage.list(f"snapshots/{a}"))
    assert check(repo, read_data=1.0).ok
    assert _identical(repo, b, 2)
    snap = backup_stream(repo, GeneratedStream(SIZES[1], seed=1), component="c", target="t")
    assert _identical(repo, snap.backup_id, 1)
    assert check(repo).ok
