"""Physical base backups: streamed into the store, details recorded, deduplicated."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import psycopg
import pytest

from scholar_ops.sources.postgres.basebackup import (
    BASE_ENTRY,
    COMPONENT,
    TarSniffer,
    backup_base,
    parse_backup_label,
    parse_lsn,
    parse_manifest_wal_ranges,
    segment_name,
)
from scholar_ops.sources.postgres.cluster import server_os_user
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.vault.errors import ConfigError
from scholar_ops.vault.restorer import Restorer, pick_entry
from tests.scholar_ops.sources.postgres.archiving import archiving_cluster

LABEL = (
    b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
    b"CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n"
    b"START TIME: 2026-12-04 05:23:44 UTC\nLABEL: x\nSTART TIMELINE: 1\n"
)


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_tar_reader_keeps_the_label_and_the_manifest_end_whatever_the_read_sizes():
    manifest = json.dumps(
        {
            "PostgreSQL-Backup-Manifest-Version": 1,
            "Files": [{"Path": f"base/1/{i}", "Size": 8192} for i in range(5000)],
            "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}],
            "Manifest-Checksum": "ab",
        }
    ).encode()
    data = _tar(
        [("backup_label", LABEL), ("base/1/1259", os.urandom(20000)), ("backup_manifest", manifest)]
    )
    for step in (1, 511, 513, 4096, 1 << 20):

        class Raw:
            def __init__(self, step: int) -> None:
                self.pos = 0
                self.step = step

            def readinto(self, b: memoryview) -> int:
                n = min(self.step, len(b), len(data) - self.pos)
                b[:n] = data[self.pos : self.pos + n]
                self.pos += n
                return n

        sniffer = TarSniffer(Raw(step))
        out = bytearray(1 << 16)
        while n := sniffer.readinto(memoryview(out)):
            pass
        assert sniffer.bytes == len(data)
        assert sniffer.members == 3
        assert sniffer.label == LABEL
        assert len(sniffer.manifest_tail) <= 64 << 10
        ranges = parse_manifest_wal_ranges(sniffer.manifest_tail)
        assert ranges == [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}]
        del n
    label = parse_backup_label(LABEL)
    assert label["start_lsn"] == "0/2000028" and label["timeline"] == 1
    assert label["start_wal"] == "000000010000000000000002"


def test_lsn_and_segment_arithmetic():
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert segment_name(1, parse_lsn("0/2000100"), 16 << 20) == "000000010000000000000002"
    assert segment_name(3, parse_lsn("1/FF000000"), 16 << 20) == "0000000300000001000000FF"
    with pytest.raises(ConfigError, match="not a PostgreSQL LSN"):
        parse_lsn("yesterday")


@pytest.mark.services
def test_base_backup_records_the_server_and_dedups_the_next_one(tmp_path):
    with archiving_cluster(tmp_path) as env:
        with env.connect() as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, pad text)")
            conn.execute(
                "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g"
            )
            facts = conn.execute(
                "SELECT system_identifier::text, current_setting('server_version_num')::int "
                "FROM pg_control_system()"
            ).fetchone()
        first = backup_base(env.repo, env.conninfo, target="main", backup_type="full")
        d = first.details
        assert first.component == COMPONENT and first.target == "main"
        assert [e.name for e in first.entries] == [BASE_ENTRY]
        assert facts == (d["system_identifier"], d["server_version_num"])
        assert d["timeline"] == 1 and d["wal_segment_size"] == 16 << 20
        assert parse_lsn(d["start_lsn"]) <= parse_lsn(d["stop_lsn"])
        assert d["start_time"] < d["stop_time"]
        assert d["start_wal"] == segment_name(1, parse_lsn(d["start_lsn"]), 16 << 20)
        assert d["superuser"] == "postgres"
        # A full backup stores every chunk itself.
        assert first.stats["chunks_new"] == len(first.chunk_ids())

        # The stored tar is the data directory: it lists the table's file and the label.
        restorer = Restorer(env.repo)
        stream = b"".join(restorer.iter_entry(first, pick_entry(first, BASE_ENTRY)))
        with tarfile.open(fileobj=io.BytesIO(stream), mode="r") as tf:
            names = tf.getnames()
        assert "backup_label" in names and "global/pg_control" in names
        assert len(stream) == d["tar_bytes"] == first.size_bytes

        # A few rows changed: the second backup stores a small fraction of what it reads.
        with env.connect() as conn:
            conn.execute("UPDATE t SET pad = 'changed' WHERE id <= 50")
        second = backup_base(env.repo, env.conninfo, target="main")
        assert second.backup_type == "incremental"
        ratio = second.stats["bytes_new"] / second.size_bytes
        print(
            f"base backup: {second.size_bytes} bytes read, {second.stats['bytes_new']} new "
            f"({ratio:.1%}), {second.stats['bytes_stored']} stored"
        )
        assert ratio < 0.25, second.stats
        assert second.stats["bytes_stored"] < 0.25 * first.stats["bytes_stored"]
        assert parse_lsn(second.details["start_lsn"]) > parse_lsn(d["stop_lsn"])


@pytest.mark.services
def test_a_cluster_without_archiving_or_with_tablespaces_is_refused_in_one_line(pg_server):
    conninfo = PgConnInfo(host=pg_server.host, port=pg_server.port, user=pg_server.user)
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import LocalStorage

    with tempfile.TemporaryDirectory() as tmp:
        repo = Repository.init(LocalStorage(Path(tmp) / "r"), MasterKey.from_string("k" * 32))
        with pytest.raises(ConfigError, match="archive_mode off") as err:
            backup_base(repo, conninfo)
        assert "\n" not in str(err.value) and "scholar-ops-wal push" in str(err.value)
        assert repo.snapshot_ids() == []

        _, uid, gid = server_os_user()
        space = Path(tempfile.mkdtemp(prefix="scholar-ops-tblspc-"))
        os.chmod(space, 0o700)
        if uid is not None and gid is not None:
            os.chown(space, uid, gid)
        try:
            with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
                conn.execute(f"CREATE TABLESPACE extra LOCATION '{space}'")
            with pytest.raises(ConfigError, match=r"tablespaces .*extra") as err:
                backup_base(repo, conninfo)
            assert "\n" not in str(err.value)
        finally:
            with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
                conn.execute("DROP TABLESPACE IF EXISTS extra")
            shutil.rmtree(space, ignore_errors=True)


@pytest.mark.services
def test_a_failing_archive_command_stops_the_backup_with_one_line(tmp_path):
    from scholar_ops.sources.postgres.basebackup import BaseBackupOptions
    from scholar_ops.sources.postgres.cluster import throwaway_cluster
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.errors import SourceError
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import LocalStorage

    settings = {"wal_level": "replica", "archive_mode": "on", "archive_command": "false"}
    repo = Repository.init(LocalStorage(tmp_path / "r"), MasterKey.from_string("k" * 32))
    with throwaway_cluster(settings=settings) as server:
        conninfo = PgConnInfo(host=server.host, port=server.port, user=server.user)
        opts = BaseBackupOptions(archive_fail_s=2.0, poll_s=0.5)
        with pytest.raises(SourceError, match="archive_command has been failing") as err:
            backup_base(repo, conninfo, options=opts)
    assert "\n" not in str(err.value)
    assert repo.snapshot_ids() == []
