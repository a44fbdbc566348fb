"""Full backup: every chunk written anew, independent of earlier backups."""

from __future__ import annotations

from typing import Any

from prefect import flow

from blocks.monitoring import DEFAULT_MONITORING_BLOCK
from flows.backup.run import component_targets, run_backup


@flow(name="full-backup", log_prints=True)
def full_backup(
    postgres_targets: list[str] | None = None,
    redis_targets: list[str] | None = None,
    chroma_targets: list[str] | None = None,
    file_targets: list[str] | None = None,
    repository: str = "scholar-ops-repository",
    retention_days: float | None = 30,
    monitoring: str | None = DEFAULT_MONITORING_BLOCK,
) -> list[dict[str, Any]]:
    """Back up every target fully into the repository block, all in parallel, as one
    snapshot group. Targets are names of PostgreSQL, Redis, Chroma and files target blocks.
    Each target's status goes to the Pushgateway of the ``monitoring`` settings block."""
    targets = component_targets(postgres_targets, redis_targets, chroma_targets, file_targets)
    return run_backup("full", repository, targets, retention_days, monitoring)
