"""The repository's size limit (scholar_ops/vault/space.py): the estimate, retention to make
room (never a target's newest snapshot), the clear refusal, and the check during a backup."""

from __future__ import annotations

import pytest

from scholar_ops.cli.errors import exit_code
from scholar_ops.monitoring.backup_status import REASONS, failure_reason
from scholar_ops.testbed.datagen import CompareSink, GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.errors import ConfigError, RepositoryFull
from scholar_ops.vault.prune import RetentionPolicy
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.space import (
    ensure_space,
    expected_bytes,
    make_room,
    parse_size,
    repository_size,
)

MB = 1 << 20


@pytest.fixture
def repo(local_storage, master) -> Repository:
    return Repository.init(local_storage, master, pack_size=4 << 20, compression="none")


def _back_up(repo: Repository, seed: int, size: int = 6 * MB, **kw):
    return backup_stream(
        repo, GeneratedStream(size, seed=seed), component="files", target="t", **kw
    )


def test_parse_size():
    assert parse_size("500 GB") == 500 * 10**9
    assert parse_size("500GB") == parse_size("500 gb") == parse_size(" 500  G ")
    assert parse_size("1.5 TiB") == int(1.5 * 2**40)
    assert parse_size("64 MiB") == 64 << 20
    assert parse_size("1024") == parse_size(1024) == 1024
    for bad in ("", "GB", "500 GiG", "-1 GB", "0", "1,5 GB", "five GB"):
        with pytest.raises(ConfigError):
            parse_size(bad)


def test_no_limit_checks_nothing(repo):
    assert repo.size_limit is None
    assert ensure_space(repo, component="files", target="t", backup_type="full") is None


def test_the_estimate_is_the_previous_snapshot_else_the_source_size(repo):
    assert expected_bytes([], "files", "t", "full", source_bytes=123) == (
        123,
        "the source's size, an upper bound: no earlier snapshot",
    )
    assert expected_bytes([], "files", "t", "full")[0] == 0
    snap = _back_up(repo, 1, backup_type="full")
    n, basis = expected_bytes(repo.snapshots(), "files", "t", "full", source_bytes=1)
    assert n == max(snap.stats["bytes_new"], snap.stats["bytes_stored"]) >= 6 * MB
    assert snap.backup_id[:8] in basis
    # another target, another type: not this one's history
    assert expected_bytes(repo.snapshots(), "files", "other", "full", 5)[0] == 5
    assert expected_bytes(repo.snapshots(), "files", "t", "incremental", 5)[0] == 5


def test_a_backup_that_does_not_fit_fails_before_writing_with_one_clear_error(repo):
    _back_up(repo, 1, backup_type="full")
    size = repository_size(repo.storage)
    before = sorted((o.name, o.size) for o in repo.storage.list())
    repo.size_limit = size + MB  # the next 6 MB full backup does not fit
    with pytest.raises(RepositoryFull) as err:
        ensure_space(repo, component="files", target="t", backup_type="full")
    message = str(err.value)
    assert repo.location in message
    assert "size limit" in message and "size_limit" in message
    assert "Nothing of this backup was committed" in message
    assert err.value.size == size and err.value.limit == size + MB
    assert sorted((o.name, o.size) for o in repo.storage.list()) == before
    # the command line's exit code and the metric's reason
    assert exit_code(err.value) == 1
    assert failure_reason(err.value) == "repository_full" and "repository_full" in REASONS


def test_retention_runs_first_and_makes_room(repo):
    for seed in (1, 2, 3):
        _back_up(repo, seed, backup_type="full")
    three = repository_size(repo.storage)
    repo.size_limit = three + 2 * MB  # the next full backup (~6 MB) fits only without two
    calls = []

    def room():
        calls.append(1)
        return make_room(repo, RetentionPolicy(keep_last=1))

    est = ensure_space(repo, component="files", target="t", backup_type="full", room=room)
    assert calls == [1]
    assert est is not None and est.fits
    assert len(repo.snapshots()) == 1
    assert repository_size(repo.storage) < three / 2
    _back_up(repo, 4, backup_type="full")
    assert check(repo).ok


def test_the_newest_snapshot_of_every_target_is_never_deleted_to_make_room(repo):
    # retention_until in the past and an empty policy: apply_policy alone forgets them all
    a_old = _back_up(repo, 1, retention_days=-1)
    a_new = _back_up(repo, 2, retention_days=-1)
    b_only = backup_stream(
        repo, GeneratedStream(2 * MB, seed=3), component="redis", target="r", retention_days=-1
    )
    report = make_room(repo, RetentionPolicy())
    assert report.snapshots_forgotten == [a_old.backup_id]
    assert {s.backup_id for s in repo.snapshots()} == {a_new.backup_id, b_only.backup_id}
    # still too full: the refusal, and the last good snapshots still restore
    repo.size_limit = repository_size(repo.storage) + MB
    with pytest.raises(RepositoryFull, match="retention ran first and forgot 0 snapshot"):
        ensure_space(
            repo,
            component="files",
            target="t",
            backup_type="incremental",
            source_bytes=10 * MB,
            room=lambda: make_room(repo, RetentionPolicy()),
        )
    sink = CompareSink(GeneratedStream(6 * MB, seed=2))
    restore_stream(repo, repo.load_snapshot(a_new.backup_id), sink)
    assert sink.identical
    assert check(repo, read_data=1.0).ok


def test_crossing_the_limit_during_a_backup_stops_it_without_a_snapshot(repo):
    _back_up(repo, 1, backup_type="full")
    snapshots = repo.snapshot_ids()
    # room for about two 4 MiB packs of a 20 MB backup
    repo.size_limit = repository_size(repo.storage) + 9 * MB
    with pytest.raises(RepositoryFull, match="stopped during the backup") as err:
        _back_up(repo, 2, size=20 * MB, backup_type="full")
    assert exit_code(err.value) == 1
    assert repo.snapshot_ids() == snapshots  # no half snapshot
    assert repository_size(repo.storage) <= repo.size_limit
    assert check(repo).ok
    # with room again, the re-run adopts the packs already uploaded
    repo.size_limit = None
    snap = _back_up(repo, 2, size=20 * MB, backup_type="full")
    assert snap.stats["packs_reused"] >= 1
    sink = CompareSink(GeneratedStream(20 * MB, seed=2))
    restore_stream(repo, repo.load_snapshot(snap.backup_id), sink)
    assert sink.identical


def test_the_check_during_a_backup_measures_again_before_refusing(repo):
    _back_up(repo, 1, backup_type="full")
    repo.size_limit = repository_size(repo.storage) + 9 * MB
    # Space freed by someone else while the backup runs counts: a prune of the first
    # snapshot between the writer's start and its packs lets the whole backup through.
    from scholar_ops.vault.archiver import BackupWriter
    from scholar_ops.vault.prune import forget_and_prune

    first = repo.snapshot_ids()
    with BackupWriter(repo, component="files", target="t", backup_type="full", lock=False) as w:
        forget_and_prune(repo, first)
        w.add_stream("stream", GeneratedStream(12 * MB, seed=5))
        snap = w.commit()
    assert repo.snapshot_ids() == [snap.backup_id]
