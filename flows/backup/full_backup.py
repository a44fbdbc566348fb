"""Full backup: every chunk written anew, independent of earlier backups."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.backup.run import run_backup


@flow(name="full-backup", log_prints=True)
def full_backup(
    postgres_targets: list[str],
    repository: str = "scholar-ops-repository",
    retention_days: float | None = 30,
) -> list[dict[str, Any]]:
    """Back up every target fully (names of PostgreSQL target blocks) into the repository block."""
    return run_backup("full", repository, postgres_targets, retention_days)
