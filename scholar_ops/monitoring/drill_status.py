"""A restore drill run's outcome as Pushgateway groups: one per component and target.

A verified drill pushes ``last_run``, ``last_status 1``, ``last_success`` and its
duration; a failed one only ``last_run`` and ``last_status 0`` with a bounded
``reason`` label, so that push-add keeps the group's ``last_success`` (the alert says
that the drill failed, the dashboards how long ago one last succeeded).

The reasons are the backup's (``monitoring.backup_status.REASONS``: the same causes
make a restore fail) plus two of drills: ``verification_failed`` (the restore
completed but differs from the manifest) and ``no_snapshot`` (the target has no
snapshot to drill).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from scholar_ops.monitoring import names
from scholar_ops.monitoring.backup_status import REASONS, failure_reason
from scholar_ops.monitoring.samples import MetricGroup, gauge
from scholar_ops.sources.drill import DrillOutcome
from scholar_ops.vault.errors import SnapshotNotFound

#: Why a drill failed (the ``reason`` label of ``last_status 0``).
DRILL_REASONS = (*REASONS, "verification_failed", "no_snapshot")


def drill_failure_reason(exc: BaseException) -> str:
    """The category of an error that stopped a drill (one of ``DRILL_REASONS``)."""
    if isinstance(exc, SnapshotNotFound):
        return "no_snapshot"
    return failure_reason(exc)


def drill_status_groups(
    outcomes: Iterable[DrillOutcome], *, now: float | None = None
) -> list[MetricGroup]:
    """Groups (job ``scholar-ops-drill``, key component + target) for one drill run.

    A verified outcome pushes its duration; a failed one its ``reason`` (default
    ``verification_failed``; a value outside ``DRILL_REASONS`` becomes
    ``unexpected_error``). Two outcomes of one component and target (two blocks with
    one label) make one group, failed if either failed.
    """
    now = time.time() if now is None else now
    merged: dict[tuple[str, str], DrillOutcome] = {}
    for o in outcomes:
        key = (o.component, o.target)
        if key not in merged or not o.ok:
            if key in merged and not merged[key].ok:
                continue  # the first failure stands
            merged[key] = o
    groups = []
    for (component, target), o in merged.items():
        labels = {"component": component, "target": target}
        samples = [gauge(names.DRILL_LAST_RUN, now, labels)]
        if o.ok and o.result is not None:
            samples += [
                gauge(names.DRILL_LAST_STATUS, 1, labels),
                gauge(names.DRILL_LAST_SUCCESS, now, labels),
                gauge(names.DRILL_DURATION, float(o.result.duration_s), labels),
            ]
        else:
            reason = o.reason or "verification_failed"
            if reason not in DRILL_REASONS:
                reason = "unexpected_error"
            samples.append(gauge(names.DRILL_LAST_STATUS, 0, {**labels, "reason": reason}))
        groups.append(MetricGroup(names.JOB_DRILL, labels, samples))
    return groups
