"""Functionality tests: every suite of the test plan against the running application.

Steps: validate the plan; run the independent suites side by side (api, database,
integration, ui, pytest), each with its own timeout and retries only while its
service is unavailable; then the performance suite alone (load would distort the
others' latencies, and theirs its numbers); build the report (overall status,
system_health_score, recommendations); keep it (report.json, junit.xml, markdown and
table artifacts, the performance baseline); push every suite's status to the
Pushgateway. The run fails when a test failed or a suite could not run, so a
deployment tagged ``critical`` alerts through the automations.
"""

from __future__ import annotations

import time
import uuid

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from blocks.names import DEFAULT_MONITORING_BLOCK, DEFAULT_TEST_PLAN
from scholar_ops.functest.baseline import baseline_path
from scholar_ops.functest.errors import FunctionalTestError
from scholar_ops.functest.models import ComprehensiveTestReport, TestSuite, now
from scholar_ops.functest.report import build_report
from tasks.testing import (
    keep_test_report,
    load_test_plan,
    push_test_status,
    run_dir,
    run_test_suite,
)

#: run alone, after the others
SERIAL_SUITES = ("performance",)


class TestsFailed(FunctionalTestError):
    """Some tests failed or a suite could not run; the message says which."""

    __test__ = False


def _summary(report: ComprehensiveTestReport) -> str:
    bad = [s for s in report.test_suites if s.status not in ("passed", "skipped")]
    parts = []
    for s in bad:
        if s.failed_tests:
            first = next(t for t in s.tests if t.status in ("failed", "error"))
            parts.append(
                f"{s.suite_name}: {s.failed_tests} failed (first: {first.test_name}: "
                f"{first.error_message})"
            )
        else:
            parts.append(f"{s.suite_name}: {s.status} ({s.reason})")
    return (
        f"{report.kind} tests of {report.target} {report.overall_status}, score "
        f"{report.system_health_score:g}: " + "; ".join(parts)
    )


def run_tests(
    plan: str,
    suites: list[str] | None,
    monitoring: str | None,
    artifact_dir: str | None,
    *,
    smoke: bool,
) -> ComprehensiveTestReport:
    logger = get_run_logger()
    started_at, started = now(), time.monotonic()
    test_plan = load_test_plan(plan)
    configured = test_plan.configured()
    names = test_plan.select(suites, smoke=smoke)
    run_id = str(flow_run.get_id() or uuid.uuid4())[:8]
    where = str(run_dir(run_id, artifact_dir))
    logger.info(
        "testing %s (%s) with suites %s of %s",
        test_plan.target.name,
        test_plan.target.base_url,
        ", ".join(names),
        ", ".join(configured),
    )

    results: dict[str, TestSuite] = {}
    parallel = [n for n in names if n not in SERIAL_SUITES]
    futures = {n: run_test_suite.submit(plan, n, run_id, where, smoke) for n in parallel}
    for n, fut in futures.items():
        results[n] = fut.result()
    for n in names:
        if n in SERIAL_SUITES:
            results[n] = run_test_suite(plan, n, run_id, where, smoke)

    report = build_report(
        [results[n] for n in names],
        target=test_plan.target.name,
        base_url=test_plan.target.base_url,
        weights=test_plan.weights,
        started_at=started_at,
        total_execution_time=time.monotonic() - started,
        run_id=run_id,
        kind="smoke" if smoke else "full",
    )
    baseline = baseline_path(test_plan.target.name, test_plan.baseline_path)
    files = keep_test_report(report, str(baseline), where)
    push_test_status(monitoring, report)
    logger.info(
        "report: %s (score %g); files %s",
        report.overall_status,
        report.system_health_score,
        ", ".join(files),
    )
    for line in report.recommendations[:10]:
        logger.info("recommendation: %s", line)
    if report.overall_status != "passed":
        raise TestsFailed(_summary(report))
    return report


@flow(name="functionality-tests", log_prints=True)
def functionality_tests(
    plan: str = DEFAULT_TEST_PLAN,
    suites: list[str] | None = None,
    monitoring: str | None = DEFAULT_MONITORING_BLOCK,
    artifact_dir: str | None = None,
) -> ComprehensiveTestReport:
    """Run the plan's suites (``suites``: a subset) against the target. ``plan``: a
    test plan block name or a YAML file (docs/testing.md); ``artifact_dir``: where
    each run's report files go (default: the state directory)."""
    return run_tests(plan, suites, monitoring, artifact_dir, smoke=False)
