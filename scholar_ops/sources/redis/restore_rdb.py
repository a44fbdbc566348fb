"""A new Redis server from a snapshot written by sources.redis.dump: its RDB written as
``dump.rdb`` (``restore_redis_rdb``; a redis-server started there loads it), or a
throwaway server started on it (``restore_redis_fresh``, restore drills).

The RDB must be loadable by the local redis-server (same or newer version than the
source's).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scholar_ops.sources.redis.dump import FORMAT, RDB_ENTRY
from scholar_ops.sources.redis.server import RedisServer, RedisStartError, throwaway_redis
from scholar_ops.vault import audit
from scholar_ops.vault.errors import ConfigError, TargetNotEmpty, VaultError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer, pick_entry
from scholar_ops.vault.snapshot import Snapshot


def check_snapshot(snap: Snapshot) -> None:
    if snap.details.get("format") != FORMAT:
        raise VaultError(
            f"snapshot {snap.short_id} is not a Redis backup (component {snap.component})"
        )


def backup_dbs(snap: Snapshot) -> list[int]:
    """The databases that held keys when the snapshot was taken."""
    return sorted(
        int(db)
        for db, d in snap.details.get("databases", {}).items()
        if d["keys"] or d["keys_after"] or d["scanned"]
    )


def _server_config(snap: Snapshot) -> dict[str, str | int]:
    # A server with fewer databases than the RDB uses refuses to load it.
    return {"databases": max(16, int(snap.details.get("max_db", 0)) + 1)}


def restore_redis_rdb(
    repo: Repository, snap: Snapshot, dest_dir: Path | str, *, overwrite: bool = False
) -> Path:
    """Write the snapshot's RDB as ``dest_dir/dump.rdb`` (verified on the way); returns its path.

    It is written under a temporary name and renamed when complete. An existing
    ``dump.rdb`` is refused unless ``overwrite``.
    """
    check_snapshot(snap)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / RDB_ENTRY
    if path.exists() and not overwrite:
        raise TargetNotEmpty(f"{path} already exists: remove it, or pass overwrite=True")
    partial = dest / f".{RDB_ENTRY}.partial"
    try:
        with audit.restoring(repo, snap), partial.open("wb") as f:
            Restorer(repo).restore_entry(snap, pick_entry(snap, RDB_ENTRY), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


@contextmanager
def server_from(
    snap: Snapshot,
    root: Path,
    keep_data: bool,
    password: str | None = None,
    rdb: Path | None = None,
) -> Iterator[RedisServer]:
    try:
        with throwaway_redis(
            root, rdb=rdb, keep_data=keep_data, config=_server_config(snap), password=password
        ) as server:
            yield server
    except RedisStartError as e:
        version = snap.details.get("server", {}).get("redis_version", "?")
        rdb = snap.details.get("rdb", {}).get("version")
        raise ConfigError(
            f"the local redis-server cannot load snapshot {snap.short_id} (RDB version {rdb}, "
            f"written by Redis {version}); a redis-server at least as new is needed: {e}"
        ) from None


@contextmanager
def restore_redis_fresh(
    repo: Repository,
    snap: Snapshot,
    root: Path | str | None = None,
    *,
    keep_data: bool = False,
    password: str | None = None,
) -> Iterator[RedisServer]:
    """A throwaway redis-server started from the snapshot's RDB, in ``root`` (a temporary
    directory by default), stopped at the end; ``root`` is removed unless ``keep_data``."""
    made = root is None
    path = Path(tempfile.mkdtemp(prefix="scholar-ops-redis-")) if root is None else Path(root)
    try:
        restore_redis_rdb(repo, snap, path)
    except BaseException:
        if made or not keep_data:
            shutil.rmtree(path, ignore_errors=True)
        raise
    with server_from(snap, path, keep_data and not made, password) as server:
        yield server
