"""A backup run's outcome as Pushgateway groups: one per component and target.

A success pushes the run's status and the figures of its snapshot; a failure pushes
only its status and time (``last_run``, ``last_status 0``, ``last_failure``) and the
expected interval, so that push-add keeps the group's last-success gauges.

``last_success`` is the snapshot's timestamp (the commit at the end of the backup),
the same value the metrics export reads from the repository (scholar_ops.monitoring.collectors.backups).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import MetricGroup, Sample, gauge
from scholar_ops.vault.errors import (
    ConfigError,
    IntegrityError,
    RepositoryFull,
    RepositoryLocked,
    RepositoryNotFound,
    SnapshotNotFound,
    SourceError,
    StorageError,
    StorageFull,
    TransientStorageError,
    WrongKey,
)
from scholar_ops.vault.summary import BackupSummary

DEFAULT_INTERVAL = 3600.0

IntervalFn = Callable[[str, str], float]


def interval_lookup(default: float, overrides: Mapping[str, float] | None = None) -> IntervalFn:
    """``(component, target) -> seconds``: an override for ``component/target``, else
    for ``target``, else ``default``."""
    table = dict(overrides or {})

    def lookup(component: str, target: str) -> float:
        for key in (f"{component}/{target}", target):
            if key in table:
                return float(table[key])
        return float(default)

    return lookup


#: Why a backup failed, as a bounded label value (``reason`` on ``last_status 0``): the
#: alert and its notification name it; the message itself stays in the run history
#: (it is unbounded and may name hosts or paths).
REASONS = (
    "source_unreachable",
    "source_failed",
    "storage_unreachable",
    "storage_error",
    "repository_damaged",
    "repository_locked",
    "repository_missing",
    "repository_full",
    "wrong_key",
    "configuration_error",
    "timed_out",
    "unexpected_error",
)


def failure_reason(exc: BaseException) -> str:
    """The category of a backup failure (one of ``REASONS``)."""
    import subprocess

    checks: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        (TransientStorageError, "storage_unreachable"),
        (IntegrityError, "repository_damaged"),
        (RepositoryLocked, "repository_locked"),
        ((RepositoryFull, StorageFull), "repository_full"),
        (RepositoryNotFound, "repository_missing"),
        (WrongKey, "wrong_key"),
        (StorageError, "storage_error"),
        ((ConfigError, SnapshotNotFound, ValueError), "configuration_error"),
        ((TimeoutError, subprocess.TimeoutExpired), "timed_out"),
    ]
    for kind, reason in checks:
        if isinstance(exc, kind):
            return reason
    if isinstance(exc, SourceError):
        return "source_unreachable" if exc.transient else "source_failed"
    if isinstance(exc, ConnectionError):
        return "source_unreachable"
    module = type(exc).__module__
    if module.startswith(("psycopg", "redis", "chromadb", "httpx")):
        return (
            "source_unreachable"
            if "Connection" in type(exc).__name__ or "Operational" in (type(exc).__name__)
            else "source_failed"
        )
    return "unexpected_error"


def iso_to_unix(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def split_key(key: str) -> tuple[str, str]:
    """``"component/target"`` -> ``(component, target)`` (a target may hold a slash)."""
    component, sep, target = key.partition("/")
    if not sep or not component or not target:
        raise ValueError(f"expected 'component/target', got {key!r}")
    return component, target


def success_samples(result: BackupSummary, labels: dict[str, str]) -> list[Sample]:
    """The figures of a successful backup."""
    samples = [
        gauge(names.BACKUP_LAST_SUCCESS, iso_to_unix(result.timestamp), labels),
        gauge(names.BACKUP_DURATION, float(result.duration_s), labels),
        gauge(names.BACKUP_SIZE, float(result.size_bytes), labels),
        gauge(names.BACKUP_NEW, float(result.new_bytes), labels),
        gauge(names.BACKUP_STORED, float(result.stored_bytes), labels),
        gauge(names.BACKUP_FALLBACK_USED, 1.0 if result.fallback else 0.0, labels),
    ]
    if result.dedup_ratio is not None:
        samples.append(gauge(names.BACKUP_DEDUP, float(result.dedup_ratio), labels))
    return samples


def backup_status_groups(
    results: Iterable[BackupSummary],
    failures: Mapping[str, str],
    *,
    expected_interval: IntervalFn | float = DEFAULT_INTERVAL,
    now: float | None = None,
    reasons: Mapping[str, str] | None = None,
) -> list[MetricGroup]:
    """Groups (job ``scholar-ops-backup``, key component + target) for one run.

    ``results``: the summaries of the snapshots made. ``failures``:
    ``"component/target" -> message`` (the message is not pushed); ``reasons``, with the
    same keys, a category from ``REASONS`` carried as the ``reason`` label of
    ``last_status 0`` (default ``unexpected_error``). A target both in
    ``results`` and ``failures`` (two blocks with one label) counts as failed.
    """
    now = time.time() if now is None else now
    interval = (
        expected_interval
        if callable(expected_interval)
        else interval_lookup(float(expected_interval))
    )
    groups: dict[tuple[str, str], MetricGroup] = {}

    def group(component: str, target: str) -> MetricGroup:
        key = (component, target)
        if key not in groups:
            labels = {"component": component, "target": target}
            groups[key] = MetricGroup(
                names.JOB_BACKUP,
                labels,
                [
                    gauge(names.BACKUP_LAST_RUN, now, labels),
                    gauge(names.BACKUP_EXPECTED_INTERVAL, interval(component, target), labels),
                ],
            )
        return groups[key]

    failed = {split_key(k) for k in failures}
    for r in results:
        component, target = r.component, r.target
        g = group(component, target)
        g.samples += success_samples(r, g.grouping_key)
        if (component, target) not in failed:
            g.samples.append(gauge(names.BACKUP_LAST_STATUS, 1, g.grouping_key))
    why = dict(reasons or {})
    for component, target in sorted(failed):
        g = group(component, target)
        reason = why.get(f"{component}/{target}", "unexpected_error")
        if reason not in REASONS:
            reason = "unexpected_error"
        g.samples += [
            gauge(names.BACKUP_LAST_STATUS, 0, {**g.grouping_key, "reason": reason}),
            gauge(names.BACKUP_LAST_FAILURE, now, g.grouping_key),
        ]
    return list(groups.values())
