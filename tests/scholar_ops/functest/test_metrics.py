"""A test run's Pushgateway groups: names docs/metrics.md and the alert rules use."""

from __future__ import annotations

from scholar_ops.functest.metrics import suite_status_groups
from scholar_ops.functest.models import TestResult, TestSuite
from scholar_ops.functest.report import build_report
from scholar_ops.monitoring import names


def test_groups_per_suite_with_status_reason_and_the_score():
    ok = TestSuite("api", tests=[TestResult("a", "passed")], execution_time=1.5)
    bad = TestSuite("ui", tests=[TestResult("j", "failed"), TestResult("k", "passed")]).finish(0, 2)
    down = TestSuite("database", status="unavailable", reason="down")
    report = build_report([ok, bad, down], target="aischolar")
    groups = {g.grouping_key["suite"]: g for g in suite_status_groups(report, now=100.0)}
    assert set(groups) == {"api", "ui", "database", "all"}
    assert all(g.job == names.JOB_TESTS for g in groups.values())

    def value(suite: str, name: str) -> tuple[float, dict[str, str]]:
        s = next(s for s in groups[suite].samples if s.name == name)
        return s.value, dict(s.labels)

    assert value("api", names.TEST_LAST_STATUS) == (1, {"suite": "api", "target": "aischolar"})
    assert value("ui", names.TEST_LAST_STATUS)[1]["reason"] == "failed"
    assert value("ui", names.TEST_FAILED)[0] == 1 and value("ui", names.TEST_TESTS)[0] == 2
    assert value("database", names.TEST_LAST_STATUS) == (
        0,
        {"suite": "database", "target": "aischolar", "reason": "unavailable"},
    )
    assert value("all", names.TEST_HEALTH_SCORE)[0] == report.system_health_score
    assert value("api", names.TEST_LAST_RUN)[0] == 100.0
