"""Backing up a group of targets: what the full and incremental backup flows share.

Every target of every component in parallel (one retryable task each), recorded
as one snapshot group, then each target's status pushed and the reports
published. A failing target fails the run, but only after the others finished
and were reported (their snapshots stay valid).
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from blocks.targets import COMPONENT_NAMES, COMPONENTS
from scholar_ops.monitoring.backup_status import failure_reason
from scholar_ops.vault.errors import OperationFailed
from scholar_ops.vault.snapshot import BackupType
from scholar_ops.vault.summary import BackupSummary
from tasks.artifacts import publish_backup_report, publish_catalog
from tasks.common import load_repository
from tasks.metrics import push_backup_status_safely
from tasks.repository import list_snapshots, open_repository
from tasks.targets import backup_target, storage_unreachable

#: How long snapshots are kept by default (days): full backups, incremental ones.
FULL_RETENTION_DAYS = 90.0
INCREMENTAL_RETENTION_DAYS = 14.0


class BackupFailed(OperationFailed):
    """Some targets failed; ``results`` holds the summaries of those that succeeded (their
    snapshots are valid), ``failures`` maps "component/target block" to the error."""

    def __init__(
        self,
        message: str,
        results: list[BackupSummary] | None = None,
        failures: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.results = list(results or [])
        self.failures = dict(failures or {})

    def __reduce__(self) -> Any:  # keeps the details when Prefect pickles the exception
        return (type(self), (str(self), self.results, self.failures))


def targets_of(**by_parameter: list[str] | None) -> dict[str, list[str]]:
    """component -> target block names, from the flows' per-component parameters
    (``postgres_targets=[...]``, ...; see blocks.targets)."""
    unknown = set(by_parameter) - {c.flow_parameter for c in COMPONENTS.values()}
    if unknown:
        raise ValueError(f"unknown target parameter(s) {sorted(unknown)}")
    return {c.name: list(by_parameter.get(c.flow_parameter) or []) for c in COMPONENTS.values()}


def check_targets(targets: dict[str, list[str]], what: str) -> None:
    if not any(targets.values()):
        raise ValueError(
            f"no targets to {what}: pass "
            + ", ".join(c.flow_parameter for c in COMPONENTS.values())
            + " (names of target blocks)"
        )
    for component, names in targets.items():
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{component} target(s) {dupes} listed twice")


def back_up_group(
    backup_type: BackupType,
    repository: str,
    targets: dict[str, list[str]],
    retention_days: float | None,
    monitoring: str | None = None,
) -> list[BackupSummary]:
    """``targets``: component -> names of its target blocks.

    At the end of the run (success or not) each target's status is pushed to the
    Pushgateway of the ``monitoring`` settings block (tasks.metrics); a failed push is
    a warning, never the run's failure."""
    logger = get_run_logger()
    unknown = sorted(set(targets) - set(COMPONENT_NAMES))
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}: use {list(COMPONENT_NAMES)}")
    check_targets(targets, "back up")
    group = uuid.uuid4().hex
    keys = [f"{c}/{n}" for c, names in targets.items() for n in names]
    fallback: str | None = None
    catalog_of = repository
    try:
        fallback = load_repository(repository).fallback_repository
        try:
            # With a fallback, an unreachable primary is not retried here: its storage
            # retried already, and the backup tasks fall back on their own.
            location = open_repository.with_options(retries=0 if fallback else 3)(repository)
        except Exception as e:
            if fallback is None or not storage_unreachable(e):
                raise
            logger.warning(
                "repository %s is unreachable (%s): the backups go to the fallback "
                "repository %s; copy them back later with `scholar-ops copy --repository %s "
                "--to %s`",
                repository,
                e,
                fallback,
                fallback,
                repository,
            )
            location = f"{open_repository(fallback)} (fallback of {repository})"
            catalog_of = fallback
    except Exception as e:
        message = f"cannot open the repository: {e}"
        push_backup_status_safely(
            monitoring, [], dict.fromkeys(keys, message), dict.fromkeys(keys, failure_reason(e))
        )
        try:  # the run's report says why, at its top, like any other failure
            publish_backup_report([], dict.fromkeys(keys, message))
        except Exception as report_error:
            logger.warning("the backup report was not published: %s", report_error)
        raise
    logger.info(
        "%s backup into %s, group %s: %s", backup_type, location, group[:8], ", ".join(keys)
    )
    futures: dict[str, PrefectFuture[BackupSummary]] = {
        f"{component}/{name}": backup_target.submit(
            repository, component, name, backup_type, retention_days, group
        )
        for component, names in targets.items()
        for name in names
    }
    results: list[BackupSummary] = []
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
    if any(r.fallback for r in results):
        catalog_of = fallback or catalog_of
        logger.warning(
            "%s backed up into the fallback repository %s (%s unreachable)",
            ", ".join(f"{r.component}/{r.target}" for r in results if r.fallback),
            fallback,
            repository,
        )
    publish_catalog(list_snapshots(catalog_of))
    if failures:
        succeeded = ", ".join(f"{r.component}/{r.target} {r.short_id}" for r in results)
        raise BackupFailed(
            f"{len(failures)} of {len(futures)} targets failed: "
            + "; ".join(f"{k}: {v}" for k, v in failures.items())
            + (f" ({len(results)} others succeeded: {succeeded})" if results else ""),
            results,
            failures,
        )
    return results
