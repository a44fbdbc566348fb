"""The backup run both backup flows share: every target of every component in
parallel, recorded as one snapshot group, then the reports.

A failing target fails the run, but only after the others finished and the
report (with their snapshots, which stay valid) was published.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from scholar_ops.monitoring.backup_status import failure_reason
from scholar_ops.vault.snapshot import BackupType
from tasks.artifacts import publish_backup_report, publish_catalog
from tasks.chroma import backup_chroma_target
from tasks.files import backup_files_target
from tasks.metrics import push_backup_status_safely
from tasks.postgres import backup_postgres
from tasks.redis import backup_redis_target
from tasks.repository import list_snapshots, open_repository

COMPONENTS = ("postgres", "redis", "chroma", "files")


def _backup_task(component: str) -> Any:
    """The task backing up one target of ``component`` (looked up at call time: tests swap them)."""
    return {
        "postgres": backup_postgres,
        "redis": backup_redis_target,
        "chroma": backup_chroma_target,
        "files": backup_files_target,
    }[component]


class BackupFailed(RuntimeError):
    """Some targets failed; ``results`` holds the summaries of those that succeeded (their
    snapshots are valid), ``failures`` maps "component/target block" to the error."""

    def __init__(
        self,
        message: str,
        results: list[dict[str, Any]] | None = None,
        failures: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.results = list(results or [])
        self.failures = dict(failures or {})

    def __reduce__(self) -> Any:  # keeps the details when Prefect pickles the exception
        return (type(self), (str(self), self.results, self.failures))


def run_backup(
    backup_type: BackupType,
    repository: str,
    targets: dict[str, list[str]],
    retention_days: float | None,
    monitoring: str | None = None,
) -> list[dict[str, Any]]:
    """``targets``: component -> names of its target blocks (postgres, redis, chroma, files).

    At the end of the run (success or not) each target's status is pushed to the
    Pushgateway of the ``monitoring`` settings block (tasks.metrics); a failed push is
    a warning, never the run's failure."""
    logger = get_run_logger()
    unknown = sorted(set(targets) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}: use {list(COMPONENTS)}")
    if not any(targets.values()):
        raise ValueError(
            "no targets to back up: pass postgres_targets, redis_targets, chroma_targets or "
            "file_targets (names of target blocks)"
        )
    for component, names in targets.items():
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{component} target(s) {dupes} listed twice")
    group = uuid.uuid4().hex
    try:
        location = open_repository(repository)
    except Exception as e:
        message = f"cannot open the repository: {e}"
        keys = [f"{c}/{n}" for c, names in targets.items() for n in names]
        push_backup_status_safely(
            monitoring,
            [],
            dict.fromkeys(keys, message),
            dict.fromkeys(keys, failure_reason(e)),
        )
        raise
    logger.info(
        "%s backup into %s, group %s: %s",
        backup_type,
        location,
        group[:8],
        ", ".join(f"{c}/{n}" for c, names in targets.items() for n in names),
    )
    futures: dict[str, PrefectFuture[dict[str, Any]]] = {}
    for component, names in targets.items():
        task = _backup_task(component)
        for name in names:
            futures[f"{component}/{name}"] = task.submit(
                repository, name, backup_type, retention_days, group
            )
    results: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for key, fut in futures.items():
        try:
            results.append(fut.result())
        except Exception as e:
            failures[key] = str(e) or type(e).__name__
            reasons[key] = failure_reason(e)
            logger.error("backup of %s failed (%s): %s", key, reasons[key], failures[key])
    push_backup_status_safely(monitoring, results, failures, reasons)
    publish_backup_report(results, failures)
    publish_catalog(list_snapshots(repository))
    if failures:
        raise BackupFailed(
            f"{len(failures)} of {len(futures)} targets failed: "
            + "; ".join(f"{k}: {v}" for k, v in failures.items())
            + (
                f" ({len(results)} others succeeded: "
                + ", ".join(f"{r['component']}/{r['target']} {r['short_id']}" for r in results)
                + ")"
                if results
                else ""
            ),
            results,
            failures,
        )
    return results


def component_targets(
    postgres_targets: list[str] | None,
    redis_targets: list[str] | None,
    chroma_targets: list[str] | None,
    file_targets: list[str] | None,
) -> dict[str, list[str]]:
    return {
        "postgres": list(postgres_targets or []),
        "redis": list(redis_targets or []),
        "chroma": list(chroma_targets or []),
        "files": list(file_targets or []),
    }
