"""The report: status, score, recommendations, JUnit XML and JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from scholar_ops.functest.models import SloResult, TestResult, TestSuite
from scholar_ops.functest.report import (
    build_report,
    health_score,
    overall_status,
    suite_score,
    write_files,
)


def passed(name: str, severity: str = "high") -> TestResult:
    return TestResult(name, "passed", severity=severity)  # type: ignore[arg-type]


def failed(name: str, severity: str = "high", msg: str = "broke") -> TestResult:
    return TestResult(name, "failed", error_message=msg, severity=severity)  # type: ignore[arg-type]


def test_suite_score_weighs_by_severity_and_ignores_skipped():
    s = TestSuite(
        "api", tests=[passed("a", "critical"), failed("b", "low"), TestResult("c", "skipped")]
    )
    assert suite_score(s) == 100 * 8 / 9
    assert suite_score(TestSuite("api", status="unavailable")) == 0
    assert suite_score(TestSuite("api")) == 100


def test_health_score_is_the_weighted_mean_capped_by_a_critical_failure():
    api = TestSuite("api", tests=[passed("a")])
    db = TestSuite("database", tests=[failed("x", "medium"), passed("y", "medium")])
    assert health_score([api, db]) == round((25 * 100 + 20 * 50) / 45, 1)
    assert health_score([api, db], {"database": 0}) == 100
    crit = TestSuite(
        "ui", tests=[failed("journey", "critical")] + [passed(str(i)) for i in range(50)]
    )
    assert health_score([api, crit]) == 49


def test_overall_status_tells_failed_from_unavailable():
    ok = TestSuite("api", tests=[passed("a")])
    down = TestSuite("database", status="unavailable", reason="db down")
    bad = TestSuite("ui", tests=[failed("j")]).finish(0, 1)
    assert overall_status([ok]) == "passed"
    assert overall_status([ok, down]) == "degraded"
    assert overall_status([down]) == "unavailable"
    assert overall_status([ok, down, bad]) == "failed"


def test_recommendations_are_concrete():
    perf = TestSuite(
        "performance",
        tests=[
            TestResult(
                "POST /api/search p95",
                "failed",
                severity="medium",
                error_message="p95 ...",
                context={"slo": "POST /api/search p95_ms"},
            )
        ],
        slos=[SloResult("POST /api/search", "p95_ms", 500, 850, baseline=210, passed=False)],
    )
    down = TestSuite("database", status="unavailable", reason="postgres is unavailable: refused")
    api = TestSuite("api", tests=[failed("POST /api/search", "critical", "answered 500")])
    recs = build_report([perf, down, api]).recommendations
    assert (
        "p95 of POST /api/search 850 ms exceeds its 500 ms SLO; it was 210 ms in the previous run"
        in recs
    )
    assert any(r.startswith("database: postgres is unavailable") for r in recs)
    assert "fix api: POST /api/search (critical): answered 500" in recs
    assert not any("p95 ..." in r for r in recs)  # said once, with its numbers


def test_files_hold_every_suite_and_failure(tmp_path):
    api = TestSuite(
        "api",
        tests=[
            passed("GET /a"),
            failed("POST /b", "critical", "answered 500"),
            TestResult("c", "skipped"),
        ],
    )
    down = TestSuite("database", status="unavailable", reason="postgres unreachable")
    report = build_report([api.finish(0, 1), down], target="aischolar", base_url="http://x")
    json_path, xml_path = write_files(report, tmp_path / "run")
    doc = json.loads(json_path.read_text())
    assert doc["overall_status"] == "failed"
    assert doc["test_suites"][0]["total_tests"] == 3
    assert doc["test_suites"][0]["failed_tests"] == 1
    root = ET.fromstring(xml_path.read_bytes())
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["api"].get("failures") == "1" and suites["api"].get("skipped") == "1"
    assert suites["database"].get("errors") == "1"
    failure = root.find(".//testcase[@name='POST /b']/failure")
    assert failure is not None and failure.get("message") == "answered 500"
