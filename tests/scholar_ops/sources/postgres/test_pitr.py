"""Restore to a point in time: base backup + archived WAL into a new data directory, started.

One archiving cluster for the module: a base backup, then rows committed in three
steps with a noted time and a noted LSN between them, each step's WAL archived.
Every restore goes into a new data directory and is started and queried.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from scholar_ops.sources.postgres.basebackup import backup_base, format_lsn, parse_lsn
from scholar_ops.sources.postgres.pitr import (
    LOG_NAME,
    RecoveryTarget,
    RecoveryTargetError,
    WalMissing,
    choose_base,
    restore_pitr,
)
from scholar_ops.vault.errors import TargetNotEmpty
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage
from tests.scholar_ops.sources.postgres.archiving import MASTER, archiving_cluster

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    """(env, base snapshot, noted time, noted LSN): rows 1-3 before the time, 4-6 after it
    and before the LSN, 7-9 after the LSN."""
    with archiving_cluster(tmp_path_factory.mktemp("pitr")) as env:
        with env.connect() as conn:
            conn.execute("CREATE TABLE events (id int PRIMARY KEY, note text)")
        env.switch_and_wait()
        base = backup_base(env.repo, env.conninfo, target="pitr-test")
        with env.connect() as conn:
            conn.execute("INSERT INTO events SELECT g, 'before' FROM generate_series(1, 3) g")
            time.sleep(0.05)
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            noted_time = row[0]
            assert isinstance(noted_time, datetime)
            time.sleep(0.05)
            conn.execute("INSERT INTO events SELECT g, 'middle' FROM generate_series(4, 6) g")
            row = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
            assert row is not None
            noted_lsn = str(row[0])
            conn.execute("INSERT INTO events SELECT g, 'after' FROM generate_series(7, 9) g")
        env.switch_and_wait()
        with env.connect() as conn:  # one more segment: a gap test can delete the one before
            conn.execute("CREATE TABLE later (id int)")
        env.switch_and_wait()
        yield env, base, noted_time, noted_lsn


def _rows(result, dbname: str = "postgres") -> list[int]:
    with psycopg.connect(result.dsn(dbname), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        return [r[0] for r in conn.execute("SELECT id FROM events ORDER BY id").fetchall()]


def _stop(result) -> None:
    from scholar_ops.sources.postgres.cluster import find_pg_bin_dir, server_os_user
    from scholar_ops.sources.postgres.pitr import _stop as stop_server

    stop_server(server_os_user()[0], find_pg_bin_dir(), Path(result.datadir))


def test_restore_to_a_time_brings_back_exactly_the_rows_committed_before_it(history):
    env, base, noted_time, _ = history
    target = RecoveryTarget.at_time(noted_time)
    assert choose_base(env.repo, target).backup_id == base.backup_id
    result = restore_pitr(
        env.repo,
        base,
        env.fresh_dir("at-time"),
        target=target,
        restore_command=env.restore_command(),
        keep_running=True,
    )
    try:
        assert result.running and result.port
        assert _rows(result) == [1, 2, 3]
        assert result.timeline == 2  # promoted onto a new timeline
        assert result.end_time is not None
        assert datetime.fromisoformat(result.end_time) <= noted_time
        assert result.stopped_at and "recovery stopping before commit" in result.stopped_at
        assert parse_lsn(result.end_lsn) >= parse_lsn(base.details["stop_lsn"])
        assert "running on 127.0.0.1" in result.line()
    finally:
        _stop(result)


def test_restore_to_an_lsn_stops_there(history):
    env, base, _, noted_lsn = history
    result = restore_pitr(
        env.repo,
        base,
        env.fresh_dir("at-lsn"),
        target=RecoveryTarget.at_lsn(noted_lsn),
        restore_command=env.restore_command(),
        keep_running=True,
    )
    try:
        assert _rows(result) == [1, 2, 3, 4, 5, 6]
        assert parse_lsn(result.end_lsn) >= parse_lsn(noted_lsn)
    finally:
        _stop(result)


def test_restore_to_latest_replays_the_whole_archive_and_stops_the_server(history):
    env, base, _, noted_lsn = history
    datadir = env.fresh_dir("latest")
    result = restore_pitr(
        env.repo,
        base,
        datadir,
        target=RecoveryTarget(),
        restore_command=env.restore_command(),
    )
    assert not result.running and result.port is None
    assert not (datadir / "postmaster.pid").exists()
    assert (datadir / LOG_NAME).exists()
    # Everything archived was replayed: past the last rows' LSN, into the newest segment.
    assert parse_lsn(result.end_lsn) > parse_lsn(noted_lsn)
    assert result.end_time is not None and result.stopped_at is None


def test_targets_outside_the_archive_are_refused_before_anything_is_written(history):
    env, base, _, _ = history
    too_early = datetime.fromisoformat(base.details["stop_time"]) - timedelta(seconds=1)
    too_late = datetime.now(UTC) + timedelta(hours=1)
    for target, words in (
        (RecoveryTarget.at_time(too_early), "before the end of base backup"),
        (RecoveryTarget.at_time(too_late), "after the end of the WAL archive"),
        (RecoveryTarget.at_lsn(format_lsn(parse_lsn(base.details["start_lsn"]))), "before the end"),
        (RecoveryTarget.at_lsn("FF/0"), "after the end of the WAL archive"),
    ):
        datadir = env.fresh_dir("refused")
        with pytest.raises(RecoveryTargetError, match=words) as err:
            restore_pitr(
                env.repo, base, datadir, target=target, restore_command=env.restore_command()
            )
        assert "\n" not in str(err.value)
        assert not datadir.exists()
    with pytest.raises(RecoveryTargetError, match="no base backup ends before"):
        choose_base(env.repo, RecoveryTarget.at_time(too_early))


def test_a_non_empty_data_directory_is_refused(history):
    env, base, _, _ = history
    datadir = env.fresh_dir("occupied")
    datadir.mkdir()
    (datadir / "something").write_text("x")
    with pytest.raises(TargetNotEmpty, match="not empty"):
        restore_pitr(
            env.repo, base, datadir, target=RecoveryTarget(), restore_command=env.restore_command()
        )
    assert [p.name for p in datadir.iterdir()] == ["something"]


def test_a_missing_wal_segment_is_named_before_the_server_starts(history):
    env, base, _, _ = history
    # A copy of the repository, with one segment after the base backup deleted.
    copy_dir = env.root / "repo-gap"
    shutil.copytree(env.repo_dir, copy_dir)
    from scholar_ops.vault.crypto.keys import MasterKey

    repo = Repository.open(LocalStorage(copy_dir), MasterKey.from_string(MASTER))
    from scholar_ops.sources.postgres import wal

    segments = sorted(
        (w for w in wal.list_wal(repo) if w.kind == "segment"),
        key=lambda w: (w.timeline, w.start_lsn or 0),
    )
    after_base = [w for w in segments if (w.start_lsn or 0) > parse_lsn(base.details["stop_lsn"])]
    victim = after_base[0]
    gone = [o.name for o in repo.storage.list("wal/") if o.name.endswith("/" + victim.name)]
    assert gone, f"no stored object for {victim.name}"
    for name in gone:
        repo.storage.delete(name)
    datadir = env.fresh_dir("gap")
    with pytest.raises(WalMissing, match=victim.name) as err:
        restore_pitr(
            repo,
            base,
            datadir,
            target=RecoveryTarget(),
            restore_command=env.restore_command(copy_dir),
        )
    assert victim.name in err.value.object_name
    assert not datadir.exists()
