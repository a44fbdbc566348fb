"""The functionality test report's markdown and table artifacts."""

from __future__ import annotations

from scholar_ops.functest.models import SloResult, TestResult, TestSuite
from scholar_ops.functest.report import build_report
from tasks.reports import functest_markdown, functest_rows


def _report():
    api = TestSuite(
        "api",
        tests=[
            TestResult(
                "search",
                "failed",
                0.2,
                "POST /api/search answered 500, expected 200",
                severity="critical",
                context={"endpoint": "POST /api/search", "status": "500"},
            ),
            TestResult("GET /api/me", "passed", 0.01),
        ],
    ).finish(0, 1.5)
    perf = TestSuite(
        "performance",
        slos=[SloResult("POST /api/search", "p95_ms", 500, 850.4, 210, False)],
        tests=[
            TestResult(
                "p95",
                "failed",
                3.0,
                "p95 ...",
                severity="medium",
                context={"slo": "POST /api/search p95_ms"},
            )
        ],
    ).finish(0, 3)
    down = TestSuite(
        "database", status="unavailable", reason="postgres is unavailable: refused", attempts=3
    )
    return build_report([api, down, perf], target="aischolar", base_url="http://app", run_id="r1")


def test_markdown_has_verdict_suites_failures_slos_and_recommendations():
    md = functest_markdown(_report(), ["/runs/r1/report.json"])
    assert md.startswith("# Full tests of aischolar: FAILED")
    assert (
        "| database | **UNAVAILABLE** | 0 | 0 | 0 | 0 | 0.0 s | postgres is unavailable: refused (3 attempts) |"
        in md
    )
    assert (
        "| critical | api | search | POST /api/search answered 500, expected 200 | endpoint: POST /api/search; status: 500 |"
        in md
    )
    assert "| POST /api/search | p95_ms | 500 | 850.4 | 210 | **no** |" in md
    assert (
        "- p95 of POST /api/search 850 ms exceeds its 500 ms SLO; it was 210 ms in the previous run"
        in md
    )
    assert "`/runs/r1/report.json`" in md
    # failures come most severe first
    assert md.index("| critical |") < md.index("| medium |")


def test_table_has_a_row_per_test_and_per_suite_that_did_not_run():
    rows = functest_rows(_report())
    assert {
        "suite": "database",
        "test": "(suite)",
        "status": "unavailable",
        "severity": "",
        "duration_s": 0.0,
        "error": "postgres is unavailable: refused",
    } in rows
    assert len(rows) == 4
