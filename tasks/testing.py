"""Tasks of the functionality-testing flows: load the plan, run one suite, keep the
report (files, artifacts, baseline, metrics).

Tasks take the plan's *reference* (a file path or a block name) and resolve secrets
themselves: a password or DSN is never a task parameter, a return value, a log line
or an artifact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from blocks.targets import load_target
from blocks.testing import FunctionalTestPlan
from scholar_ops.functest.baseline import baseline_path, load_baseline, save_baseline
from scholar_ops.functest.config import StoreRef, TestPlan, load_plan
from scholar_ops.functest.context import Credentials, Stores
from scholar_ops.functest.errors import PlanError
from scholar_ops.functest.metrics import suite_status_groups
from scholar_ops.functest.models import ComprehensiveTestReport, TestSuite
from scholar_ops.functest.report import write_files
from scholar_ops.functest.session import make_context, run_plan_suite
from scholar_ops.vault.known import default_state_dir
from tasks.metrics import load_monitoring, push_groups
from tasks.reports import functest_markdown, functest_rows


def is_plan_file(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml", ".json")) or "/" in ref or os.sep in ref


def read_plan(ref: str) -> TestPlan:
    """The plan from a YAML/JSON file (a path) or a ``FunctionalTestPlan`` block (a
    name). PlanError, one line, when neither works."""
    if is_plan_file(ref):
        return load_plan(ref)
    try:
        block: FunctionalTestPlan = FunctionalTestPlan.load(ref, _sync=True)  # type: ignore[call-arg,assignment]
    except ValueError as e:
        if "Unable to find block document" in str(e):
            raise PlanError(
                f"no test plan block {ref!r}: pass a plan file (.yaml) or create the block "
                "(docs/testing.md)"
            ) from None
        raise PlanError(f"test plan block {ref!r} cannot be loaded: {e}") from None
    return block.parsed()


def _secret_value(name: str, what: str) -> Any:
    try:
        return Secret.load(name, _sync=True).get()  # type: ignore[call-arg,union-attr]
    except ValueError as e:
        if "Unable to find block document" in str(e):
            raise PlanError(
                f"{what}: there is no Secret block {name!r}: create it holding JSON "
                '{"username": ..., "password": ...} (docs/testing.md), or name '
                "username_env and password_env in the plan"
            ) from None
        raise PlanError(f"{what}: cannot load the Secret block {name!r}: {e}") from None


def resolve_credentials(plan: TestPlan) -> Credentials | None:
    c = plan.credentials
    if c is None:
        return None
    if c.secret_block:
        value = _secret_value(c.secret_block, "credentials")
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if not isinstance(value, dict) or not value.get("username") or not value.get("password"):
            raise PlanError(
                f"credentials: the Secret block {c.secret_block!r} must hold JSON "
                '{"username": ..., "password": ...}'
            )
        return Credentials(str(value["username"]), SecretStr(str(value["password"])))
    assert c.username_env and c.password_env
    user, password = os.environ.get(c.username_env), os.environ.get(c.password_env)
    if not user or not password:
        missing = c.username_env if not user else c.password_env
        raise PlanError(f"credentials: the environment variable {missing} is not set")
    return Credentials(user, SecretStr(password))


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise PlanError(f"stores.{what}: the environment variable {name} is not set")
    return value


def _store(ref: StoreRef | None, component: str) -> str | None:
    if ref is None:
        return None
    if ref.env:
        return _env(ref.env, component)
    if ref.path or ref.url:
        return ref.path or ref.url
    assert ref.block
    block: Any = load_target(component, ref.block)
    if component == "postgres":
        info = block.conninfo()
        auth = quote(info.user, safe="")
        if info.password:
            auth += ":" + quote(info.password, safe="")
        return f"postgresql://{auth}@{info.host}:{info.port}/{quote(info.dbname, safe='')}"
    if component == "redis":
        info = block.conninfo()
        auth = ""
        if info.password:
            auth = quote(info.username or "", safe="") + ":" + quote(info.password, safe="") + "@"
        scheme = "rediss" if info.tls else "redis"
        return f"{scheme}://{auth}{info.host}:{info.port}/{info.db}"
    if block.path:
        return str(block.path)
    return f"{'https' if block.ssl else 'http'}://{block.host}:{block.port}"


def resolve_stores(plan: TestPlan) -> Stores:
    s = plan.stores
    pg, rd = _store(s.postgres, "postgres"), _store(s.redis, "redis")
    return Stores(
        postgres_dsn=SecretStr(pg) if pg else None,
        redis_url=SecretStr(rd) if rd else None,
        chroma=_store(s.chroma, "chroma"),
    )


def run_dir(run_id: str, configured: str | None = None) -> Path:
    if configured:
        return Path(configured).expanduser() / run_id
    return default_state_dir() / "functest" / "runs" / run_id


@task(name="load-test-plan", cache_policy=NO_CACHE)
def load_test_plan(plan: str) -> TestPlan:
    """The validated plan (it holds names, never secrets: each suite task resolves its
    own credentials and stores, so no secret crosses a task boundary). The names are
    resolved once here too, so that a missing Secret block or variable stops the run
    with one line before any suite starts."""
    test_plan = read_plan(plan)
    resolve_credentials(test_plan)
    resolve_stores(test_plan)
    return test_plan


@task(name="run-test-suite", cache_policy=NO_CACHE, task_run_name="test-suite-{suite}")
def run_test_suite(plan: str, suite: str, run_id: str, artifact_dir: str, smoke: bool) -> TestSuite:
    """Run one suite (its own timeout, retries while its service is unavailable: in the
    engine, so that an assertion failure is never retried)."""
    logger = get_run_logger()
    test_plan = read_plan(plan)
    baseline = (
        load_baseline(baseline_path(test_plan.target.name, test_plan.baseline_path))
        if suite == "performance"
        else {}
    )
    ctx = make_context(
        test_plan,
        credentials=resolve_credentials(test_plan),
        stores=resolve_stores(test_plan),
        artifact_dir=Path(artifact_dir),
        run_id=run_id,
        smoke=smoke,
        baseline=baseline,
        log=logger.info,
    )
    result = run_plan_suite(test_plan, suite, ctx)
    logger.info(
        "%s: %s (%d tests, %d failed) in %.1f s%s",
        suite,
        result.status,
        result.total_tests,
        result.failed_tests,
        result.execution_time,
        f": {result.reason}" if result.reason else "",
    )
    return result


@task(name="keep-test-report", cache_policy=NO_CACHE)
def keep_test_report(
    report: ComprehensiveTestReport, baseline_file: str, artifact_dir: str
) -> list[str]:
    """Write report.json and junit.xml, publish the markdown and table artifacts, and
    store the performance baseline when the performance suite passed."""
    json_path, xml_path = write_files(report, Path(artifact_dir))
    key = f"functionality-tests-{report.target}".lower().replace("_", "-")
    create_markdown_artifact(
        functest_markdown(report, [str(json_path), str(xml_path)]),
        key=key,
        description=f"Last {report.kind} test run of {report.target}",
    )
    create_table_artifact(
        functest_rows(report), key=f"{key}-table", description="Tests of the last run"
    )
    perf = next((s for s in report.test_suites if s.suite_name == "performance"), None)
    if perf is not None and perf.status == "passed" and perf.measurements:
        save_baseline(Path(baseline_file), report.target, perf.measurements)
    return [str(json_path), str(xml_path)]


@task(name="push-test-status", cache_policy=NO_CACHE, timeout_seconds=120)
def push_test_status(monitoring: str | None, report: ComprehensiveTestReport) -> int:
    """Push every suite's status (job scholar-ops-tests); a push that fails is a
    warning: the tests' verdict never depends on the Pushgateway."""
    logger = get_run_logger()
    try:
        settings = load_monitoring(monitoring)
        if settings is None:
            logger.info("test status not pushed: no monitoring settings")
            return 0
        return push_groups(settings, suite_status_groups(report))
    except Exception as e:
        logger.warning("the test status was not pushed: %s", e)
        return 0
