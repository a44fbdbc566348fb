"""One suite of a plan, run: the SuiteContext made from the plan and the resolved
secrets, then the suite under its limit and retries (runner.run_suite).

Everything here takes plain values: names were resolved above (tasks/testing.py),
so the same code serves a flow, the command line and the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scholar_ops.functest.config import TestPlan
from scholar_ops.functest.context import Credentials, Stores, SuiteContext
from scholar_ops.functest.models import TestSuite
from scholar_ops.functest.runner import run_suite
from scholar_ops.functest.suites import runner


def _no_log(message: str) -> None:
    pass


def make_context(
    plan: TestPlan,
    *,
    credentials: Credentials | None = None,
    stores: Stores | None = None,
    artifact_dir: Path,
    run_id: str = "",
    smoke: bool = False,
    baseline: dict[str, float] | None = None,
    log: Callable[[str], None] = _no_log,
) -> SuiteContext:
    stores = stores or Stores()
    secrets = [
        s.get_secret_value()
        for s in (
            credentials.password if credentials else None,
            stores.postgres_dsn,
            stores.redis_url,
        )
        if s is not None
    ]
    return SuiteContext(
        base_url=plan.target.base_url.rstrip("/"),
        target_name=plan.target.name,
        credentials=credentials,
        stores=stores,
        artifact_dir=artifact_dir,
        test_prefix=plan.test_prefix,
        run_id=run_id,
        smoke=smoke,
        auth=plan.auth,
        request_timeout=plan.target.request_timeout_seconds,
        log=log,
        baseline=dict(baseline or {}),
        secrets=tuple(secrets),
    )


def run_plan_suite(plan: TestPlan, name: str, ctx: SuiteContext) -> TestSuite:
    """Suite ``name`` of ``plan`` with its own timeout and the plan's retries."""
    settings = plan.section(name)
    return run_suite(
        name,
        runner(name),
        settings,
        ctx,
        timeout=settings.timeout(),
        delays=plan.retry.delays(),
    )
