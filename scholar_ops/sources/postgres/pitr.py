"""Restore to a point in time: a base backup plus the archived WAL, into a new data directory.

``restore_pitr`` checks everything it can before it writes anything: the target
(a time, an LSN, or the latest point) lies after the base backup's end and
within the WAL archive; the WAL from the base backup's start on is continuous
(every segment present, sources/postgres/wal.py); the server binaries match the
backup's major version; the data directory is new or empty. Then it streams the
base backup's tar out of the store into the directory, writes ``recovery.signal``
and the recovery settings (``restore_command`` fetching from the archive,
``recovery_target_*``, ``recovery_target_action = 'promote'``) into
``postgresql.auto.conf``, starts the server on a free loopback port, waits for
recovery to end, and verifies: out of recovery, the target reached (replayed up to
the LSN; the last replayed commit not after the time; the archive's last segment
replayed for "latest"). It reports the recovery's end (LSN, last commit time, new
timeline), then stops the server or leaves it running.

While it runs the server listens on 127.0.0.1 and on a socket in a private
directory (mode 0700, the server's OS user only), where a ``local all all trust``
line put before the cluster's own pg_hba.conf rules lets the restore connect
as the cluster's bootstrap superuser; the cluster's own files are not changed
for that (``hba_file`` is a start option), so a restart uses its own rules.
WAL archiving is off for that run unless ``archive=True``: a restore made to look
at the past must not push a new timeline into the production archive.

As root, the server runs as the ``postgres`` OS user (cluster.py), and so does
its ``restore_command``: that user must be able to run the Python interpreter,
read the repository and the key file (README, "Point-in-time recovery").
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import psycopg

from scholar_ops.sources.postgres import wal
from scholar_ops.sources.postgres.basebackup import (
    BASE_ENTRY,
    COMPONENT,
    format_lsn,
    is_base_snapshot,
    parse_lsn,
)
from scholar_ops.sources.postgres.cluster import check_reachable, find_pg_bin_dir, server_os_user
from scholar_ops.sources.process import free_port, log_tail
from scholar_ops.vault import audit
from scholar_ops.vault.errors import (
    ConfigError,
    IntegrityError,
    SnapshotNotFound,
    TargetNotEmpty,
    VaultError,
)
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer, pick_entry
from scholar_ops.vault.snapshot import Snapshot

log = logging.getLogger("scholar_ops.sources.postgres.pitr")

LOG_NAME = "scholar-ops-restore.log"  # the server's log during the restore, in the data dir
_TIMEOUT = 120.0  # seconds, for each pg_ctl call


class RecoveryTargetError(ConfigError):
    """The target cannot be reached from this base backup with this archive."""


class WalMissing(IntegrityError):
    """The WAL archive has a gap between the base backup and the target."""


class RecoveryFailed(VaultError):
    """The server did not finish recovery, or finished it somewhere else than asked."""


@dataclass(frozen=True)
class RecoveryTarget:
    """Where recovery stops: ``latest`` (the end of the archive), a time or an LSN."""

    kind: Literal["latest", "time", "lsn"] = "latest"
    time: datetime | None = None
    lsn: int | None = None

    @classmethod
    def at_time(cls, when: datetime) -> RecoveryTarget:
        if when.tzinfo is None:
            when = when.astimezone()  # local time, as the command line reads it
        return cls("time", time=when.astimezone(UTC))

    @classmethod
    def at_lsn(cls, lsn: int | str) -> RecoveryTarget:
        return cls("lsn", lsn=parse_lsn(lsn) if isinstance(lsn, str) else lsn)

    def describe(self) -> str:
        if self.kind == "time" and self.time is not None:
            return f"time {self.time.isoformat()}"
        if self.kind == "lsn" and self.lsn is not None:
            return f"LSN {format_lsn(self.lsn)}"
        return "the latest point in the archive"

    def settings(self) -> dict[str, str]:
        if self.kind == "time" and self.time is not None:
            return {"recovery_target_time": self.time.strftime("%Y-%m-%d %H:%M:%S.%f+00")}
        if self.kind == "lsn" and self.lsn is not None:
            return {"recovery_target_lsn": format_lsn(self.lsn)}
        return {}


@dataclass
class PitrResult:
    snapshot_id: str
    datadir: str
    target: str
    end_lsn: str  # the last WAL record replayed
    end_time: str | None  # the last transaction replayed (its commit time), if any
    timeline: int  # the new timeline after promotion
    stopped_at: str | None  # PostgreSQL's own "recovery stopping ..." line, if it logged one
    segments_checked: int
    duration_s: float
    running: bool
    port: int | None = None
    socket_dir: str | None = None
    superuser: str = "postgres"
    warnings: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.snapshot_id[:8]

    def dsn(self, dbname: str = "postgres") -> str:
        """Over the private socket (trust): for the process that ran the restore."""
        return f"host={self.socket_dir} port={self.port} user={self.superuser} dbname={dbname}"

    def line(self) -> str:
        end = f"recovery ended at {self.end_lsn}"
        if self.end_time:
            end += f" (last commit {self.end_time})"
        where = (
            f"; running on 127.0.0.1:{self.port} (stop it with: pg_ctl stop -D {self.datadir})"
            if self.running
            else "; server stopped"
        )
        return (
            f"restored base backup {self.short_id} into {self.datadir} to {self.target}: "
            f"{end}, timeline {self.timeline}, in {self.duration_s} s{where}"
        )


# -- choosing and checking ----------------------------------------------------------------


def _stop_time(snap: Snapshot) -> datetime:
    return datetime.fromisoformat(str(snap.details["stop_time"]))


def choose_base(
    repo: Repository, target: RecoveryTarget, source_target: str | None = None
) -> Snapshot:
    """The newest base backup (of ``source_target``) that ends before ``target``."""
    bases = [
        s
        for s in repo.snapshots()
        if is_base_snapshot(s) and (source_target is None or s.target == source_target)
    ]
    if not bases:
        what = f" of {source_target}" if source_target else ""
        raise SnapshotNotFound(
            f"no {COMPONENT} snapshot (physical base backup){what} in {repo.location}: "
            "take one with `scholar-ops backup --base`"
        )
    if target.kind == "time" and target.time is not None:
        when = target.time
        fits = [s for s in bases if _stop_time(s) < when]
    elif target.kind == "lsn" and target.lsn is not None:
        lsn = target.lsn
        fits = [s for s in bases if parse_lsn(str(s.details["stop_lsn"])) <= lsn]
    else:
        fits = bases
    if not fits:
        oldest = min(bases, key=_stop_time)
        raise RecoveryTargetError(
            f"no base backup ends before {target.describe()}: the oldest, {oldest.short_id}, "
            f"ends at {oldest.details['stop_time']} (LSN {oldest.details['stop_lsn']}); "
            "choose a later target"
        )
    return max(fits, key=_stop_time)


@dataclass(frozen=True)
class _ArchiveEnd:
    name: str
    timeline: int
    start_lsn: int
    end_lsn: int
    stored: datetime


def _system_id(snap: Snapshot) -> int:
    return int(snap.details["system_identifier"])


def _segments(repo: Repository, snap: Snapshot) -> list[Any]:
    min_timeline = int(snap.details["timeline"])
    return [
        w
        for w in wal.list_wal(repo, system_id=_system_id(snap))
        if w.kind == "segment" and w.start_lsn is not None and w.timeline >= min_timeline
    ]


def _archive_end(repo: Repository, snap: Snapshot) -> _ArchiveEnd:
    tli = int(snap.details["timeline"])
    segsize = int(snap.details["wal_segment_size"])
    segments = _segments(repo, snap)
    if not segments:
        raise WalMissing(
            f"the WAL archive holds no segment of timeline {tli} or later: the base backup "
            f"{snap.short_id} needs {snap.details['start_wal']} on; is archive_command "
            "`scholar-ops-wal push %p` set on the server?",
            f"wal/{snap.details['start_wal']}",
            snap.backup_id,
        )
    last = max(segments, key=lambda w: (w.timeline, w.start_lsn))
    stored = _stored_time(last)
    return _ArchiveEnd(last.name, last.timeline, last.start_lsn, last.start_lsn + segsize, stored)


def _stored_time(w: Any) -> datetime:
    if w.stored_time is None:
        raise VaultError(f"WAL object {w.object_name}: its stored time could not be read")
    return datetime.fromtimestamp(float(w.stored_time), UTC)


def check_target(repo: Repository, snap: Snapshot, target: RecoveryTarget) -> _ArchiveEnd:
    """One clear error when ``target`` lies before the base backup's end or after the
    archive's end; returns the archive's end."""
    if not is_base_snapshot(snap):
        raise ConfigError(
            f"snapshot {snap.short_id} is a {snap.component} snapshot, not a physical base "
            f"backup ({COMPONENT}): point-in-time recovery starts from a base backup"
        )
    end = _archive_end(repo, snap)
    stop_lsn = parse_lsn(str(snap.details["stop_lsn"]))
    if target.kind == "time" and target.time is not None:
        stop = _stop_time(snap)
        if target.time <= stop:
            raise RecoveryTargetError(
                f"{target.describe()} is before the end of base backup {snap.short_id} "
                f"({stop.isoformat()}): a base backup restores only to points after its end; "
                "choose a later time or an older base backup"
            )
        if target.time > end.stored:
            raise RecoveryTargetError(
                f"{target.describe()} is after the end of the WAL archive (its newest segment "
                f"{end.name} was stored at {end.stored.isoformat()}): choose an earlier time, "
                "or restore to the latest point"
            )
    elif target.kind == "lsn" and target.lsn is not None:
        if target.lsn < stop_lsn:
            raise RecoveryTargetError(
                f"{target.describe()} is before the end of base backup {snap.short_id} "
                f"(LSN {format_lsn(stop_lsn)}): choose a later LSN or an older base backup"
            )
        if target.lsn >= end.end_lsn:
            raise RecoveryTargetError(
                f"{target.describe()} is after the end of the WAL archive (its newest segment "
                f"{end.name} ends at {format_lsn(end.end_lsn)}): choose an earlier LSN, or "
                "restore to the latest point"
            )
    return end


def check_continuity(repo: Repository, snap: Snapshot, end_lsn: int | None = None) -> list[str]:
    """Gaps in the WAL archive from the base backup's start (to ``end_lsn``, else the newest)."""
    tli = int(snap.details["timeline"])
    start = parse_lsn(str(snap.details["start_lsn"]))
    return list(wal.check_wal_continuity(repo, tli, start, end_lsn, system_id=_system_id(snap)))


