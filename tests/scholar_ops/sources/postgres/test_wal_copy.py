"""Copying the WAL archive with the base backups to a second repository (fabricated 1 MB
segments, walfake), re-sealed for the destination's keys."""

from __future__ import annotations

import io

import pytest

from scholar_ops.sources.postgres.basebackup import COMPONENT, FORMAT
from scholar_ops.sources.postgres.wal import (
    check_wal_continuity,
    fetch_wal,
    format_lsn,
    list_wal,
    object_name,
    push_wal,
    segment_name,
)
from scholar_ops.sources.postgres.wal.copy import copy_wal
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.copy import copy_snapshots
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import IntegrityError
from scholar_ops.vault.prune import forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage
from tests.scholar_ops.sources.postgres.walfake import SEG, FakeCluster

SYSID = 7312345678901234568


@pytest.fixture
def repos(tmp_path):
    return (
        Repository.init(
            LocalStorage(tmp_path / "src"), MasterKey.from_string("wal-copy-src-0123456")
        ),
        Repository.init(
            LocalStorage(tmp_path / "dst"), MasterKey.from_string("wal-copy-dst-0123456")
        ),
    )


def _base(repo: Repository, segno: int):
    return backup_stream(
        repo,
        io.BytesIO(b"base backup tar" * 100),
        component=COMPONENT,
        target="cluster",
        details={
            "format": FORMAT,
            "system_identifier": SYSID,
            "timeline": 1,
            "start_lsn": format_lsn(segno * SEG + 0x28),
        },
    )


def test_wal_needed_by_the_destinations_bases_is_copied_and_fetches_identical(repos, tmp_path):
    source, dest = repos
    pg = FakeCluster(tmp_path / "data", SYSID)
    for segno in range(1, 7):
        push_wal(source, pg.segment(1, segno))
    _base(source, 1)
    second = _base(source, 3)

    # Without a base backup in the destination its WAL would be of no use: left out.
    assert copy_wal(source, dest).skipped_clusters == [SYSID]
    assert list_wal(dest) == []

    copy_snapshots(source, dest, ids=[second.backup_id])
    dry = copy_wal(source, dest, dry_run=True)
    assert dry.copied == 4 and list_wal(dest) == []
    report = copy_wal(source, dest)
    assert (report.copied, report.present) == (4, 0) and report.bytes_transferred > 4 * SEG // 2
    assert [w.name for w in list_wal(dest)] == [segment_name(1, n, SEG) for n in range(3, 7)]
    for n in range(3, 7):
        name = segment_name(1, n, SEG)
        out = tmp_path / "fetched" / name
        out.parent.mkdir(exist_ok=True)
        assert fetch_wal(dest, name, out, system_id=SYSID)
        assert out.read_bytes() == (pg.datadir / "pg_wal" / name).read_bytes()
    assert check_wal_continuity(dest, 1, 3 * SEG, system_id=SYSID) == []

    # Incremental: the next run copies only the new segment.
    push_wal(source, pg.segment(1, 7))
    again = copy_wal(source, dest)
    assert (again.copied, again.present) == (1, 4)
    # Re-sealed: the source's object does not open in the destination.
    obj = object_name(SYSID, segment_name(1, 3, SEG))
    assert dest.storage.get(obj) != source.storage.get(obj)


def test_destination_retention_is_not_undone_and_damage_is_named(repos, tmp_path):
    source, dest = repos
    pg = FakeCluster(tmp_path / "data", SYSID)
    for segno in range(1, 5):
        push_wal(source, pg.segment(1, segno))
    first, second = _base(source, 1), _base(source, 3)
    copy_snapshots(source, dest)
    assert copy_wal(source, dest).copied == 4
    # The destination's retention forgets the first base and drops the WAL only it needed.
    from scholar_ops.sources.postgres.archive import prune_wal_archives

    copied_first = next(
        s for s in dest.snapshots() if s.details["copied_from"]["backup_id"] == first.backup_id
    )
    forget_and_prune(dest, [copied_first.backup_id])
    assert prune_wal_archives(dest) == 2
    assert copy_wal(source, dest).copied == 0  # not put back
    assert second.backup_id  # still copied

    push_wal(source, pg.segment(1, 5))
    obj = object_name(SYSID, segment_name(1, 5, SEG))
    data = bytearray(source.storage.get(obj))
    data[-100] ^= 1
    source.storage.put(obj, bytes(data))
    with pytest.raises(IntegrityError) as exc:
        copy_wal(source, dest)
    assert exc.value.object_name == obj
