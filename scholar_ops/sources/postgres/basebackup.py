"""Physical base backups of a PostgreSQL cluster, streamed into the store (PITR, part 2).

``pg_basebackup -D - -Ft -X none --checkpoint=fast`` writes the whole data
directory as one tar to its stdout; that stream goes through the store's
BackupWriter (content-defined chunks, deduplicated against earlier base backups,
compressed, encrypted) and is never held whole in memory or on disk. The WAL the
backup needs is not in the tar (``-X none``): it is in the WAL archive
(``scholar-ops-wal push``, sources/postgres/wal.py), and pg_basebackup returns
only once the server has archived the backup's last segment.

While the tar flows through, a small tar reader picks out two members: the
``backup_label`` (start LSN, timeline, start time) and the end of the
``backup_manifest`` (its WAL-Ranges give the stop LSN). With the server's
version, WAL segment size and system identifier they go into the snapshot's
details (docs/formats.md, "PostgreSQL base backups"): restore to a point in time
(sources/postgres/pitr.py) checks a target against them before starting anything.

One snapshot per cluster, component ``postgres-base``. The cluster must archive
WAL (``archive_mode`` on), and hold no tablespace but the default ones: a backup
to stdout is one tar, and a tablespace would need one tar of its own.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.postgres.tools import find_tool, run_tool
from scholar_ops.vault.archiver import BackupWriter, Progress
from scholar_ops.vault.chunker import ChunkerParams
from scholar_ops.vault.errors import ConfigError, SourceError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import BackupType, Snapshot

log = logging.getLogger("scholar_ops.sources.postgres.basebackup")

COMPONENT = "postgres-base"
BASE_ENTRY = "base.tar"
FORMAT = "scholar-ops-pg-base/1"
#: Relation files change page by page (8 KiB): small chunks keep a day's changes small.
BASE_CHUNKER = ChunkerParams(avg_size=128 << 10, min_size=32 << 10, max_size=512 << 10)
#: The end of backup_manifest kept while it streams past (WAL-Ranges sit at its end).
_MANIFEST_TAIL = 64 << 10
_LABEL_MAX = 64 << 10


# -- LSNs ------------------------------------------------------------------------------


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` -> int; a ConfigError naming the text when it is not an LSN."""
    m = re.fullmatch(r"\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*", text)
    if m is None:
        raise ConfigError(f"{text!r} is not a PostgreSQL LSN (like 0/3000148 or 16/B374D848)")
    return (int(m.group(1), 16) << 32) | int(m.group(2), 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segment_name(timeline: int, lsn: int, segment_size: int) -> str:
    """The 24-hex-digit name of the WAL segment holding ``lsn``."""
    per_id = 0x100000000 // segment_size
    seg = lsn // segment_size
    return f"{timeline:08X}{seg // per_id:08X}{seg % per_id:08X}"


# -- reading backup_label and backup_manifest as the tar flows past ------------------------


class TarSniffer:
    """Passes a tar stream through (``readinto``), keeping ``backup_label`` and the tail of
    ``backup_manifest``. Memory: one header and those two bounded buffers."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.bytes = 0
        self.members = 0
        self.label = b""
        self.manifest_tail = b""
        self._header = bytearray()
        self._remaining = 0  # data bytes of the current member still to come
        self._padding = 0
        self._capture: str | None = None
        self._buf = bytearray()
        self._ended = False

    def readinto(self, b: memoryview) -> int:
        n: int = self.raw.readinto(b)
        if n:
            self._feed(memoryview(b)[:n])
            self.bytes += n
        return n

    def _feed(self, data: memoryview) -> None:
        pos = 0
        while pos < len(data) and not self._ended:
            if self._remaining:
                take = min(self._remaining, len(data) - pos)
                if self._capture is not None:
                    self._buf += data[pos : pos + take]
                    if self._capture == "backup_manifest" and len(self._buf) > 2 * _MANIFEST_TAIL:
                        del self._buf[:-_MANIFEST_TAIL]
                    elif self._capture == "backup_label" and len(self._buf) > _LABEL_MAX:
                        del self._buf[_LABEL_MAX:]
                self._remaining -= take
                pos += take
                if not self._remaining:
                    self._end_member()
                continue
            if self._padding:
                take = min(self._padding, len(data) - pos)
                self._padding -= take
                pos += take
                continue
            take = min(512 - len(self._header), len(data) - pos)
            self._header += data[pos : pos + take]
            pos += take
            if len(self._header) == 512:
                self._start_member(bytes(self._header))
                self._header.clear()

    def _start_member(self, header: bytes) -> None:
        if header == b"\0" * 512:
            return  # end-of-archive blocks
        name = header[:100].split(b"\0", 1)[0].decode(errors="replace")
        prefix = header[345:500].split(b"\0", 1)[0].decode(errors="replace")
        if prefix and header[257:262] == b"ustar":
            name = f"{prefix}/{name}"
        size = _tar_number(header[124:136])
        self.members += 1
        name = name.removeprefix("./")
        self._capture = name if name in ("backup_label", "backup_manifest") else None
        self._buf.clear()
        self._remaining = size
        self._padding = (-size) % 512
        if not size:
            self._end_member()

    def _end_member(self) -> None:
        if self._capture == "backup_label":
            self.label = bytes(self._buf)
        elif self._capture == "backup_manifest":
            self.manifest_tail = bytes(self._buf[-_MANIFEST_TAIL:])
        self._capture = None
        self._buf.clear()


def _tar_number(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256 (GNU, and PostgreSQL for files over 8 GiB)
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def parse_backup_label(label: bytes) -> dict[str, Any]:
    """START WAL LOCATION, START TIMELINE, START TIME, LABEL of a backup_label file."""
    text = label.decode(errors="replace")
    out: dict[str, Any] = {}
    m = re.search(r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)", text, re.M)
    if m:
        out["start_lsn"] = m.group(1)
        out["start_wal"] = m.group(2)
    if m := re.search(r"^CHECKPOINT LOCATION: ([0-9A-F]+/[0-9A-F]+)", text, re.M):
        out["checkpoint_lsn"] = m.group(1)
    if m := re.search(r"^START TIMELINE: (\d+)", text, re.M):
        out["timeline"] = int(m.group(1))
    if m := re.search(r"^START TIME: (.+)$", text, re.M):
        out["start_time_label"] = m.group(1).strip()
    return out


def parse_manifest_wal_ranges(tail: bytes) -> list[dict[str, Any]]:
    """The ``WAL-Ranges`` of a backup_manifest, from its last bytes."""
    text = tail.decode(errors="replace")
    i = text.rfind('"WAL-Ranges"')
    if i < 0:
        return []
    j = text.find("]", i)
    if j < 0:
        return []
    try:
        ranges = json.loads("{" + text[i : j + 1] + "}")["WAL-Ranges"]
    except (ValueError, KeyError):
        return []
    return [r for r in ranges if isinstance(r, dict)]


# -- the backup ----------------------------------------------------------------------------


@dataclass
class BaseBackupOptions:
    pg_bin_dir: str | Path | None = None
    timeout_s: float = 12 * 3600
    #: ``--max-rate`` of pg_basebackup (e.g. "100M"): spare the server's disks.
    max_rate: str | None = None
    #: pg_basebackup -X none waits until the server has archived the backup's last WAL
    #: segment, for ever if archive_command keeps failing: give up after the archiver has
    #: failed without a success for this long.
    archive_fail_s: float = 300.0
    poll_s: float = 2.0


class _ArchiverWatch:
    """Stops pg_basebackup when the server's archiver keeps failing (pg_stat_archiver)."""

    def __init__(self, conninfo: PgConnInfo, proc: Any, opts: BaseBackupOptions) -> None:
        self.conninfo = conninfo
        self.proc = proc
        self.opts = opts
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archiver-watch", daemon=True)

    def __enter__(self) -> _ArchiverWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        failing_since: float | None = None
        try:
            conn = psycopg.connect(**self.conninfo.connect_kwargs(), autocommit=True)
        except psycopg.Error:
            return
        with conn:
            while not self._stop.wait(self.opts.poll_s):
                try:
                    row = conn.execute(
                        "SELECT last_failed_wal, last_failed_time > coalesce(last_archived_time, "
                        "'-infinity') FROM pg_stat_archiver"
                    ).fetchone()
                except psycopg.Error:
                    return
                if row is None or not row[1]:
                    failing_since = None
                    continue
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since >= self.opts.archive_fail_s:
                    self.reason = (
                        f"the server's archive_command has been failing for "
                        f"{self.opts.archive_fail_s:.0f} s (last failed: {row[0]}), and "
                        "pg_basebackup waits until the backup's WAL is archived: fix "
                        "archive_command (see the server's log and pg_stat_archiver)"
                    )
                    self.proc.kill()
                    return


def _server_facts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    def one(query: str) -> Any:
        row = conn.execute(query).fetchone()
        assert row is not None
        return row[0]

    facts: dict[str, Any] = {
        "server_version": str(one("SHOW server_version")).split()[0],
        "server_version_num": int(one("SHOW server_version_num")),
        "wal_segment_size": int(
            one("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
        ),
        "system_identifier": str(one("SELECT system_identifier FROM pg_control_system()")),
        "superuser": str(one("SELECT rolname FROM pg_roles WHERE oid = 10")),
        "archive_mode": str(one("SHOW archive_mode")),
        "wal_level": str(one("SHOW wal_level")),
    }
    rows = conn.execute(
        "SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace "
        "WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY spcname"
    ).fetchall()
    facts["tablespaces"] = [f"{r[0]} ({r[1]})" for r in rows]
    return facts


def check_cluster(facts: dict[str, Any], where: str) -> None:
    """One clear error for a cluster a base backup of which could not be restored."""
    if facts["tablespaces"]:
        raise ConfigError(
            f"{where} has tablespaces besides pg_default and pg_global "
            f"({', '.join(facts['tablespaces'])}): physical base backups support only the "
            "default tablespaces; back its databases up logically (component postgres)"
        )
    if facts["archive_mode"] == "off":
        raise ConfigError(
            f"{where} has archive_mode off: a base backup is restorable only with the WAL "
            "written during and after it; set archive_mode = on and archive_command = "
            "'scholar-ops-wal push %p' (README, point-in-time recovery), restart, then back up"
        )
    if facts["wal_level"] == "minimal":
        raise ConfigError(f"{where} has wal_level minimal: set wal_level = replica and restart")


def backup_base(
    repo: Repository,
    conninfo: PgConnInfo,
    *,
    target: str | None = None,
    backup_type: BackupType = "incremental",
    options: BaseBackupOptions | None = None,
    retention_days: float | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> Snapshot:
    """One physical base backup of the cluster ``conninfo`` reaches, as one snapshot.

    The role needs the REPLICATION attribute (or superuser) and a ``replication``
    line in pg_hba.conf. ``target`` defaults to ``host:port``.
    """
    opts = options or BaseBackupOptions()
    where = f"{conninfo.user}@{conninfo.host}:{conninfo.port}"
    pg_basebackup = find_tool("pg_basebackup", opts.pg_bin_dir)
    try:
        conn = psycopg.connect(**conninfo.connect_kwargs(), autocommit=True)
    except psycopg.OperationalError as e:
        raise SourceError(
            f"cannot connect to {conninfo.describe()}: {str(e).strip()}", transient=True
        ) from e
    with conn:
        facts = _server_facts(conn)
        check_cluster(facts, where)
        start = datetime.now(UTC)
        started = time.monotonic()
        argv = [
            pg_basebackup,
            "--pgdata=-",
            "--format=tar",
            "--wal-method=none",
            "--checkpoint=fast",
            "--no-password",
            f"--label=scholar-ops {start.isoformat(timespec='seconds')}",
        ]
        if opts.max_rate:
            argv.append(f"--max-rate={opts.max_rate}")
        with BackupWriter(
            repo,
            component=COMPONENT,
            target=target or f"{conninfo.host}:{conninfo.port}",
            backup_type=backup_type,
            chunker=BASE_CHUNKER,
            progress=progress,
        ) as writer:
            with (
                run_tool(
                    argv,
                    env=conninfo.env(),
                    what=f"pg_basebackup of {where}",
                    timeout=opts.timeout_s,
                ) as proc,
                _ArchiverWatch(conninfo, proc.proc, opts) as watch,
            ):
                sniffer = TarSniffer(proc.stdout)
                try:
                    writer.add_stream(BASE_ENTRY, sniffer, kind="stream")
                    proc.finish(timeout=max(60.0, opts.timeout_s - (time.monotonic() - started)))
                except SourceError as e:
                    if watch.reason is not None:
                        raise SourceError(
                            f"pg_basebackup of {where} stopped: {watch.reason}"
                        ) from e
                    raise
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            stop_time: datetime = row[0]
            details = _details(facts, sniffer, where)
            details.update(
                source=where,
                start_time=start.isoformat(),
                stop_time=stop_time.astimezone(UTC).isoformat(),
                tar_bytes=sniffer.bytes,
                files=sniffer.members,
            )
            snap = writer.commit(
                retention_days=retention_days, group=group, tags=tags or [], details=details
            )
    log.info(
        "base backup %s of %s: timeline %s, %s .. %s",
        snap.short_id,
        where,
        details["timeline"],
        details["start_lsn"],
        details["stop_lsn"],
    )
    return snap


def _details(facts: dict[str, Any], sniffer: TarSniffer, where: str) -> dict[str, Any]:
    label = parse_backup_label(sniffer.label)
    if "start_lsn" not in label or "timeline" not in label:
        raise SourceError(
            f"pg_basebackup of {where}: no readable backup_label in its output; is the "
            "server PostgreSQL 13 or later?"
        )
    ranges = parse_manifest_wal_ranges(sniffer.manifest_tail)
    if not ranges or "End-LSN" not in ranges[-1]:
        raise SourceError(
            f"pg_basebackup of {where}: its backup_manifest has no WAL range (the stop LSN); "
            "do not pass --no-manifest"
        )
    stop_lsn = str(ranges[-1]["End-LSN"])
    seg = int(facts["wal_segment_size"])
    stop_wal = segment_name(
        int(ranges[-1].get("Timeline", label["timeline"])), parse_lsn(stop_lsn), seg
    )
    return {
        "format": FORMAT,
        "timeline": label["timeline"],
        "start_lsn": label["start_lsn"],
        "start_wal": label["start_wal"],
        "checkpoint_lsn": label.get("checkpoint_lsn"),
        "stop_lsn": stop_lsn,
        "stop_wal": stop_wal,
        "start_time_label": label.get("start_time_label"),
        "server_version": facts["server_version"],
        "server_version_num": facts["server_version_num"],
        "wal_segment_size": seg,
        "system_identifier": facts["system_identifier"],
        "superuser": facts["superuser"],
    }


def is_base_snapshot(snap: Snapshot) -> bool:
    return snap.component == COMPONENT and snap.details.get("format") == FORMAT


def base_start(snap: Snapshot) -> tuple[int, int]:
    """(timeline, start LSN) of a base snapshot: where the WAL it needs begins."""
    return int(snap.details["timeline"]), parse_lsn(str(snap.details["start_lsn"]))
