"""A test run as Pushgateway groups (job ``scholar-ops-tests``; docs/metrics.md).

One group per suite and target: ``last_run``, ``last_status`` (1 every test passed; 0
with a ``reason`` label: failed, unavailable, error, timed_out), ``tests``,
``failed_tests`` and ``duration``; and one group per target with the run's
``system_health_score``. Labels are the suite and the plan's target name: never a
URL, a user name or anything else from the run.
"""

from __future__ import annotations

import time

from scholar_ops.functest.models import ComprehensiveTestReport
from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import MetricGroup, gauge


def suite_status_groups(
    report: ComprehensiveTestReport, *, now: float | None = None
) -> list[MetricGroup]:
    now = time.time() if now is None else now
    groups = []
    for s in report.test_suites:
        if s.status == "skipped":
            continue
        labels = {"suite": s.suite_name, "target": report.target}
        ok = s.status == "passed"
        status_labels = labels if ok else {**labels, "reason": s.status}
        samples = [
            gauge(names.TEST_LAST_RUN, now, labels),
            gauge(names.TEST_LAST_STATUS, 1 if ok else 0, status_labels),
            gauge(names.TEST_TESTS, s.total_tests, labels),
            gauge(names.TEST_FAILED, s.failed_tests, labels),
            gauge(names.TEST_DURATION, s.execution_time, labels),
        ]
        groups.append(MetricGroup(names.JOB_TESTS, labels, samples))
    target = {"target": report.target, "suite": "all"}
    groups.append(
        MetricGroup(
            names.JOB_TESTS,
            target,
            [
                gauge(names.TEST_HEALTH_SCORE, report.system_health_score, target),
                gauge(names.TEST_LAST_RUN, now, target),
            ],
        )
    )
    return groups
