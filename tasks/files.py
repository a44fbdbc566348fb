"""Tasks: back up and restore one files target (a directory tree)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task

from scholar_ops.sources.files.backup import backup_files
from scholar_ops.sources.files.restore import restore_files
from scholar_ops.vault.snapshot import BackupType
from tasks.common import (
    BACKUP_TASK_OPTIONS,
    RESTORE_TASK_OPTIONS,
    load_files_target,
    load_repository,
    run_backup_into,
)


@task(
    name="backup-files",
    task_run_name="backup files {target}",
    **{**BACKUP_TASK_OPTIONS, "retries": 2},
)
def backup_files_target(
    repository: str,
    target: str,
    backup_type: BackupType = "incremental",
    retention_days: float | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """Back the tree up as one snapshot; unchanged files (size and mtime) are not re-read."""
    block = load_files_target(target)
    return run_backup_into(
        repository,
        block.target_name,
        "files",
        backup_type,
        block.path,
        0,
        lambda repo, progress: backup_files(
            repo,
            block.path,
            target=block.target_name,
            include=block.include,
            exclude=block.exclude,
            backup_type=backup_type,
            retention_days=retention_days,
            group=group,
            one_file_system=block.one_file_system,
            ignore_errors=block.ignore_errors,
            progress=progress,
        ),
    )


@task(
    name="restore-files",
    task_run_name="restore files {snapshot} into {destination}",
    **RESTORE_TASK_OPTIONS,
)
def restore_files_target(
    repository: str,
    destination: str,
    snapshot: str = "latest",
    source_target: str | None = None,
    paths: list[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Rebuild a files snapshot (or ``paths`` of it) under ``destination``, which must be
    missing or empty unless ``overwrite``."""
    logger = get_run_logger()
    repo = load_repository(repository).open()
    snap = repo.find_snapshot(
        snapshot, component="files", target=source_target if snapshot == "latest" else None
    )
    logger.info(
        "restoring files snapshot %s (%s, %s) into %s",
        snap.short_id,
        snap.target,
        snap.timestamp,
        destination,
    )
    result = restore_files(repo, snap, destination, paths=paths, overwrite=overwrite)
    out = asdict(result)
    out.update(component="files", destination=out.pop("dest"), mismatches=[])
    return out
