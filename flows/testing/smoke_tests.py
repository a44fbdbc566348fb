"""Smoke tests: the plan's fast subset (``smoke.suites``, default the API suite), for a
schedule of every few minutes. Same steps and report as functionality-tests."""

from __future__ import annotations

from prefect import flow

from blocks.names import DEFAULT_MONITORING_BLOCK, DEFAULT_TEST_PLAN
from flows.testing.functionality_tests import run_tests
from scholar_ops.functest.models import ComprehensiveTestReport


@flow(name="smoke-tests", log_prints=True)
def smoke_tests(
    plan: str = DEFAULT_TEST_PLAN,
    monitoring: str | None = DEFAULT_MONITORING_BLOCK,
    artifact_dir: str | None = None,
) -> ComprehensiveTestReport:
    """Run the plan's smoke suites against the target (fails on any failure)."""
    return run_tests(plan, None, monitoring, artifact_dir, smoke=True)