def _raise_gaps(snap: Snapshot, problems: list[str]) -> None:
    if not problems:
        return
    names = re.findall(r"\b[0-9A-F]{24}\b", problems[0])
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    raise WalMissing(
        f"WAL archive gap after base backup {snap.short_id}: {problems[0]}{more}; recovery "
        "cannot pass it: restore to a point before it, or from a later base backup",
        f"wal/{names[0]}" if names else "wal/",
        snap.backup_id,
    )


# -- the data directory -------------------------------------------------------------------


class _IterReader:
    """A file-like ``read`` over an iterator of byte strings (tarfile's stream mode)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                self._eof = True
        if n < 0 or n >= len(self._buf):
            out = bytes(self._buf)
            self._buf.clear()
            return out
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def _prepare_datadir(datadir: Path, uid: int | None, gid: int | None) -> None:
    if datadir.exists():
        if not datadir.is_dir():
            raise TargetNotEmpty(f"{datadir} exists and is not a directory: choose a new one")
        if any(datadir.iterdir()):
            raise TargetNotEmpty(
                f"{datadir} is not empty: a base backup is restored into a new or empty data "
                "directory (--to a new path)"
            )
    else:
        datadir.mkdir(parents=True, mode=0o700)
    os.chmod(datadir, 0o700)
    if uid is not None and gid is not None:
        os.chown(datadir, uid, gid)
        try:
            check_reachable(datadir, uid, gid)
        except RuntimeError as e:
            raise ConfigError(str(e)) from None


def _safe_path(root: Path, name: str) -> Path:
    rel = PurePosixPath(name.removeprefix("./"))
    if rel.is_absolute() or ".." in rel.parts:
        raise IntegrityError(f"base backup member {name!r} points outside the data directory", name)
    return root.joinpath(*rel.parts) if rel.parts else root


def extract_base(
    repo: Repository, snap: Snapshot, datadir: Path, uid: int | None, gid: int | None
) -> tuple[int, int]:
    """Stream the base backup's tar into ``datadir``; returns (files, bytes)."""
    entry = pick_entry(snap, BASE_ENTRY)
    files = total = 0

    def own(path: Path) -> None:
        if uid is not None and gid is not None:
            os.chown(path, uid, gid, follow_symlinks=False)

    def mkdirs(path: Path) -> None:
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir(mode=0o700)
            own(d)

    with audit.restoring(repo, snap):
        reader = _IterReader(Restorer(repo).iter_entry(snap, entry))
        with tarfile.open(fileobj=reader, mode="r|") as tf:  # type: ignore[call-overload]
            for member in tf:
                path = _safe_path(datadir, member.name)
                if member.isdir():
                    mkdirs(path)
                    os.chmod(path, (member.mode & 0o750) or 0o700)
                elif member.isreg():
                    mkdirs(path.parent)
                    src = tf.extractfile(member)
                    assert src is not None
                    with open(path, "xb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    os.chmod(path, (member.mode & 0o640) or 0o600)
                    own(path)
                    files += 1
                    total += member.size
                else:
                    raise IntegrityError(
                        f"base backup member {member.name!r} is a link or special file, which "
                        "a base backup of the default tablespaces does not hold",
                        member.name,
                    )
    for sub in ("pg_wal", "pg_wal/archive_status"):
        mkdirs(datadir / sub)
    return files, total


_DEFAULT_HBA = (
    "# written by scholar-ops restore: the backed-up cluster kept pg_hba.conf outside its\n"
    "# data directory (Debian: /etc/postgresql/<version>/<cluster>); replace with its own.\n"
    "local all all peer\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
)


def _write_config(
    datadir: Path,
    restore_command: str,
    target: RecoveryTarget,
    uid: int | None,
    gid: int | None,
) -> list[str]:
    """Recovery settings and signal; config files a Debian-layout cluster kept in /etc."""
    notes: list[str] = []
    written: list[Path] = []
    for name, text in (
        ("postgresql.conf", "# written by scholar-ops restore (the backup held none)\n"),
        ("pg_hba.conf", _DEFAULT_HBA),
        ("pg_ident.conf", ""),
    ):
        path = datadir / name
        if not path.exists():
            path.write_text(text)
            written.append(path)
            notes.append(
                f"the base backup holds no {name} (the cluster kept it outside its data "
                f"directory): a minimal one was written; put the original in place"
            )
    settings = {
        "restore_command": restore_command,
        **target.settings(),
        "recovery_target_action": "promote",
    }
    lines = [f"{k} = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in settings.items()]
    auto = datadir / "postgresql.auto.conf"
    with auto.open("a", encoding="utf-8") as f:
        f.write("# recovery settings written by scholar-ops restore\n" + "\n".join(lines) + "\n")
    signal = datadir / "recovery.signal"
    signal.write_bytes(b"")
    for path in [*written, auto, signal]:
        os.chmod(path, 0o600)
        if uid is not None and gid is not None:
            os.chown(path, uid, gid)
    return notes


def _hba_for_restore(datadir: Path, sockdir: Path) -> Path:
    """trust on the private socket first, then the cluster's own rules."""
    own = datadir / "pg_hba.conf"
    rules = own.read_text(errors="replace") if own.exists() else ""
    hba = sockdir / "pg_hba.conf"
    hba.write_text(
        "# scholar-ops restore: the restore connects through this private socket directory\n"
        "local all all trust\n# the cluster's own rules:\n" + rules
    )
    return hba


# -- running the server -------------------------------------------------------------------


def _bin_dir_for(snap: Snapshot, pg_bin_dir: str | Path | None) -> Path:
    major = int(snap.details["server_version_num"]) // 10000
    candidates = [Path(pg_bin_dir)] if pg_bin_dir else []
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    for d in candidates:
        if (d / "postgres").exists() and (d / "pg_ctl").exists():
            return d
    try:
        found = find_pg_bin_dir()
    except RuntimeError as e:
        raise ConfigError(str(e)) from None
    version = subprocess.run(
        [str(found / "postgres"), "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    m = re.search(r"(\d+)(?:\.\d+)?", version)
    if m is None or int(m.group(1)) != major:
        raise ConfigError(
            f"base backup {snap.short_id} is of PostgreSQL {major}, but the server binaries "
            f"found ({found}) are {version.strip() or 'of another version'}: install "
            f"PostgreSQL {major}'s server (Debian: postgresql-{major}) or pass its bin directory"
        )
    return found


def _pg_ctl(prefix: list[str], bin_dir: Path, *args: str, timeout: float = _TIMEOUT) -> int:
    proc = subprocess.run(
        [*prefix, str(bin_dir / "pg_ctl"), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode


def _running(prefix: list[str], bin_dir: Path, datadir: Path) -> bool:
    return _pg_ctl(prefix, bin_dir, "status", "-D", str(datadir), timeout=30) == 0


def _stop(prefix: list[str], bin_dir: Path, datadir: Path) -> None:
    for mode in ("fast", "immediate"):
        if not (datadir / "postmaster.pid").exists():
            return
        rc = _pg_ctl(prefix, bin_dir, "stop", "-D", str(datadir), "-m", mode, "-w", "-t", "60")
        if rc == 0:
            return


#: FATAL lines of connection attempts made while the server recovers: not the failure.
_CONNECTION_NOISE = ("the database system is starting up", "not yet accepting connections")


def _failure_line(logfile: Path) -> str:
    text = log_tail(logfile, 200)
    lines = [
        ln
        for ln in text.splitlines()
        if re.search(r"\b(FATAL|PANIC):", ln) and not any(c in ln for c in _CONNECTION_NOISE)
    ]
    if not lines:
        return "see its log"
    msg = re.sub(r"^.*?\b(FATAL|PANIC):\s*", "", lines[0])
    if "recovery ended before configured recovery target was reached" in msg:
        msg += " (the archive ends before the target: restore to the latest point instead)"
    return msg


def _query(conn: psycopg.Connection[Any], sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def restore_pitr(
    repo: Repository,
    snap: Snapshot,
    datadir: Path,
    *,
    target: RecoveryTarget,
    restore_command: str,
    keep_running: bool = False,
    archive: bool = False,
    timeout_s: float = 6 * 3600,
    pg_bin_dir: str | Path | None = None,
) -> PitrResult:
    """Restore base backup ``snap`` into the new data directory ``datadir`` and recover to
    ``target`` (see the module docstring); stops the server unless ``keep_running``."""
    started = time.monotonic()
    datadir = Path(os.path.abspath(datadir))
    # Everything that can be known before writing: target, archive, continuity, binaries.
    end = check_target(repo, snap, target)
    problems = check_continuity(repo, snap, target.lsn if target.kind == "lsn" else None)
    _raise_gaps(snap, problems)
    bin_dir = _bin_dir_for(snap, pg_bin_dir)
    prefix, uid, gid = server_os_user()
    _prepare_datadir(datadir, uid, gid)

    files, size = extract_base(repo, snap, datadir, uid, gid)
    log.info("base backup %s: %d files, %d bytes into %s", snap.short_id, files, size, datadir)
    warnings = _write_config(datadir, restore_command, target, uid, gid)
    superuser = str(snap.details.get("superuser") or "postgres")

    sockdir = Path(tempfile.mkdtemp(prefix="scholar-ops-pitr-"))
    os.chmod(sockdir, 0o700)
    hba = _hba_for_restore(datadir, sockdir)
    if uid is not None and gid is not None:
        os.chown(sockdir, uid, gid)
        os.chown(hba, uid, gid)
    logfile = datadir / LOG_NAME
    running = False
    try:
        port = _start(prefix, bin_dir, datadir, sockdir, hba, logfile, archive)
        running = True
        _wait_for_recovery(
            prefix, bin_dir, datadir, sockdir, port, superuser, logfile, timeout_s, started
        )
        with psycopg.connect(
            host=str(sockdir), port=port, user=superuser, dbname="postgres", autocommit=True,
            connect_timeout=10,
        ) as conn:  # fmt: skip
            in_recovery = bool(_query(conn, "SELECT pg_is_in_recovery()"))
            replay_lsn = parse_lsn(str(_query(conn, "SELECT pg_last_wal_replay_lsn()")))
            replay_ts = _query(conn, "SELECT pg_last_xact_replay_timestamp()")
            timeline = int(_query(conn, "SELECT timeline_id FROM pg_control_checkpoint()"))
        stopped_at = _stopping_line(logfile)
        _verify(snap, target, end, in_recovery, replay_lsn, replay_ts, stopped_at)
        result = PitrResult(
            snapshot_id=snap.backup_id,
            datadir=str(datadir),
            target=target.describe(),
            end_lsn=format_lsn(replay_lsn),
            end_time=replay_ts.astimezone(UTC).isoformat() if replay_ts else None,
            timeline=timeline,
            stopped_at=stopped_at,
            segments_checked=len(_segments(repo, snap)),
            duration_s=0.0,
            running=keep_running,
            port=port if keep_running else None,
            socket_dir=str(sockdir) if keep_running else None,
            superuser=superuser,
            warnings=warnings,
        )
    except BaseException:
        if running:
            _stop(prefix, bin_dir, datadir)
        shutil.rmtree(sockdir, ignore_errors=True)
        raise
    if not keep_running:
        _stop(prefix, bin_dir, datadir)
        shutil.rmtree(sockdir, ignore_errors=True)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _start(
    prefix: list[str],
    bin_dir: Path,
    datadir: Path,
    sockdir: Path,
    hba: Path,
    logfile: Path,
    archive: bool,
) -> int:
    last = ""
    for _attempt in range(3):  # a free port can be taken before the server binds it
        port = free_port()
        opts = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sockdir} "
            f"-c hba_file={hba}" + ("" if archive else " -c archive_mode=off")
        )
        _pg_ctl(prefix, bin_dir, "start", "-D", str(datadir), "-l", str(logfile), "-W", "-o", opts)
        # Wait until it listens, or has exited (a port taken: try another one).
        begun = time.monotonic()
        while time.monotonic() < begun + 120:
            if (sockdir / f".s.PGSQL.{port}").exists():
                return port
            if re.search(r"\b(FATAL|PANIC):", log_tail(logfile, 50)) or (
                time.monotonic() > begun + 5 and not _running(prefix, bin_dir, datadir)
            ):
                break
            time.sleep(0.1)
        last = _failure_line(logfile)
        if "could not bind" not in log_tail(logfile, 50) and "in use" not in last:
            break
        _stop(prefix, bin_dir, datadir)
    _stop(prefix, bin_dir, datadir)
    raise RecoveryFailed(f"the restored server in {datadir} did not start: {last} (log: {logfile})")


def _wait_for_recovery(
    prefix: list[str],
    bin_dir: Path,
    datadir: Path,
    sockdir: Path,
    port: int,
    user: str,
    logfile: Path,
    timeout_s: float,
    started: float,
) -> None:
    deadline = started + timeout_s
    while True:
        with contextlib.suppress(psycopg.OperationalError), psycopg.connect(
            host=str(sockdir), port=port, user=user, dbname="postgres", autocommit=True,
            connect_timeout=5,
        ) as conn:  # fmt: skip
            if not _query(conn, "SELECT pg_is_in_recovery()"):
                return
        if not _running(prefix, bin_dir, datadir):
            raise RecoveryFailed(
                f"recovery of {datadir} failed: {_failure_line(logfile)} (log: {logfile})"
            )
        if time.monotonic() > deadline:
            raise RecoveryFailed(
                f"recovery of {datadir} did not end within {timeout_s:.0f} s (log: {logfile})"
            )
        time.sleep(0.2)


def _stopping_line(logfile: Path) -> str | None:
    for line in reversed(log_tail(logfile, 400).splitlines()):
        m = re.search(r"LOG:\s+(recovery stopping .*)$", line)
        if m:
            return m.group(1)
    return None


def _verify(
    snap: Snapshot,
    target: RecoveryTarget,
    end: _ArchiveEnd,
    in_recovery: bool,
    replay_lsn: int,
    replay_ts: datetime | None,
    stopped_at: str | None,
) -> None:
    if in_recovery:
        raise RecoveryFailed("the restored server is still in recovery")
    stop_lsn = parse_lsn(str(snap.details["stop_lsn"]))
    if replay_lsn < stop_lsn:
        raise RecoveryFailed(
            f"recovery ended at {format_lsn(replay_lsn)}, before the base backup's end "
            f"{format_lsn(stop_lsn)}: the restored cluster is not consistent"
        )
    if target.kind == "lsn" and target.lsn is not None and replay_lsn < target.lsn:
        raise RecoveryFailed(
            f"recovery ended at {format_lsn(replay_lsn)}, before the target "
            f"{format_lsn(target.lsn)}"
        )
    if target.kind == "time" and target.time is not None:
        if replay_ts is not None and replay_ts > target.time:
            raise RecoveryFailed(
                f"recovery replayed a transaction committed at {replay_ts.isoformat()}, after "
                f"the target {target.time.isoformat()}"
            )
        if stopped_at is None:
            raise RecoveryFailed(
                f"recovery ended at {format_lsn(replay_lsn)} without reaching {target.describe()}"
            )
    if target.kind == "latest" and replay_lsn < end.start_lsn:
        raise RecoveryFailed(
            f"recovery ended at {format_lsn(replay_lsn)}, before the archive's newest segment "
            f"{end.name}: a segment could not be fetched (check the server log)"
        )


def restore_command_for(
    repository: str | Path,
    key_file: str | Path,
    *,
    python: str | None = None,
    pythonpath: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """The ``restore_command`` that fetches from this repository's WAL archive:
    ``env SCHOLAR_OPS_WAL_IDLE_SECONDS=60 [PYTHONPATH=...] PYTHON -m scholar_ops.walcmd
    --repository R --key-file K --resident fetch %f %p``: through a resident archiver
    (scholar_ops.walserver), gone a minute after recovery's last fetch.

    It runs as the server's OS user: ``python`` (default: this interpreter), the
    repository and the key file must be readable by it (README, point-in-time recovery).
    ``env``: more variables for it (e.g. SCHOLAR_OPS_WAL_RUNTIME_DIR).
    """
    import shlex
    import sys

    argv = [python or sys.executable, "-m", "scholar_ops.walcmd"]
    argv += ["--repository", str(repository), "--key-file", str(key_file), "--resident"]
    variables = {"SCHOLAR_OPS_WAL_IDLE_SECONDS": "60", **(env or {})}
    if pythonpath:
        variables["PYTHONPATH"] = pythonpath
    assigns = [f"{k}={v}" for k, v in variables.items()]
    return " ".join(shlex.quote(a) for a in ["env", *assigns, *argv]) + " fetch %f %p"
