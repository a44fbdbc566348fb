"""Tasks: back up and restore one PostgreSQL target."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from prefect import get_run_logger, task

from scholar_ops.sources.postgres.dump import backup_database
from scholar_ops.sources.postgres.restore import RestoreOptions, restore_database
from scholar_ops.vault.snapshot import BackupType
from tasks.common import (
    BACKUP_TASK_OPTIONS,
    RESTORE_TASK_OPTIONS,
    load_postgres_target,
    load_repository,
    run_backup_into,
)


@task(name="backup-postgres", task_run_name="backup {target}", **BACKUP_TASK_OPTIONS)
def backup_postgres(
    repository: str,
    target: str,
    backup_type: BackupType = "incremental",
    retention_days: float | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """Dump one database into the repository as one snapshot; returns its summary."""
    block = load_postgres_target(target)
    conninfo = block.conninfo()
    return run_backup_into(
        repository,
        block.target_name,
        "postgres",
        backup_type,
        conninfo.describe(),
        _database_size(conninfo),
        lambda repo, progress: backup_database(
            repo,
            conninfo,
            target=block.target_name,
            backup_type=backup_type,
            retention_days=retention_days,
            group=group,
            progress=progress,
        ),
    )


def _database_size(conninfo: Any) -> int:
    import psycopg

    try:
        with psycopg.connect(**conninfo.connect_kwargs()) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0  # the backup itself reports the connection problem


@task(
    name="restore-postgres",
    task_run_name="restore {snapshot} into {database}",
    **RESTORE_TASK_OPTIONS,
)
def restore_postgres(
    repository: str,
    snapshot: str,
    target: str,
    database: str,
    before: datetime | None = None,
    source_target: str | None = None,
    clean: bool = False,
    schemas: list[str] | None = None,
    tables: list[str] | None = None,
    jobs: int = 2,
    no_owner: bool = False,
) -> dict[str, Any]:
    """Restore a snapshot (id, prefix or 'latest') into ``database`` on the ``target`` server."""
    logger = get_run_logger()
    repo = load_repository(repository).open()
    target_block = load_postgres_target(target)
    snap = repo.find_snapshot(
        snapshot,
        component="postgres",
        target=source_target if snapshot == "latest" else None,
        before=before,
    )
    logger.info(
        "restoring snapshot %s (%s, %s) into %s",
        snap.short_id,
        snap.target,
        snap.timestamp,
        database,
    )
    result = restore_database(
        repo,
        snap,
        target_block.conninfo().with_db(database),
        RestoreOptions(clean=clean, schemas=schemas, tables=tables, jobs=jobs, no_owner=no_owner),
    )
    if result.mismatches:
        raise RuntimeError(
            "restored row counts differ from the backup: " + "; ".join(result.mismatches)
        )
    return {"component": "postgres", **asdict(result)}
