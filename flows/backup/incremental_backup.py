"""Incremental backup: only chunks the repository lacks are written; each snapshot still restores alone."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.backup.run import run_backup


@flow(name="incremental-backup", log_prints=True)
def incremental_backup(
    postgres_targets: list[str],
    repository: str = "scholar-ops-repository",
    retention_days: float | None = 7,
) -> list[dict[str, Any]]:
    """Back up every target incrementally (names of PostgreSQL target blocks)."""
    return run_backup("incremental", repository, postgres_targets, retention_days)
