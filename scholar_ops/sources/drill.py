"""Restore drills: restore a snapshot into a scratch place, verify it, remove it.

One function per component. Each restores the snapshot it is given (by default the
target's latest) into a place made for the drill alone, compares what came back
with the snapshot's manifest, removes the scratch place (also when the restore
fails) and returns a ``DrillResult``:

- postgres: by default a NEW throwaway cluster from the local server binaries (the
  disaster case: the roles the backup needs are created there), or a scratch database
  ``scholar_ops_drill_<random>`` on the target's server (the role needs CREATEDB);
  restored by ``restore_database``, every table's row count and content (SHA-256 of
  its COPY output against the stored stream) and the large objects checked, then the
  cluster removed or the database dropped;
- redis: a throwaway redis-server started from the snapshot's RDB
  (``restore_redis_fresh``), checked by ``verify_redis`` (key counts per database
  and type, sampled values, function libraries), then stopped;
- chroma: a logical snapshot into a new embedded directory (``restore_chroma``:
  record counts, configuration, metadata, every record against the backup, the
  digests recorded at backup time, and the rebuilt index's recall of the exact
  nearest neighbours of sample records); a physical copy with
  ``restore_chroma_physical`` (SQLite quick_check, record counts, digests, recall);
  a failed verification is one line (the number of differences, the first three);
- files: ``restore_files`` (every file's sha256 is checked as it is written), then
  every entry's kind and every file's size against the manifest, and the restored
  counts against the snapshot's.

Failures to restore at all (a damaged repository, an unreachable server, a role
that cannot create databases) are raised; differences between the restored data
and the manifest are returned as ``mismatches`` (``ok`` is False).

No Prefect import: each target block binds its settings into one of these
(blocks/*.py ``drill``), tasks.targets.drill_target runs it, tests call them directly.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from scholar_ops.sources.chroma.conninfo import ChromaSource, release_embedded
from scholar_ops.sources.chroma.physical import PHYSICAL_FORMAT
from scholar_ops.sources.chroma.restore import (
    ChromaRestoreResult,
    restore_chroma,
    restore_chroma_physical,
)
from scholar_ops.sources.chroma.verify import DEFAULT_MIN_RECALL, DEFAULT_SAMPLES, NEIGHBOURS
from scholar_ops.sources.files.restore import FilesRestoreResult, restore_files
from scholar_ops.sources.postgres.cluster import find_pg_bin_dir
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.postgres.restore import RestoreOptions, restore_database
from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.restore import backup_dbs, restore_redis_fresh, verify_redis
from scholar_ops.vault.errors import ConfigError, SourceError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot
from scholar_ops.vault.summary import plural

log = logging.getLogger("scholar_ops.sources.drill")

#: Scratch databases of PostgreSQL drills are named with this prefix and a random suffix.
DRILL_DB_PREFIX = "scholar_ops_drill_"
#: Scratch directories (redis, chroma, files) are made with this prefix.
DRILL_DIR_PREFIX = "scholar-ops-drill-"
#: At most this many mismatches are listed (then "... and N more").
MAX_MISMATCHES = 20


@dataclass
class DrillResult:
    """One drill: which snapshot, how old, what was checked, and what differed."""

    component: str
    target: str
    snapshot_id: str
    snapshot_time: str
    snapshot_age_s: float
    duration_s: float = 0.0
    checked: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def short_id(self) -> str:
        return self.snapshot_id[:8]


@dataclass
class DrillOutcome:
    """One target of a drill run: its result, or why its snapshot could not be restored.

    ``block`` is the target block's name (``target`` the name its snapshots carry);
    ``reason`` a category of the failure (scholar_ops.monitoring.drill_status), None
    when the drill verified."""

    component: str
    target: str
    block: str
    result: DrillResult | None = None
    reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok and self.error is None


def latest_snapshot(repo: Repository, component: str, target: str) -> Snapshot:
    """The newest snapshot of ``component``/``target`` (SnapshotNotFound when none)."""
    return repo.find_snapshot("latest", component=component, target=target)


def _start(
    repo: Repository, component: str, target: str, snap: Snapshot | None
) -> tuple[Snapshot, DrillResult]:
    snap = snap if snap is not None else latest_snapshot(repo, component, target)
    if snap.component != component:
        raise ConfigError(
            f"snapshot {snap.short_id} is a {snap.component} backup, not a {component} one"
        )
    age = (datetime.now(UTC) - snap.time).total_seconds()
    return snap, DrillResult(
        component=component,
        target=target,
        snapshot_id=snap.backup_id,
        snapshot_time=snap.timestamp,
        snapshot_age_s=round(max(0.0, age), 3),
    )


def _capped(mismatches: list[str]) -> list[str]:
    if len(mismatches) <= MAX_MISMATCHES:
        return mismatches
    return [*mismatches[:MAX_MISMATCHES], f"... and {len(mismatches) - MAX_MISMATCHES} more"]


# -- scratch directories ---------------------------------------------------------------


def remove_tree(path: Path) -> str | None:
    """Remove ``path`` and everything below it, read-only directories included (a
    restored tree keeps its recorded modes). Returns a warning when it could not."""
    if not os.path.lexists(path):
        return None
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            with suppress(OSError):
                if not os.path.islink(p):
                    os.chmod(p, stat.S_IRWXU)
    with suppress(OSError):
        os.chmod(path, stat.S_IRWXU)
    try:
        shutil.rmtree(path)
    except OSError as e:
        log.warning("could not remove the drill's scratch directory %s: %s", path, e)
        return f"scratch directory {path} was not removed: {e}"
    return None


@contextmanager
def scratch_directory(
    parent: str | Path | None, component: str, warnings: list[str]
) -> Iterator[Path]:
    """A new directory for one drill under ``parent`` (the system's temporary
    directory by default), removed at the end whatever happens."""
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{DRILL_DIR_PREFIX}{component}-", dir=parent))
    try:
        yield path
    finally:
        problem = remove_tree(path)
        if problem:
            warnings.append(problem)


# -- postgres --------------------------------------------------------------------------------


def _role_privileges(conn: PgConnInfo) -> tuple[bool, bool]:
    """(superuser, can create databases) of the target's role, asked on its own database."""
    try:
        with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as c:
            row = c.execute(
                "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.OperationalError as e:
        raise SourceError(
            f"cannot connect to {conn.describe()}: {str(e).strip()}", transient=True
        ) from e
    if row is None:  # pg_roles hides nothing from a logged-in role; be safe anyway
        return False, False
    return bool(row[0]), bool(row[0] or row[1])


def _no_createdb(conn: PgConnInfo) -> ConfigError:
    return ConfigError(
        f"role {conn.user!r} on {conn.host}:{conn.port} cannot create databases: a restore "
        "drill restores into a scratch database on the target's server and drops it "
        f"afterwards. Grant it (ALTER ROLE {conn.user} CREATEDB), or drill with a target "
        "block whose role can"
    )


def drop_database(conn: PgConnInfo, name: str) -> str | None:
    """``DROP DATABASE IF EXISTS name WITH (FORCE)`` from the target's own database (or
    ``postgres``), autocommit. Returns a warning when the database could not be dropped."""
    if not name.startswith(DRILL_DB_PREFIX):  # never anything but a drill's own database
        raise ValueError(f"{name!r} is not a drill's scratch database")
    problem = ""
    for dbname in dict.fromkeys([conn.dbname, "postgres"]):
        try:
            with psycopg.connect(**conn.with_db(dbname).connect_kwargs(), autocommit=True) as c:
                c.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            return None
        except psycopg.Error as e:
            problem = str(e).strip()
    log.error("could not drop the drill's scratch database %s: %s", name, problem)
    return f"scratch database {name} on {conn.host}:{conn.port} was not dropped: {problem}"


def drill_postgres(
    repo: Repository,
    conn: PgConnInfo,
    target: str,
    *,
    snap: Snapshot | None = None,
    jobs: int = 2,
    timeout_s: float = 6 * 3600,
    pg_bin_dir: str | Path | None = None,
    into: Literal["cluster", "database"] = "cluster",
    scratch_dir: str | Path | None = None,
) -> DrillResult:
    """Restore the snapshot where a disaster would: by default into a NEW throwaway
    cluster started from the local PostgreSQL binaries (the roles the backup needs are
    created there; nothing on the target's server is touched), or with ``into="database"``
    into a scratch database on ``conn``'s server. Checks every table's row count and
    content (COPY output against the stored stream's SHA-256), the large objects, then
    removes the cluster or drops the database (always)."""
    if into == "cluster":
        return _drill_postgres_cluster(repo, target, snap, jobs, timeout_s, scratch_dir)
    started = time.monotonic()
    snap, result = _start(repo, "postgres", target, snap)
    superuser, can_create = _role_privileges(conn)
    if not can_create:
        raise _no_createdb(conn)
    scratch = f"{DRILL_DB_PREFIX}{secrets.token_hex(6)}"
    log.info("drill of %s: snapshot %s into scratch database %s", target, snap.short_id, scratch)
    try:
        restored = restore_database(
            repo,
            snap,
            conn.with_db(scratch),
            RestoreOptions(
                jobs=jobs,
                no_owner=not superuser,
                pg_bin_dir=pg_bin_dir,
                timeout_s=timeout_s,
                verify_content=True,
            ),
        )
    except psycopg.errors.InsufficientPrivilege as e:
        raise _no_createdb(conn) from e
    finally:
        problem = drop_database(conn, scratch)
        if problem:
            result.warnings.append(problem)
    _postgres_outcome(result, restored, "a scratch database on the target's server")
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _drill_postgres_cluster(
    repo: Repository,
    target: str,
    snap: Snapshot | None,
    jobs: int,
    timeout_s: float,
    scratch_dir: str | Path | None,
) -> DrillResult:
    from scholar_ops.sources.postgres.cluster import reachable_root, throwaway_cluster

    started = time.monotonic()
    snap, result = _start(repo, "postgres", target, snap)
    try:
        bin_dir = find_pg_bin_dir()
    except RuntimeError as e:
        raise ConfigError(
            f"a PostgreSQL drill restores into a new throwaway cluster and needs the server "
            f"binaries on this worker: {e}; or drill into a scratch database on the target's "
            "server (into=database)"
        ) from e
    parent = Path(scratch_dir) if scratch_dir else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    root = reachable_root(parent / f"{DRILL_DIR_PREFIX}postgres-{secrets.token_hex(4)}")
    log.info("drill of %s: snapshot %s into a new cluster in %s", target, snap.short_id, root)
    try:
        with throwaway_cluster(root) as server:
            restored = restore_database(
                repo,
                snap,
                PgConnInfo(
                    host=server.host,
                    port=server.port,
                    dbname=str(snap.details.get("database") or "restored"),
                    user=server.user,
                ),
                RestoreOptions(
                    jobs=jobs, pg_bin_dir=bin_dir, timeout_s=timeout_s, verify_content=True
                ),
            )
    finally:
        problem = remove_tree(root) if root.exists() else None
        if problem:
            result.warnings.append(problem)
    _postgres_outcome(result, restored, "a new cluster")
    if restored.roles_created:
        result.checked.append(f"roles created: {', '.join(restored.roles_created)}")
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _postgres_outcome(result: DrillResult, restored: Any, where: str) -> None:
    result.checked = [
        f"{plural(restored.tables, 'table')}, {plural(restored.rows, 'row')} restored into {where}",
        "row count and content (SHA-256 of COPY) of every table",
    ]
    if restored.large_objects:
        result.checked.append(f"{restored.large_objects} large objects (size and MD5)")
    result.mismatches = _capped(list(restored.mismatches))
    result.warnings = [*restored.warnings, *result.warnings]


def drill_postgres_base(
    repo: Repository,
    target: str,
    *,
    snap: Snapshot | None = None,
    scratch_dir: str | Path | None = None,
    timeout_s: float = 6 * 3600,
) -> DrillResult:
    """Point-in-time recovery, proved: the base backup restored into a new data directory,
    recovered through every archived WAL segment to the end of the archive, started and
    verified (out of recovery, past the base backup's end), then removed. The WAL is
    fetched from the repository by this process into the scratch directory first (the
    server's restore_command copies from there), so the drill needs no key file the
    server's OS user can read."""
    import shlex

    from scholar_ops.sources.postgres import wal
    from scholar_ops.sources.postgres.basebackup import base_start
    from scholar_ops.sources.postgres.cluster import reachable_root
    from scholar_ops.sources.postgres.pitr import RecoveryTarget, restore_pitr

    started = time.monotonic()
    snap, result = _start(repo, "postgres-base", target, snap)
    parent = Path(scratch_dir) if scratch_dir else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    root = reachable_root(parent / f"{DRILL_DIR_PREFIX}postgres-base-{secrets.token_hex(4)}")
    root.mkdir(parents=True)
    os.chmod(root, 0o755)
    waldir = root / "wal"
    waldir.mkdir()
    os.chmod(waldir, 0o755)
    try:
        system_id = int(snap.details["system_identifier"])
        seg_size = int(snap.details.get("wal_segment_size") or 16 << 20)
        _, start_lsn = base_start(snap)
        first = start_lsn - start_lsn % seg_size
        fetched = 0
        for w in wal.list_wal(repo, system_id=system_id, details=False):
            if w.start_lsn is not None and w.start_lsn < first:
                continue  # older than the base backup: not needed
            dest = waldir / w.name
            if wal.fetch_wal(repo, w.name, dest, system_id=system_id):
                os.chmod(dest, 0o644)
                fetched += 1
        restored = restore_pitr(
            repo,
            snap,
            root / "data",
            target=RecoveryTarget(),
            restore_command=f"cp {shlex.quote(str(waldir))}/%f %p",
            timeout_s=timeout_s,
        )
    finally:
        problem = remove_tree(root) if root.exists() else None
        if problem:
            result.warnings.append(problem)
    result.checked = [
        f"base backup restored into a new data directory and recovered through {fetched} "
        f"archived WAL files to {restored.end_lsn}"
        + (f" (last commit {restored.end_time})" if restored.end_time else ""),
        "WAL continuity from the base backup's start, the server out of recovery past the "
        "base backup's end",
    ]
    result.warnings = [*restored.warnings, *result.warnings]
    result.duration_s = round(time.monotonic() - started, 3)
    return result


# -- redis -----------------------------------------------------------------------------------


def drill_redis(
    repo: Repository,
    target: str,
    *,
    snap: Snapshot | None = None,
    scratch_dir: str | Path | None = None,
) -> DrillResult:
    """Start a throwaway redis-server from the snapshot's RDB, compare it with the
    manifest (``verify_redis``), stop it and remove its directory."""
    started = time.monotonic()
    snap, result = _start(repo, "redis", target, snap)
    with (
        scratch_directory(scratch_dir, "redis", result.warnings) as root,
        restore_redis_fresh(repo, snap, root / "server") as server,
    ):
        mismatches = verify_redis(
            RedisConnInfo(host=server.host, port=server.port, password=server.password), snap
        )
    databases: dict[str, Any] = snap.details.get("databases") or {}
    keys = sum(int(d.get("keys", 0)) for d in databases.values())
    sample = sum(len(d.get("sample") or []) for d in databases.values())
    result.checked = [
        f"{plural(keys, 'key')} in {plural(len(backup_dbs(snap)), 'database')} loaded by a "
        "throwaway redis-server",
        "key counts per database and type",
        f"{sample} sampled values",
        "function libraries",
    ]
    result.mismatches = _capped(mismatches)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


# -- chroma ----------------------------------------------------------------------------------


def drill_chroma(
    repo: Repository,
    target: str,
    *,
    snap: Snapshot | None = None,
    scratch_dir: str | Path | None = None,
    batch_size: int = 1000,
    samples: int = DEFAULT_SAMPLES,
    min_recall: float = DEFAULT_MIN_RECALL,
) -> DrillResult:
    """Restore the snapshot into a new embedded directory (a logical export) or write
    the physical copy back as one, verify it, remove the directory.

    Verification judges the data (every record and the backup's digests) and the
    rebuilt index by its recall of the exact nearest neighbours of ``samples`` records
    (at least ``min_recall``), never by the approximate index's exact answers. A failed
    verification is one mismatch line: the number of differences and the first three."""
    started = time.monotonic()
    snap, result = _start(repo, "chroma", target, snap)
    physical = snap.details.get("format") == PHYSICAL_FORMAT
    with scratch_directory(scratch_dir, "chroma", result.warnings) as root:
        dest = root / "chroma"
        if physical:
            restored = restore_chroma_physical(
                repo, snap, dest, verify=True, samples=samples, min_recall=min_recall
            )
            what = (
                f"physical copy: {plural(len(restored.collections), 'collection')}, "
                f"{plural(restored.records, 'record')} written back as an embedded directory"
            )
            checks = ["SQLite quick_check", "record count of every collection"]
        else:
            try:
                restored = restore_chroma(
                    repo,
                    snap,
                    ChromaSource.embedded(dest),
                    batch_size=batch_size,
                    verify=True,
                    samples=samples,
                    min_recall=min_recall,
                )
            finally:
                release_embedded(dest)
            what = (
                f"{plural(len(restored.collections), 'collection')}, "
                f"{plural(restored.records, 'record')} restored into a new embedded store"
            )
            checks = [
                "record counts, configuration and metadata of every collection",
                "every record against the backup (ids, documents, metadata, uris, embeddings)",
            ]
    result.checked = [what, *checks, *_chroma_data_checks(snap, restored)]
    if not restored.ok:
        result.mismatches = [restored.summary()]
    result.warnings = [*restored.warnings, *result.warnings]
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _chroma_data_checks(snap: Snapshot, restored: ChromaRestoreResult) -> list[str]:
    cols = snap.details.get("collections") or []
    with_digests = sum(1 for c in cols if c.get("digests"))
    out = []
    if with_digests:
        out.append(
            f"digests of {plural(with_digests, 'collection')} against those recorded at backup time"
        )
    queries = sum(r["queries"] for r in restored.recall.values())
    if queries:
        worst = min(restored.recall.values(), key=lambda r: r["mean"] - r["required"])
        out.append(
            f"{queries} nearest-neighbour queries of sample records against exact neighbours: "
            f"lowest mean recall@{NEIGHBOURS} {worst['mean']:.0%} "
            f"({worst['required']:.0%} required)"
        )
    return out


# -- files -----------------------------------------------------------------------------------


def verify_files(snap: Snapshot, dest: Path | str, restored: FilesRestoreResult) -> list[str]:
    """Mismatches between a tree restored from ``snap`` into ``dest`` and the manifest:
    every entry's kind, every file's size, every symlink's target, and the restored
    counts against the snapshot's."""
    details = snap.details
    raw_names: dict[str, str] = details.get("raw_names") or {}
    raw_targets: dict[str, str] = details.get("raw_targets") or {}
    root = os.fspath(dest)
    problems: list[str] = []
    kinds = {"file": 0, "dir": 0, "symlink": 0}
    for entry in snap.entries:
        if entry.kind in kinds:
            kinds[entry.kind] += 1
        raw = raw_names.get(entry.name)
        path = os.path.join(root, os.fsdecode(bytes.fromhex(raw)) if raw else entry.name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            problems.append(f"{entry.name!r} ({entry.kind}) is missing from the restored tree")
            continue
        if entry.kind == "file":
            if not stat.S_ISREG(st.st_mode):
                problems.append(f"{entry.name!r} is not a regular file")
            elif st.st_size != entry.size:
                problems.append(
                    f"{entry.name!r}: {st.st_size} bytes restored, {entry.size} in the manifest"
                )
        elif entry.kind == "dir" and not stat.S_ISDIR(st.st_mode):
            problems.append(f"{entry.name!r} is not a directory")
        elif entry.kind == "symlink":
            raw_target = raw_targets.get(entry.name)
            want = os.fsdecode(bytes.fromhex(raw_target)) if raw_target else entry.target
            if not stat.S_ISLNK(st.st_mode):
                problems.append(f"{entry.name!r} is not a symlink")
            elif os.readlink(path) != want:
                problems.append(
                    f"{entry.name!r} points to {os.readlink(path)!r}, {want!r} in the manifest"
                )
    counts: dict[str, Any] = details.get("counts") or {}
    for kind, key, got in (
        ("files", "file", restored.files),
        ("dirs", "dir", restored.dirs),
        ("symlinks", "symlink", restored.symlinks),
    ):
        expected = int(counts.get(kind, kinds[key]))
        if got != expected or kinds[key] != expected:
            problems.append(
                f"{got} {kind} restored, {expected} in the snapshot's counts "
                f"({kinds[key]} in its manifest)"
            )
    return problems


def drill_files(
    repo: Repository,
    target: str,
    *,
    snap: Snapshot | None = None,
    scratch_dir: str | Path | None = None,
    jobs: int = 4,
) -> DrillResult:
    """Restore the tree into a scratch directory (each file's sha256 checked on the
    way), compare it with the manifest (``verify_files``), remove it."""
    started = time.monotonic()
    snap, result = _start(repo, "files", target, snap)
    with scratch_directory(scratch_dir, "files", result.warnings) as root:
        dest = root / "files"
        restored = restore_files(repo, snap, dest, chown=False, jobs=jobs)
        mismatches = verify_files(snap, dest, restored)
    result.checked = [
        f"{plural(restored.files, 'file')} ({plural(restored.bytes, 'byte')}), "
        f"{plural(restored.dirs, 'dir')}, {plural(restored.symlinks, 'symlink')} restored into "
        "a scratch directory",
        "sha256 of every file",
        "size of every file and kind of every entry against the manifest",
        "counts against the snapshot's",
    ]
    result.mismatches = _capped(mismatches)
    result.warnings = [*restored.warnings, *result.warnings]
    result.duration_s = round(time.monotonic() - started, 3)
    return result
