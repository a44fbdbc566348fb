"""The backup run both backup flows share: every target in parallel, then the reports.

A failing target fails the run, but only after the others finished and the
report (with their snapshots) was published.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from tasks.artifacts import publish_backup_report, publish_catalog
from tasks.postgres import backup_postgres
from tasks.repository import list_snapshots
from vault.snapshot import BackupType


class BackupFailed(RuntimeError):
    pass


def run_backup(
    backup_type: BackupType,
    repository: str,
    postgres_targets: list[str],
    retention_days: float | None,
) -> list[dict[str, Any]]:
    logger = get_run_logger()
    if not postgres_targets:
        raise ValueError(
            "no targets to back up: pass postgres_targets (names of PostgreSQL target blocks)"
        )
    group = uuid.uuid4().hex
    futures: dict[str, PrefectFuture[dict[str, Any]]] = {
        name: backup_postgres.submit(repository, name, backup_type, retention_days, group)
        for name in postgres_targets
    }
    results: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    for name, fut in futures.items():
        try:
            results.append(fut.result())
        except Exception as e:
            failures[f"postgres/{name}"] = str(e)
            logger.error("backup of postgres/%s failed: %s", name, e)
    publish_backup_report(results, failures)
    publish_catalog(list_snapshots(repository))
    if failures:
        raise BackupFailed(
            f"{len(failures)} of {len(futures)} targets failed: "
            + "; ".join(f"{k}: {v}" for k, v in failures.items())
        )
    return results
