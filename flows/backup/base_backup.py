"""Base backup: a physical copy of whole PostgreSQL clusters, for point-in-time recovery.

Each cluster target block (``PostgresClusterTarget``) is backed up with pg_basebackup,
streamed into the store and deduplicated against its earlier base backups; with the WAL
that the server's archive_command (``scholar-ops-wal push %p``) keeps in the same
repository, `scholar-ops restore latest --time T --to DIR` recovers any moment since the
oldest kept base backup. Reported, pushed and recorded like the other backups.
"""

from __future__ import annotations

from prefect import flow

from blocks.names import DEFAULT_MONITORING_BLOCK, DEFAULT_REPOSITORY_BLOCK
from flows.backup.group import FULL_RETENTION_DAYS, back_up_group, check_targets, targets_of
from scholar_ops.vault.snapshot import BackupType
from scholar_ops.vault.summary import BackupSummary


@flow(name="base-backup", log_prints=True)
def base_backup(
    postgres_base_targets: list[str],
    repository: str = DEFAULT_REPOSITORY_BLOCK,
    backup_type: BackupType = "incremental",
    retention_days: float | None = FULL_RETENTION_DAYS,
    monitoring: str | None = DEFAULT_MONITORING_BLOCK,
) -> list[BackupSummary]:
    """Base-back-up every named PostgreSQL cluster block, in parallel, as one snapshot group
    (``incremental``: only chunks the store lacks are written; ``full``: all of them). The
    WAL between base backups comes from the servers' archive_command."""
    targets = targets_of(postgres_base_targets=postgres_base_targets)
    check_targets(targets, "base-back-up")
    return back_up_group(backup_type, repository, targets, retention_days, monitoring)
