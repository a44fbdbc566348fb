"""The performance suite against the reference application: SLOs, the baseline, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from scholar_ops.functest.context import Credentials, SuiteContext
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.report import build_report
from scholar_ops.functest.suites.performance import Settings, run
from scholar_ops.sources.process import free_port
from scholar_ops.testbed.aischolar import AIScholar


def settings(**slo: Any) -> Settings:
    return Settings.model_validate(
        {
            "warmup_requests": 5,
            "endpoints": [
                {
                    "method": "POST",
                    "path": "/api/search",
                    "json": {"query": "okapi", "top_k": 3},
                    "concurrency": 4,
                    "requests": 60,
                    "duration_seconds_max": 20,
                    "slo": {"p95_ms": 1000, "error_rate_max": 0.01, **slo},
                },
                {
                    "method": "GET",
                    "path": "/health/live",
                    "auth": False,
                    "requests": 200,
                    "slo": {"throughput_min_rps": 1},
                },
            ],
        }
    )


def context(
    app: AIScholar, tmp_path: Path, baseline: dict[str, float] | None = None, url: str | None = None
) -> SuiteContext:
    return SuiteContext(
        base_url=url or app.url,
        credentials=Credentials(app.test_user, SecretStr(app.test_password)),
        artifact_dir=tmp_path,
        baseline=baseline or {},
    )


def test_healthy_run_meets_generous_slos_and_records_measurements(aischolar_clean, tmp_path):
    suite = run(context(aischolar_clean, tmp_path), settings()).finish(0, 1)
    assert suite.status == "passed", [t.error_message for t in suite.tests]
    assert suite.measurements["POST /api/search requests"] == 60
    assert suite.measurements["GET /health/live requests"] == 200
    assert {s.metric for s in suite.slos} == {"p95_ms", "error_rate", "throughput_rps"}


def test_a_baseline_far_below_fails_naming_both_numbers(aischolar_clean, tmp_path):
    s = Settings.model_validate(
        {
            "warmup_requests": 5,
            "endpoints": [
                {
                    "method": "POST",
                    "path": "/api/search",
                    "json": {"query": "okapi"},
                    "requests": 60,
                    "concurrency": 4,
                    "slo": {"p95_ms": 5000},
                }
            ],
            "baseline": {"regression_margin": 0.25, "metrics": ["p95_ms", "throughput_rps"]},
        }
    )
    base = {"POST /api/search p95_ms": 0.4, "POST /api/search throughput_rps": 1_000_000.0}
    suite = run(context(aischolar_clean, tmp_path, base), s).finish(0, 1)
    by_name = {t.test_name: t for t in suite.tests}
    assert by_name["POST /api/search p95 <= 5000 ms"].status == "passed"
    p95 = by_name["POST /api/search p95_ms within 25% of the previous run"]
    measured = suite.measurements["POST /api/search p95_ms"]
    assert p95.status == "failed" and p95.severity == "medium" and p95.category == "regression"
    message = str(p95.error_message)
    assert message.startswith("p95 of POST /api/search rose from 0.4 ms to ")
    assert p95.context["measured"] in message and message.endswith("beyond the 25% margin")
    assert p95.context["measured"] == (
        f"{measured:.1f} ms" if measured < 10 else f"{measured:.0f} ms"
    )
    rps = by_name["POST /api/search throughput_rps within 25% of the previous run"]
    assert rps.status == "failed"
    assert str(rps.error_message).startswith(
        "throughput of POST /api/search fell from 1000000 req/s to "
    )
    (slo,) = suite.slos
    assert slo.baseline == 0.4 and slo.measured == measured and slo.passed


def test_a_slow_endpoint_breaks_its_p95_slo(aischolar_clean, tmp_path):
    aischolar_clean.set_faults(slow_search=True)
    s = Settings.model_validate(
        {
            "warmup_requests": 0,
            "endpoints": [
                {
                    "method": "POST",
                    "path": "/api/search",
                    "json": {"query": "x"},
                    "concurrency": 4,
                    "requests": 4,
                    "slo": {"p95_ms": 500},
                }
            ],
        }
    )
    suite = run(context(aischolar_clean, tmp_path, {"POST /api/search p95_ms": 20.0}), s)
    failed = {t.test_name: t for t in suite.tests if t.status == "failed"}
    slo = failed["POST /api/search p95 <= 500 ms"]
    assert slo.severity == "medium"
    message = str(slo.error_message)
    assert message.startswith("p95 of POST /api/search ")
    assert "exceeds its 500 ms SLO; it was 20 ms in the previous run" in message
    measured = suite.measurements["POST /api/search p95_ms"]
    assert measured >= 1500 and f"POST /api/search {measured:.0f} ms exceeds" in message
    assert slo.context == {
        "endpoint": "POST /api/search",
        "slo": "POST /api/search p95_ms",
        "objective": "500 ms",
        "measured": f"{measured:.0f} ms",
        "requests": "4",
    }
    regression = failed["POST /api/search p95_ms within 25% of the previous run"]
    assert f"rose from 20 ms to {measured:.0f} ms (+" in str(regression.error_message)
    recs = build_report([suite.finish(0, 1)]).recommendations
    assert any("exceeds its 500 ms SLO; it was 20 ms in the previous run" in r for r in recs)


def test_server_errors_fail_the_error_rate_critically(aischolar_clean, tmp_path):
    aischolar_clean.set_faults(search_500=True)
    suite = run(context(aischolar_clean, tmp_path), settings())
    (bad,) = [t for t in suite.tests if t.status == "failed"]
    assert bad.test_name == "POST /api/search error rate <= 1.0%"
    assert bad.severity == "critical" and bad.context["first_error"] == "HTTP 500"
    assert bad.context["measured"] == "100.0%"
    assert suite.measurements["POST /api/search error_rate"] == 1


def test_errors_fail_even_without_an_error_objective(aischolar_clean, tmp_path):
    """Fast 500s would meet a latency objective: failed requests fail the endpoint."""
    aischolar_clean.set_faults(search_500=True)
    s = Settings.model_validate(
        {
            "warmup_requests": 0,
            "endpoints": [
                {
                    "method": "POST",
                    "path": "/api/search",
                    "json": {"query": "x"},
                    "requests": 20,
                    "slo": {"p95_ms": 5000},
                }
            ],
        }
    )
    suite = run(context(aischolar_clean, tmp_path), s)
    failed = {t.test_name: t for t in suite.tests if t.status == "failed"}
    bad = failed["POST /api/search without errors under load"]
    assert bad.severity == "critical" and "20 of 20 requests" in str(bad.error_message)


def test_a_wrong_status_is_an_error_of_high_severity(aischolar_clean, tmp_path):
    s = Settings.model_validate(
        {
            "warmup_requests": 0,
            "endpoints": [
                {
                    "path": "/api/documents",
                    "auth": False,  # 401 where 200 is expected
                    "requests": 20,
                    "slo": {"error_rate_max": 0.05},
                }
            ],
        }
    )
    suite = run(context(aischolar_clean, tmp_path), s)
    (bad,) = suite.tests
    assert bad.status == "failed" and bad.severity == "high"
    assert bad.context["first_error"] == "HTTP 401"


def test_the_deadline_caps_the_load_and_skips_what_is_left(aischolar_clean, tmp_path):
    import time

    s = Settings.model_validate(
        {
            "warmup_requests": 10,
            "endpoints": [
                {
                    "path": "/health/live",
                    "auth": False,
                    "requests": 1_000_000,
                    "duration_seconds_max": 60,
                },
                {"path": "/health/live", "auth": False, "requests": 10},
            ],
        }
    )
    ctx = context(aischolar_clean, tmp_path)
    started = time.monotonic()
    ctx.deadline = started + 3
    suite = run(ctx, s)
    assert time.monotonic() - started < 4.5
    assert 0 < suite.measurements["GET /health/live requests"] < 1_000_000
    assert [t.status for t in suite.tests] == ["passed", "skipped"]


def test_a_baseline_within_the_margin_passes(aischolar_clean, tmp_path):
    first = run(context(aischolar_clean, tmp_path), settings())
    baseline = {k: v * 10 if k.endswith("_ms") else v / 10 for k, v in first.measurements.items()}
    again = run(context(aischolar_clean, tmp_path, baseline), settings()).finish(0, 1)
    regressions = [t for t in again.tests if t.category == "regression"]
    assert regressions and all(t.status == "passed" for t in regressions)


def test_a_target_that_is_down_is_unavailable(aischolar, tmp_path):
    with pytest.raises(ServiceUnavailable):
        run(context(aischolar, tmp_path, url=f"http://127.0.0.1:{free_port()}"), settings())
