"""The performance suite: concurrent load with a bounded request budget on configured
endpoints; p50/p95/p99, throughput and error rate against SLOs, and against the
previous good run's baseline (a regression beyond the margin fails).

One test per SLO and per baseline comparison of each endpoint. Every measured number
goes into ``suite.measurements`` ("POST /api/search p95_ms": 212.0), which the flow
keeps as the next baseline when the suite passed. Severities: an error rate over its
objective is high (critical when most requests fail with 5xx); latency and throughput
objectives and regressions are medium.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from scholar_ops.functest.auth import AuthError, login
from scholar_ops.functest.context import SuiteContext, reachable
from scholar_ops.functest.loadgen import LoadResult, run_load
from scholar_ops.functest.models import Severity, SloResult, TestResult, TestSuite
from scholar_ops.functest.settings import Strict, SuiteSettings, fill


class Slo(Strict):
    p50_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    error_rate_max: float | None = Field(default=None, ge=0, le=1)
    throughput_min_rps: float | None = Field(default=None, gt=0)


class LoadEndpoint(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    method: str = "GET"
    path: str
    params: dict[str, Any] | None = None
    json_body: Any = Field(default=None, alias="json")
    headers: dict[str, str] | None = None
    auth: bool = True
    concurrency: int = Field(default=8, ge=1, le=512)
    requests: int = Field(default=400, ge=1, le=1_000_000)
    duration_seconds_max: float = Field(default=20.0, gt=0)
    expect_status: list[int] = Field(default_factory=lambda: [200])
    slo: Slo = Field(default_factory=Slo)

    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


class Baseline(Strict):
    #: how much worse than the previous good run a metric may get (0.25: 25%)
    regression_margin: float = Field(default=0.25, ge=0)
    metrics: list[str] = Field(default_factory=lambda: ["p95_ms", "throughput_rps"])


class Settings(SuiteSettings):
    default_timeout: ClassVar[float] = 300.0

    probe_path: str = "/"
    endpoints: list[LoadEndpoint] = Field(min_length=1)
    warmup_requests: int = Field(default=10, ge=0)
    baseline: Baseline = Field(default_factory=Baseline)


_SLO_FIELDS = (
    ("p50_ms", "p50_ms", "p50"),
    ("p95_ms", "p95_ms", "p95"),
    ("p99_ms", "p99_ms", "p99"),
    ("error_rate_max", "error_rate", "error rate"),
    ("throughput_min_rps", "throughput_rps", "throughput"),
)


def _fmt(metric: str, value: float) -> str:
    if metric.endswith("_ms"):
        return f"{value:.0f} ms"
    if metric == "error_rate":
        return f"{value:.1%}"
    return f"{value:.0f} req/s"


def evaluate(
    label: str,
    numbers: dict[str, float],
    slo: Slo,
    baseline: dict[str, float],
    margin: Baseline,
    result: LoadResult,
) -> tuple[list[TestResult], list[SloResult]]:
    tests: list[TestResult] = []
    slos: list[SloResult] = []
    for field_name, metric, word in _SLO_FIELDS:
        objective = getattr(slo, field_name)
        if objective is None:
            continue
        measured = numbers[metric]
        higher_better = metric == "throughput_rps"
        ok = measured >= objective if higher_better else measured <= objective
        base = baseline.get(f"{label} {metric}")
        slos.append(SloResult(label, metric, objective, measured, base, ok))
        sign = ">=" if higher_better else "<="
        name = f"{label} {word} {sign} {_fmt(metric, objective)}"
        info = {
            "endpoint": label,
            "slo": f"{label} {metric}",
            "objective": _fmt(metric, objective),
            "measured": _fmt(metric, measured),
            "requests": str(result.requests),
        }
        if ok:
            tests.append(
                TestResult(name, "passed", category="slo", severity="medium", context=info)
            )
            continue
        severity: Severity = "medium"
        if metric == "error_rate":
            server_errors = sum(n for s, n in result.statuses.items() if s >= 500)
            severity = "critical" if server_errors > result.requests / 2 else "high"
            if result.first_error:
                info["first_error"] = result.first_error
        verb = "is below" if higher_better else "exceeds"
        message = (
            f"{word} of {label} {_fmt(metric, measured)} {verb} its {_fmt(metric, objective)} SLO"
        )
        if base is not None:
            message += f"; it was {_fmt(metric, base)} in the previous run"
        tests.append(
            TestResult(
                name,
                "failed",
                error_message=message,
                category="slo",
                severity=severity,
                context=info,
            )
        )
    for metric in margin.metrics:
        base = baseline.get(f"{label} {metric}")
        if base is None or metric not in numbers or base <= 0:
            continue
        measured = numbers[metric]
        higher_better = metric == "throughput_rps"
        change = (measured - base) / base
        worse = -change if higher_better else change
        name = f"{label} {metric} within {margin.regression_margin:.0%} of the previous run"
        info = {
            "endpoint": label,
            "baseline": _fmt(metric, base),
            "measured": _fmt(metric, measured),
        }
        if worse <= margin.regression_margin:
            tests.append(
                TestResult(name, "passed", category="regression", severity="medium", context=info)
            )
            continue
        word = metric.removesuffix("_ms").replace("_rps", "").replace("_", " ")
        direction = "fell" if higher_better else "rose"
        tests.append(
            TestResult(
                name,
                "failed",
                category="regression",
                severity="medium",
                context=info,
                error_message=f"{word} of {label} {direction} from {_fmt(metric, base)} to "
                f"{_fmt(metric, measured)} ({change:+.0%}), beyond the "
                f"{margin.regression_margin:.0%} margin",
            )
        )
    return tests, slos


def run(ctx: SuiteContext, settings: Settings) -> TestSuite:
    reachable(ctx, settings.probe_path)
    suite = TestSuite("performance")
    headers: dict[str, str] = {}
    if any(e.auth for e in settings.endpoints) and ctx.credentials is not None:
        with ctx.client() as client:
            try:
                headers = login(ctx, client)
            except AuthError as e:
                suite.tests.append(
                    TestResult(
                        "login",
                        "failed",
                        severity="critical",
                        category="auth",
                        error_message=ctx.scrub(str(e)),
                    )
                )
                return suite
    names = {
        "prefix": ctx.test_prefix,
        "username": ctx.credentials.username if ctx.credentials else "",
    }
    for ep in settings.endpoints:
        label = ep.label()
        remaining = ctx.remaining()
        if remaining is not None and remaining < 2:
            suite.tests.append(TestResult(label, "skipped", error_message="out of time"))
            continue
        limit = min(ep.duration_seconds_max, (remaining - 1) if remaining is not None else 1e9)
        send = {**(headers if ep.auth else {}), **(ep.headers or {})}
        args: dict[str, Any] = {
            "method": ep.method,
            "headers": send,
            "json_body": fill(ep.json_body, **names),
            "params": fill(ep.params, **names),
            "concurrency": ep.concurrency,
            "ok_statuses": tuple(ep.expect_status),
            "timeout": ctx.request_timeout,
        }
        url = ctx.base_url + fill(ep.path, **names)
        if settings.warmup_requests:
            run_load(url, requests=settings.warmup_requests, time_limit=min(5.0, limit), **args)
        started = time.monotonic()
        result = run_load(url, requests=ep.requests, time_limit=limit, **args)
        if result.requests and result.transport_errors == result.requests and not suite.tests:
            reachable(ctx, settings.probe_path)  # down since the probe: unavailable
        numbers = result.summary()
        for metric, value in numbers.items():
            suite.measurements[f"{label} {metric}"] = value
        tests, slos = evaluate(label, numbers, ep.slo, ctx.baseline, settings.baseline, result)
        if not tests:
            tests = [
                TestResult(
                    f"{label} under load",
                    "passed" if not result.errors else "failed",
                    severity="high",
                    category="slo",
                    error_message=None
                    if not result.errors
                    else f"{result.errors} of {result.requests} requests failed "
                    f"({result.first_error})",
                )
            ]
        for t in tests:
            t.duration = time.monotonic() - started
        suite.tests.extend(tests)
        suite.slos.extend(slos)
        ctx.log(f"performance {label}: " + ", ".join(f"{k} {v:g}" for k, v in numbers.items()))
    return suite
