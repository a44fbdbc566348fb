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
                    "requests": 8,
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
    regression = failed["POST /api/search p95_ms within 25% of the previous run"]
    assert "rose from 20 ms to" in str(regression.error_message)
    recs = build_report([suite.finish(0, 1)]).recommendations
    assert any("exceeds its 500 ms SLO; it was 20 ms in the previous run" in r for r in recs)


def test_server_errors_fail_the_error_rate_critically(aischolar_clean, tmp_path):
    aischolar_clean.set_faults(search_500=True)
    suite = run(context(aischolar_clean, tmp_path), settings())
    (bad,) = [t for t in suite.tests if t.status == "failed"]
    assert bad.test_name == "POST /api/search error rate <= 1.0%"
    assert bad.severity == "critical" and bad.context["first_error"] == "HTTP 500"


def test_a_baseline_within_the_margin_passes(aischolar_clean, tmp_path):
    first = run(context(aischolar_clean, tmp_path), settings())
    baseline = {k: v * 10 if k.endswith("_ms") else v / 10 for k, v in first.measurements.items()}
    again = run(context(aischolar_clean, tmp_path, baseline), settings()).finish(0, 1)
    regressions = [t for t in again.tests if t.category == "regression"]
    assert regressions and all(t.status == "passed" for t in regressions)


def test_a_target_that_is_down_is_unavailable(aischolar, tmp_path):
    with pytest.raises(ServiceUnavailable):
        run(context(aischolar, tmp_path, url=f"http://127.0.0.1:{free_port()}"), settings())
