"""The functionality-tests and smoke-tests flows end to end, against the reference
application, with a real Prefect API, Pushgateway, Prometheus and AlertManager.

- healthy: every suite of the shipped plan (flows/testing/plans/aischolar.yaml) passes;
  the report, JUnit XML and the performance baseline are kept;
- broken: a 500 in search and a database that is down: the api suite fails naming the
  endpoint, the database suite is unavailable after its retries (not failed), the
  other suites still run and report; the run fails; both alerts reach AlertManager's
  receiver; the test user's password is nowhere (logs, files, alerts, parameters).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.blocks.system import Secret

from blocks.monitoring import MonitoringSettings
from flows.testing.functionality_tests import TestsFailed, functionality_tests
from flows.testing.smoke_tests import smoke_tests
from scholar_ops.sources.process import free_port
from scholar_ops.testbed.aischolar import AIScholar
from scholar_ops.testbed.alerting import (
    default_rule_files,
    render_alertmanager_config,
    render_prometheus_config,
)
from tests.fixtures.sinks import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[3]
PLAN = ROOT / "flows" / "testing" / "plans" / "aischolar.yaml"


@pytest.fixture
def plan_env(aischolar_clean: AIScholar, prefect_harness: None, monkeypatch) -> Iterator[str]:
    """The shipped plan pointed at the test application; the test user in a Secret block."""
    block = f"test-user-{uuid.uuid4().hex[:8]}"
    user = {"username": aischolar_clean.test_user, "password": aischolar_clean.test_password}
    Secret(value=user).save(block)  # type: ignore[arg-type]
    monkeypatch.setenv("AISCHOLAR_URL", aischolar_clean.url)
    monkeypatch.setenv("AISCHOLAR_TEST_USER_SECRET", block)
    monkeypatch.setenv("AISCHOLAR_TEST_DATABASE_URL", aischolar_clean.database_url)
    monkeypatch.setenv("AISCHOLAR_TEST_REDIS_URL", aischolar_clean.redis_url)
    monkeypatch.setenv("AISCHOLAR_TEST_CHROMA", aischolar_clean.chroma)
    yield block


def _artifacts(key_prefix: str) -> str:
    """Every artifact the runs published under keys starting with ``key_prefix``."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.read_artifacts()
    data = [str(a.data) for a in found if (a.key or "").startswith(key_prefix)]
    assert data, [a.key for a in found]
    return "\n".join(data)


def _report(where: Path) -> dict[str, Any]:
    (run,) = [p for p in where.iterdir() if p.is_dir()]
    return dict(json.loads((run / "report.json").read_text()))


def _everything_written(where: Path) -> str:
    return "".join(
        p.read_text(errors="replace")
        for p in where.rglob("*")
        if p.is_file() and p.suffix in (".json", ".xml", ".txt", ".md", ".log")
    )


def test_the_healthy_application_passes_every_suite(
    plan_env: str, aischolar_clean: AIScholar, tmp_path: Path, caplog
) -> None:
    out = tmp_path / "runs"
    report = functionality_tests(plan=str(PLAN), monitoring=None, artifact_dir=str(out))
    assert report.overall_status == "passed", report.recommendations
    assert [s.suite_name for s in report.test_suites] == [
        "api",
        "database",
        "integration",
        "performance",
        "ui",
    ]
    assert report.system_health_score == 100
    doc = _report(out)
    assert doc["overall_status"] == "passed" and doc["test_suites"][0]["total_tests"] >= 10
    (run,) = list(out.iterdir())
    assert (run / "junit.xml").read_bytes().startswith(b"<?xml")
    from scholar_ops.functest.baseline import baseline_path, load_baseline

    artifacts = _artifacts("functionality-tests-aischolar")
    assert "# Full tests of aischolar: PASSED" in artifacts
    assert "| ui | passed |" in artifacts
    kept = load_baseline(baseline_path("aischolar"))
    assert kept["POST /api/search requests"] == 300
    assert aischolar_clean.test_password not in _everything_written(out)
    assert aischolar_clean.test_password not in caplog.text


@pytest.fixture(scope="module")
def alerting(
    pushgateway: Any,
    prometheus_factory: Any,
    alertmanager_factory: Any,
    webhook_receiver_module: WebhookReceiver,
) -> Iterator[tuple[Any, WebhookReceiver]]:
    pushgateway.wipe()
    am = alertmanager_factory(
        render_alertmanager_config(
            smtp_host_port="127.0.0.1:9",
            webhook_url=webhook_receiver_module.url("/alertmanager"),
            slack_url=webhook_receiver_module.url("/slack"),
            group_wait="1s",
            group_interval="2s",
            repeat_interval="1h",
        )
    )
    prom = prometheus_factory(
        render_prometheus_config(
            pushgateway=pushgateway.url,
            alertmanager=am.address,
            health=None,
            scrape_interval="1s",
            evaluation_interval="1s",
            rule_files=default_rule_files(),
        ),
        extra_args=["--rules.alert.resend-delay=1s"],
    )
    yield pushgateway, webhook_receiver_module
    prom.stop()
    am.stop()
    pushgateway.wipe()


