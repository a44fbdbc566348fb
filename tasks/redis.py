"""Task: restore a Redis snapshot into a running server, or as the RDB of a new one."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from prefect import get_run_logger, task

from blocks.redis import RedisTarget
from blocks.targets import load_block
from scholar_ops.sources.redis.restore import (
    ExistingMode,
    restore_redis_into,
    restore_redis_rdb,
    verify_redis_rdb,
)
from scholar_ops.vault.errors import ConfigError
from scholar_ops.vault.summary import RestoreSummary, human_bytes, plural
from tasks.common import RESTORE_TASK_OPTIONS, load_repository, restore_run_name


@task(
    name="restore-redis-target",
    task_run_name=restore_run_name("redis"),
    **RESTORE_TASK_OPTIONS,
)
def restore_redis_target(
    repository: str,
    snapshot: str = "latest",
    target: str | None = None,
    rdb_dir: str | None = None,
    source_target: str | None = None,
    existing: ExistingMode = "fail",
    dbs: list[int] | None = None,
    overwrite: bool = False,
) -> RestoreSummary:
    """Restore a Redis snapshot into the running server of the ``target`` block (keys
    with their TTLs; ``existing`` says what happens to keys it holds), or write its RDB
    into ``rdb_dir`` for a new server (``overwrite`` an existing dump.rdb). Either way
    the result is verified against the manifest (counts per database and type, sample)."""
    if (target is None) == (rdb_dir is None):
        raise ConfigError(
            "restore-redis needs exactly one of target (a Redis target block: restore into "
            "that running server) or rdb_dir (a directory for the RDB of a new server)"
        )
    logger = get_run_logger()
    repo = load_repository(repository).open()
    snap = repo.find_snapshot(
        snapshot, component="redis", target=source_target if snapshot == "latest" else None
    )
    if target is not None:
        server = load_block(RedisTarget, target)
        logger.info(
            "restoring redis snapshot %s (%s, %s) into %s (existing keys: %s)",
            snap.short_id,
            snap.target,
            snap.timestamp,
            server.target_name,
            existing,
        )
        result = restore_redis_into(repo, snap, server.conninfo(), existing=existing, dbs=dbs)
        figures = asdict(result)
        for key in ("target", "snapshot_id", "duration_s", "mismatches", "warnings"):
            figures.pop(key, None)
        restored = f"{plural(result.restored, 'key')} in {plural(len(result.dbs), 'database')}"
        if skipped := sum(result.skipped.values()):
            restored += f", {skipped} existing keys kept"
        if result.expired:
            restored += f", {result.expired} expired since the backup"
        summary = RestoreSummary(
            component="redis",
            snapshot_id=snap.backup_id,
            destination=f"redis {server.target_name}",
            restored=restored,
            verified="verified (counts per database and type, sampled values)",
            duration_s=result.duration_s,
            figures=figures,
            mismatches=list(result.mismatches),
            warnings=list(result.warnings),
        )
    else:
        assert rdb_dir is not None
        if dbs is not None:
            raise ConfigError("dbs selects databases for a restore into a running server (target)")
        started = time.monotonic()
        path = restore_redis_rdb(repo, snap, Path(rdb_dir), overwrite=overwrite)
        logger.info("wrote %s; starting a throwaway server on it to verify", path)
        mismatches = verify_redis_rdb(snap, path)
        keys = sum(int(d["keys"]) for d in snap.details["databases"].values())
        summary = RestoreSummary(
            component="redis",
            snapshot_id=snap.backup_id,
            destination=str(path),
            restored=f"{plural(keys, 'key')}, {human_bytes(path.stat().st_size)}",
            verified="verified with a throwaway server",
            duration_s=round(time.monotonic() - started, 3),
            figures={"keys": keys, "bytes": path.stat().st_size},
            mismatches=mismatches,
            warnings=[],
        )
    if summary.mismatches:
        raise RuntimeError(
            f"restored redis data differs from snapshot {snap.short_id}: "
            + "; ".join(summary.mismatches[:5])
        )
    return summary
