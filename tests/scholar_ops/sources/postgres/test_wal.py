"""The WAL archive in the store (scholar_ops.sources.postgres.wal): push, fetch, list,
continuity, prune, on fabricated 1 MB segments (walfake) in a local repository. Real
archiving by PostgreSQL through the command: tests/scholar_ops/test_walcmd.py."""

from __future__ import annotations

import pytest

from scholar_ops.sources.postgres.wal import (
    WalConflict,
    WalNameError,
    check_wal_continuity,
    fetch_wal,
    last_archived,
    list_wal,
    object_name,
    parse_lsn,
    parse_wal_name,
    prune_wal,
    push_wal,
    segment_name,
    wal_segment_size,
)
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import ConfigError, IntegrityError, MisplacedObject
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage
from tests.scholar_ops.sources.postgres.walfake import SEG, FakeCluster

SYSID = 7312345678901234567


@pytest.fixture
def repo(tmp_path):
    return Repository.init(
        LocalStorage(tmp_path / "repo"), MasterKey.from_string("wal-test-key-0123456789")
    )


@pytest.fixture
def pg(tmp_path):
    return FakeCluster(tmp_path / "data", SYSID)


def test_names_and_lsn_arithmetic_follow_the_segment_size():
    w = parse_wal_name("0000000200000001000000FE")
    assert (w.kind, w.timeline, w.log, w.seg) == ("segment", 2, 1, 0xFE)
    assert w.start_lsn(16 << 20) == parse_lsn("1/FE000000")
    # 1 GB segments: four per 4 GB "log id"
    assert parse_wal_name("000000010000000100000003").start_lsn(1 << 30) == parse_lsn("1/C0000000")
    assert segment_name(1, (5 << 32) // SEG + 7, SEG) == "0000000100000005" + "00000007"
    b = parse_wal_name("000000010000000000000002.00000028.backup")
    assert (b.kind, b.start_lsn(SEG)) == ("backup", 2 * SEG + 0x28)
    assert parse_wal_name("00000003.history").kind == "history"
    assert parse_wal_name("000000010000000000000004.partial").kind == "partial"
    for bad in (
        "RECOVERYXLOG",
        "00000001000000000000000g",
        "../../etc/passwd",
        "000000010000000000000001.tmp",
    ):
        with pytest.raises(WalNameError, match="not a WAL file name"):
            parse_wal_name(bad)


def test_push_then_fetch_gives_the_exact_bytes_encrypted_at_rest(repo, pg, tmp_path):
    path = pg.segment(1, 3, seed=b"PLAINTEXT-MARKER ")
    result = push_wal(repo, path)
    assert not result.already_archived and result.system_id == SYSID
    assert result.object_name == f"wal/{SYSID}/00000001/{path.name}"
    stored = (tmp_path / "repo" / result.object_name).read_bytes()
    assert b"PLAINTEXT-MARKER" not in stored  # compressed and encrypted
    assert len(stored) < SEG // 10  # compressed (a repetitive segment)
    assert wal_segment_size(repo) == SEG  # read from the segment's header
    dest = pg.datadir / "pg_wal" / "RECOVERYXLOG"
    assert fetch_wal(repo, path.name, dest) is True
    assert dest.read_bytes() == path.read_bytes()
    assert not list((pg.datadir / "pg_wal").glob(".*tmp*"))  # written atomically, nothing left


def test_history_and_backup_files_are_archived_too(repo, pg):
    push_wal(repo, pg.segment(1, 1))
    hist = pg.file("00000002.history", b"1\t0/1800000\tno recovery target specified\n")
    backup = pg.file("000000010000000000000001.00000028.backup", b"START WAL LOCATION: 0/1000028\n")
    assert push_wal(repo, hist).object_name == object_name(SYSID, "00000002.history")
    push_wal(repo, backup)
    dest = pg.datadir / "pg_wal" / "RECOVERYHISTORY"
    assert fetch_wal(repo, "00000002.history", dest)
    assert dest.read_bytes() == hist.read_bytes()
    kinds = {f.name: f.kind for f in list_wal(repo)}
    assert kinds == {
        "000000010000000000000001": "segment",
        "00000002.history": "history",
        "000000010000000000000001.00000028.backup": "backup",
    }


def test_same_content_again_succeeds_without_writing(repo, pg, tmp_path):
    path = pg.segment(1, 4)
    first = push_wal(repo, path)
    obj = tmp_path / "repo" / first.object_name
    before = (obj.read_bytes(), obj.stat().st_mtime_ns)
    again = push_wal(repo, path)
    assert again.already_archived and again.stored_size == 0
    assert (obj.read_bytes(), obj.stat().st_mtime_ns) == before


def test_different_content_under_an_archived_name_is_a_conflict_and_changes_nothing(
    repo, pg, tmp_path
):
    path = pg.segment(1, 4)
    original = path.read_bytes()
    obj = tmp_path / "repo" / push_wal(repo, path).object_name
    stored = obj.read_bytes()
    pg.segment(1, 4)  # same name, new random content
    with pytest.raises(WalConflict, match=f"{path.name}: a different file is already archived"):
        push_wal(repo, path)
    assert obj.read_bytes() == stored
    dest = tmp_path / "data" / "pg_wal" / "RECOVERYXLOG"
    assert fetch_wal(repo, path.name, dest) and dest.read_bytes() == original


def test_a_file_whose_header_contradicts_its_name_is_refused(repo, pg):
    path = pg.segment(1, 5)
    path.rename(path.with_name(segment_name(1, 6, SEG)))
    with pytest.raises(WalNameError, match="not the WAL segment its name says"):
        push_wal(repo, path.with_name(segment_name(1, 6, SEG)))
    short = pg.file(segment_name(1, 7, SEG), b"\0" * 20)
    with pytest.raises(WalNameError, match="too short"):
        push_wal(repo, short)
    assert list_wal(repo) == []


def test_fetch_of_a_missing_file_is_false_and_writes_nothing(repo, pg):
    dest = pg.datadir / "pg_wal" / "RECOVERYXLOG"
    assert fetch_wal(repo, segment_name(1, 9, SEG), dest) is False  # nothing archived at all
    push_wal(repo, pg.segment(1, 1))
    assert fetch_wal(repo, segment_name(1, 9, SEG), dest) is False
    assert fetch_wal(repo, "00000005.history", dest) is False
    assert not dest.exists()


def test_a_flipped_byte_is_an_integrity_error_naming_the_object(repo, pg, tmp_path):
    res = push_wal(repo, pg.segment(1, 2))
    obj = tmp_path / "repo" / res.object_name
    data = bytearray(obj.read_bytes())
    for where in (len(data) - 40, 60):  # in the data, then in the header
        damaged = bytearray(data)
        damaged[where] ^= 0x01
        obj.write_bytes(bytes(damaged))
        with pytest.raises(IntegrityError) as err:
            fetch_wal(repo, res.name, pg.datadir / "pg_wal" / "RECOVERYXLOG")
        assert err.value.object_name == res.object_name
        assert res.object_name in str(err.value)
    obj.write_bytes(bytes(data))
    assert fetch_wal(repo, res.name, pg.datadir / "pg_wal" / "RECOVERYXLOG")


def test_an_object_copied_over_another_name_is_refused(repo, pg, tmp_path):
    a = push_wal(repo, pg.segment(1, 2))
    b = push_wal(repo, pg.segment(1, 3))
    (tmp_path / "repo" / b.object_name).write_bytes(
        (tmp_path / "repo" / a.object_name).read_bytes()
    )
    with pytest.raises(MisplacedObject) as err:
        fetch_wal(repo, b.name, pg.datadir / "pg_wal" / "RECOVERYXLOG")
    assert b.object_name in str(err.value) and a.object_name in str(err.value)
    # and a push of the real file under b's name does not take the impostor for itself
    with pytest.raises(MisplacedObject):
        push_wal(repo, pg.datadir / "pg_wal" / b.name)


def test_list_and_last_archived(repo, pg):
    assert last_archived(repo) is None
    for n in (1, 2, 3):
        push_wal(repo, pg.segment(1, n))
    push_wal(repo, pg.file("00000002.history", b"1\t0/3800000\tx\n"))
    push_wal(repo, pg.segment(2, 3))
    files = list_wal(repo)
    segs = [f for f in files if f.kind == "segment"]
    assert [(f.timeline, f.start_lsn) for f in segs] == [
        (1, SEG),
        (1, 2 * SEG),
        (1, 3 * SEG),
        (2, 3 * SEG),
    ]
    assert all(f.size == SEG and f.stored_size > 0 and f.stored_time for f in segs)
    newest = last_archived(repo)
    assert newest is not None
    name, when = newest
    assert name == segment_name(2, 3, SEG)
    assert when == max(f.stored_time or 0.0 for f in segs)


def test_continuity_names_deleted_segments(repo, pg, tmp_path):
    for n in range(1, 9):
        push_wal(repo, pg.segment(1, n))
    assert check_wal_continuity(repo, 1, 2 * SEG + 40) == []
    assert check_wal_continuity(repo, 1, 2 * SEG + 40, 8 * SEG + 5) == []
    root = tmp_path / "repo"
    (root / object_name(SYSID, segment_name(1, 4, SEG))).unlink()
    for n in (6, 7):
        (root / object_name(SYSID, segment_name(1, n, SEG))).unlink()
    problems = check_wal_continuity(repo, 1, 2 * SEG + 40)
    assert len(problems) == 2
    assert f"WAL segment {segment_name(1, 4, SEG)} is missing" in problems[0]
    assert f"2 WAL segments {segment_name(1, 6, SEG)} to {segment_name(1, 7, SEG)}" in problems[1]
    # a start after the gap needs none of it; an end beyond the archive names what is missing
    assert check_wal_continuity(repo, 1, 8 * SEG) == []
    assert segment_name(1, 10, SEG) in " ".join(check_wal_continuity(repo, 1, 8 * SEG, 10 * SEG))
    # a base backup on a timeline with no WAL at all
    assert segment_name(3, 8, SEG) in check_wal_continuity(repo, 3, 8 * SEG)[0]


def test_continuity_follows_a_timeline_switch(repo, pg, tmp_path):
    """Timeline 2 branched at 0/480000 (in segment 4): recovery reads 1-3 on timeline 1 and
    4 onwards on timeline 2 (segment 4 of timeline 1 is only its .partial)."""
    for n in (1, 2, 3):
        push_wal(repo, pg.segment(1, n))
    push_wal(repo, pg.file("000000010000000000000004.partial", pg.segment(1, 4).read_bytes()))
    push_wal(repo, pg.file("00000002.history", b"1\t0/480000\tno recovery target specified\n"))
    for n in (4, 5, 6):
        push_wal(repo, pg.segment(2, n))
    assert check_wal_continuity(repo, 1, SEG + 100) == []
    # a base backup taken after the branch point on timeline 1 cannot reach timeline 2
    assert segment_name(1, 5, SEG) in " ".join(check_wal_continuity(repo, 1, 5 * SEG))
    root = tmp_path / "repo"
    (root / object_name(SYSID, segment_name(2, 5, SEG))).unlink()
    (root / object_name(SYSID, segment_name(1, 2, SEG))).unlink()
    problems = check_wal_continuity(repo, 1, SEG + 100)
    assert [segment_name(1, 2, SEG) in problems[0], segment_name(2, 5, SEG) in problems[1]] == [
        True,
        True,
    ]
    # up to an end before the switch only timeline 1 counts
    assert len(check_wal_continuity(repo, 1, SEG + 100, 3 * SEG + 1)) == 1


def test_prune_keeps_what_the_oldest_kept_start_needs(repo, pg, tmp_path):
    for n in range(1, 7):
        push_wal(repo, pg.segment(1, n))
    push_wal(repo, pg.file("000000010000000000000002.00000028.backup", b"old backup"))
    push_wal(repo, pg.file("000000010000000000000004.00000100.backup", b"kept backup"))
    push_wal(repo, pg.file("00000002.history", b"1\t0/100000\tx\n"))
    assert prune_wal(repo, []) == 0  # no kept base backup: nothing goes
    start = 4 * SEG + 0x100
    deleted = prune_wal(repo, [(1, 5 * SEG), (1, start)])
    assert deleted == 4  # segments 1-3 and the old backup history file
    names = {f.name for f in list_wal(repo)}
    assert names == {
        *(segment_name(1, n, SEG) for n in (4, 5, 6)),
        "000000010000000000000004.00000100.backup",
        "00000002.history",
    }
    assert check_wal_continuity(repo, 1, start) == []
    assert prune_wal(repo, [(1, start)]) == 0


def test_several_clusters_are_kept_apart(repo, tmp_path):
    a = FakeCluster(tmp_path / "a", 1111111111111111111)
    b = FakeCluster(tmp_path / "b", 2222222222222222222)
    pa, pb = a.segment(1, 1), b.segment(1, 1)
    assert pa.name == pb.name
    push_wal(repo, pa)
    push_wal(repo, pb)  # same name, another cluster: no conflict
    # fetch finds the cluster of the data directory it restores into
    for c, p in ((a, pa), (b, pb)):
        dest = c.datadir / "pg_wal" / "RECOVERYXLOG"
        assert fetch_wal(repo, p.name, dest) and dest.read_bytes() == p.read_bytes()
    with pytest.raises(ConfigError, match="holds the WAL of 2 clusters"):
        prune_wal(repo, [(1, 2 * SEG)])
    assert "holds the WAL of 2 clusters" in check_wal_continuity(repo, 1, SEG)[0]
    assert check_wal_continuity(repo, 1, SEG, system_id=b.system_id) == []
    assert len(list_wal(repo)) == 2
    assert len(list_wal(repo, system_id=a.system_id)) == 1