def test_a_failing_suite_and_a_down_service_are_reported_apart_and_alert(
    plan_env: str,
    aischolar_clean: AIScholar,
    alerting: tuple[Any, WebhookReceiver],
    tmp_path: Path,
    monkeypatch,
    caplog,
) -> None:
    gateway, webhook = alerting
    monitoring = f"monitoring-{uuid.uuid4().hex[:8]}"
    MonitoringSettings(pushgateway_url=gateway.url).save(monitoring)
    aischolar_clean.set_faults(search_500=True)
    dead = f"postgresql://postgres:{secrets.token_hex(4)}@127.0.0.1:{free_port()}/nothing"
    monkeypatch.setenv("AISCHOLAR_TEST_DATABASE_URL", dead)
    out = tmp_path / "runs"
    started = time.monotonic()
    with pytest.raises(TestsFailed) as failed:
        functionality_tests(
            plan=str(PLAN),
            suites=["api", "database", "integration"],
            monitoring=monitoring,
            artifact_dir=str(out),
        )
    message = str(failed.value)
    assert "api: " in message and "database: unavailable" in message
    doc = _report(out)
    suites = {s["suite_name"]: s for s in doc["test_suites"]}
    assert suites["database"]["status"] == "unavailable" and suites["database"]["attempts"] == 3
    assert suites["database"]["tests"] == []
    assert suites["api"]["status"] == "failed"
    search = next(t for t in suites["api"]["tests"] if t["test_name"] == "search")
    assert search["severity"] == "critical"
    assert search["error_message"] == "POST /api/search answered 500, expected 200"
    assert suites["integration"]["status"] == "failed"  # it ran, and search is broken
    assert doc["overall_status"] == "failed" and doc["system_health_score"] <= 49
    assert any("database: " in r and "unavailable" in r for r in doc["recommendations"])

    def fired(alertname: str, suite: str):
        def match(r: Any) -> bool:
            body = r.json()
            return body.get("status") == "firing" and any(
                a["labels"].get("alertname") == alertname and a["labels"].get("suite") == suite
                for a in body.get("alerts", [])
            )

        return match

    webhook.wait_for(fired("ScholarOpsTestSuiteFailures", "api"), timeout=60, path="/alertmanager")
    hook = webhook.wait_for(
        fired("ScholarOpsTestSuiteNotRun", "database"), timeout=60, path="/alertmanager"
    )
    alert = next(
        a for a in hook.json()["alerts"] if a["labels"]["alertname"] == "ScholarOpsTestSuiteNotRun"
    )
    assert alert["labels"]["reason"] == "unavailable" and alert["labels"]["target"] == "aischolar"
    print(f"failed run -> alert at the receiver in {time.monotonic() - started:.1f} s")

    password = aischolar_clean.test_password
    artifacts = _artifacts("functionality-tests-aischolar")
    assert "FAILED" in artifacts and "POST /api/search answered 500" in artifacts
    assert password not in artifacts
    assert password not in _everything_written(out)
    assert password not in caplog.text
    assert password not in "".join(r.body.decode() for r in webhook.received())
    assert password not in gateway.metrics()


def test_smoke_runs_only_the_smoke_suites(plan_env: str, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    report = smoke_tests(plan=str(PLAN), monitoring=None, artifact_dir=str(out))
    assert [s.suite_name for s in report.test_suites] == ["api"]
    assert report.kind == "smoke" and report.overall_status == "passed"
    assert not any(t.test_name.startswith("contract") for t in report.test_suites[0].tests)


def test_a_plan_block_drives_the_flow_and_refuses_a_bad_plan(
    plan_env: str, aischolar_clean: AIScholar, tmp_path: Path
) -> None:
    from blocks.testing import FunctionalTestPlan
    from scholar_ops.functest.config import expand_vars

    doc = expand_vars(yaml.safe_load(PLAN.read_text()))
    name = f"plan-{uuid.uuid4().hex[:8]}"
    FunctionalTestPlan(plan=doc).save(name)
    report = smoke_tests(plan=name, monitoring=None, artifact_dir=str(tmp_path / "runs"))
    assert report.overall_status == "passed" and report.base_url == aischolar_clean.url
    bad = {**doc, "suites": {"api": {"endpoints": [{"path": "/", "expekt": {}}]}}}
    with pytest.raises(ValueError, match=r"suites\.api\.endpoints\.0\.expekt"):
        FunctionalTestPlan(plan=bad)
    from scholar_ops.functest.errors import PlanError

    with pytest.raises(PlanError, match="no test plan block 'no-such-plan'"):
        smoke_tests(plan="no-such-plan", monitoring=None, artifact_dir=str(tmp_path / "x"))


def test_a_missing_secret_or_variable_stops_the_run_before_any_suite(
    plan_env: str, tmp_path: Path, monkeypatch
) -> None:
    from scholar_ops.functest.errors import PlanError

    monkeypatch.setenv("AISCHOLAR_TEST_USER_SECRET", "nobody-made-this")
    with pytest.raises(PlanError, match="there is no Secret block 'nobody-made-this': create it"):
        functionality_tests(plan=str(PLAN), monitoring=None, artifact_dir=str(tmp_path / "a"))
    monkeypatch.setenv("AISCHOLAR_TEST_USER_SECRET", plan_env)
    monkeypatch.delenv("AISCHOLAR_TEST_REDIS_URL")
    with pytest.raises(PlanError, match="AISCHOLAR_TEST_REDIS_URL is not set"):
        functionality_tests(plan=str(PLAN), monitoring=None, artifact_dir=str(tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # no suite ran
