"""Tasks: back up and restore one files target (a directory tree)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task
from prefect.tasks import exponential_backoff

from sources.files.backup import backup_files
from sources.files.restore import restore_files
from tasks.common import load_files_target, load_repository, log_summary, retry_if_transient
from tasks.progress import reported_progress
from vault.snapshot import BackupType


@task(
    name="backup-files",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
    task_run_name="backup files {target}",
)
def backup_files_target(
    repository: str,
    target: str,
    backup_type: BackupType = "incremental",
    retention_days: float | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """Back the tree up as one snapshot; unchanged files (size and mtime) are not re-read."""
    logger = get_run_logger()
    repo_block = load_repository(repository)
    target_block = load_files_target(target)
    repo = repo_block.open(create=True)
    logger.info("%s backup of %s into %s", backup_type, target_block.path, repo_block.location)
    with reported_progress(
        f"backup {target_block.target_name}",
        f"{backup_type} backup of files {target_block.target_name}",
        0,
    ) as progress:
        snap = backup_files(
            repo,
            target_block.path,
            target=target_block.target_name,
            include=target_block.include,
            exclude=target_block.exclude,
            backup_type=backup_type,
            retention_days=retention_days,
            group=group,
            one_file_system=target_block.one_file_system,
            ignore_errors=target_block.ignore_errors,
            progress=progress,
        )
    for w in snap.details.get("warnings", []) + snap.details.get("errors", []):
        logger.warning("%s: %s", target_block.target_name, w)
    return log_summary(snap)


@task(
    name="restore-files",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_condition_fn=retry_if_transient,
    task_run_name="restore files {snapshot} into {destination}",
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
