"""Tasks: back up and restore one Redis target."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from scholar_ops.sources.redis.dump import backup_redis
from scholar_ops.sources.redis.restore import (
    ExistingMode,
    restore_redis_into,
    restore_redis_rdb,
    verify_redis_rdb,
)
from scholar_ops.vault.errors import ConfigError
from scholar_ops.vault.snapshot import BackupType
from tasks.common import (
    BACKUP_TASK_OPTIONS,
    RESTORE_TASK_OPTIONS,
    load_redis_target,
    load_repository,
    run_backup_into,
)


@task(name="backup-redis", task_run_name="backup redis {target}", **BACKUP_TASK_OPTIONS)
def backup_redis_target(
    repository: str,
    target: str,
    backup_type: BackupType = "incremental",
    retention_days: float | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """Stream the server's RDB (every database) into the repository as one snapshot."""
    block = load_redis_target(target)
    conn = block.conninfo()
    return run_backup_into(
        repository,
        block.target_name,
        "redis",
        backup_type,
        conn.describe(),
        _used_memory(conn),
        lambda repo, progress: backup_redis(
            repo,
            conn,
            target=block.target_name,
            backup_type=backup_type,
            retention_days=retention_days,
            group=group,
            progress=progress,
        ),
    )


def _used_memory(conn: Any) -> int:
    """An estimate of the RDB's size for the progress bar (0 when unknown)."""
    try:
        client = conn.client(retries=0)
        try:
            return int(client.info("memory").get("used_memory_dataset", 0))
        finally:
            client.close()
    except Exception:
        return 0  # the backup itself reports the connection problem


@task(name="restore-redis", task_run_name="restore redis {snapshot}", **RESTORE_TASK_OPTIONS)
def restore_redis(
    repository: str,
    snapshot: str = "latest",
    target: str | None = None,
    rdb_dir: str | None = None,
    source_target: str | None = None,
    existing: ExistingMode = "fail",
    dbs: list[int] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
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
        target_block = load_redis_target(target)
        logger.info(
            "restoring redis snapshot %s (%s, %s) into %s (existing keys: %s)",
            snap.short_id,
            snap.target,
            snap.timestamp,
            target_block.target_name,
            existing,
        )
        result = restore_redis_into(repo, snap, target_block.conninfo(), existing=existing, dbs=dbs)
        out = asdict(result)
        out.update(
            component="redis",
            snapshot_id=snap.backup_id,
            destination=f"redis {target_block.target_name}",
            restored=result.restored,
        )
        out.pop("target", None)
    else:
        assert rdb_dir is not None
        if dbs is not None:
            raise ConfigError("dbs selects databases for a restore into a running server (target)")
        path = restore_redis_rdb(repo, snap, Path(rdb_dir), overwrite=overwrite)
        logger.info("wrote %s; starting a throwaway server on it to verify", path)
        mismatches = verify_redis_rdb(snap, path)
        out = {
            "component": "redis",
            "snapshot_id": snap.backup_id,
            "destination": str(path),
            "bytes": path.stat().st_size,
            "keys": sum(int(d["keys"]) for d in snap.details["databases"].values()),
            "mismatches": mismatches,
            "warnings": [],
        }
    if out["mismatches"]:
        raise RuntimeError(
            f"restored redis data differs from snapshot {snap.short_id}: "
            + "; ".join(out["mismatches"][:5])
        )
    return out
