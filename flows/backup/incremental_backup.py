"""Incremental backup: only chunks the repository lacks are written; each snapshot still restores alone."""

from __future__ import annotations

from prefect import flow

from blocks.names import DEFAULT_MONITORING_BLOCK, DEFAULT_REPOSITORY_BLOCK
from flows.backup.group import (
    INCREMENTAL_RETENTION_DAYS,
    back_up_group,
    targets_of,
)
from scholar_ops.vault.summary import BackupSummary


@flow(name="incremental-backup", log_prints=True)
def incremental_backup(
    postgres_targets: list[str] | None = None,
    postgres_base_targets: list[str] | None = None,
    redis_targets: list[str] | None = None,
    chroma_targets: list[str] | None = None,
    file_targets: list[str] | None = None,
    repository: str = DEFAULT_REPOSITORY_BLOCK,
    retention_days: float | None = INCREMENTAL_RETENTION_DAYS,
    monitoring: str | None = DEFAULT_MONITORING_BLOCK,
) -> list[BackupSummary]:
    """Back up every target incrementally into the repository block, all in parallel, as one
    snapshot group. Targets are names of PostgreSQL, Redis, Chroma and files target blocks.
    Each target's status goes to the Pushgateway of the ``monitoring`` settings block."""
    targets = targets_of(
        postgres_targets=postgres_targets,
        postgres_base_targets=postgres_base_targets,
        redis_targets=redis_targets,
        chroma_targets=chroma_targets,
        file_targets=file_targets,
    )
    return back_up_group("incremental", repository, targets, retention_days, monitoring)
