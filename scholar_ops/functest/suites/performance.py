"""The performance suite: concurrent load with a bounded request budget on configured
endpoints; p50/p95/p99, throughput and error rate against SLOs, and against the
previous good run's baseline (a regression beyond the margin fails).

One test per SLO and per baseline comparison of each endpoint. Every measured number
goes into ``suite.measurements`` ("POST /api/search p95_ms": 212.0), which the flow
keeps as the next baseline when the suite passed. Errors are transport errors, 5xx and
any status outside ``expect_status``; an endpoint without an ``error_rate_max`` objective
fails on any error (fast 500s would otherwise meet a latency objective). Severities: an
error rate over its objective is high (critical when most requests fail with 5xx);
latency and throughput objectives and regressions are medium. The load is capped by the
suite's deadline; the target unreachable before any verdict is ServiceUnavailable.

    performance:
      probe_path: /health/live
      warmup_requests: 10
      endpoints:
        - method: POST
          path: /api/search
          json: {query: photosynthesis, top_k: 5}
          auth: true                    # the test user's token (logged in once)
          concurrency: 8
          requests: 400                 # the budget ...
          duration_seconds_max: 20      # ... or this long, whichever comes first
          expect_status: [200]
          slo: {p50_ms: 100, p95_ms: 500, p99_ms: 1000, error_rate_max: 0.01,
                throughput_min_rps: 20}
      baseline: {regression_margin: 0.25, metrics: [p95_ms, throughput_rps]}
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
        # loopback latencies are often below 10 ms: keep a digit there
        return f"{value:.1f} ms" if abs(value) < 10 and value != int(value) else f"{value:.0f} ms"
    if metric == "error_rate":
        return f"{value:.1%}"
    return f"{value:.1f} req/s" if abs(value) < 10 and value != int(value) else f"{value:.0f} req/s"


def _error_severity(result: LoadResult) -> Severity:
    """critical for a storm of server errors (most requests answered 5xx), else high."""
    server_errors = sum(n for s, n in result.statuses.items() if s >= 500)
    return "critical" if server_errors > result.requests / 2 else "high"


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
                TestResult(
                    name,
                    "passed",
                    category="slo",
                    severity="high" if metric == "error_rate" else "medium",
                    context=info,
                )
            )
            continue
        severity: Severity = "medium"
        if metric == "error_rate":
            severity = _error_severity(result)
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


def _left(ctx: SuiteContext) -> float:
    """Seconds of load the deadline still allows (one kept for the verdicts)."""
    remaining = ctx.remaining()
    return 1e9 if remaining is None else max(0.0, remaining - 1)


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
            warmup_limit = min(5.0, ep.duration_seconds_max, _left(ctx))
            run_load(url, requests=settings.warmup_requests, time_limit=warmup_limit, **args)
        started = time.monotonic()
        limit = min(ep.duration_seconds_max, _left(ctx))
        result = run_load(url, requests=ep.requests, time_limit=limit, **args)
        if not result.requests:
            suite.tests.append(TestResult(label, "skipped", error_message="out of time"))
            continue
        if result.requests and result.transport_errors == result.requests and not suite.tests:
            reachable(ctx, settings.probe_path)  # down since the probe: unavailable
        numbers = result.summary()
        for metric, value in numbers.items():
            suite.measurements[f"{label} {metric}"] = value
        tests, slos = evaluate(label, numbers, ep.slo, ctx.baseline, settings.baseline, result)
        if ep.slo.error_rate_max is None:
            # no error objective: any failed request under load fails (fast 500s must not
            # pass a latency objective unnoticed)
            tests.insert(
                0,
                TestResult(
                    f"{label} without errors under load",
                    "passed" if not result.errors else "failed",
                    severity=_error_severity(result) if result.errors else "high",
                    category="slo",
                    context={
                        "endpoint": label,
                        "requests": str(result.requests),
                        "errors": str(result.errors),
                        **({"first_error": result.first_error} if result.first_error else {}),
                    },
                    error_message=None
                    if not result.errors
                    else f"{result.errors} of {result.requests} requests to {label} failed "
                    f"under load (first: {result.first_error})",
                ),
            )
        for t in tests:
            t.duration = time.monotonic() - started
        suite.tests.extend(tests)
        suite.slos.extend(slos)
        for t in tests:
            if t.error_message:
                t.error_message = ctx.scrub(t.error_message)
            t.context = {k: ctx.scrub(v) for k, v in t.context.items()}
        ctx.log(f"performance {label}: " + ", ".join(f"{k} {v:g}" for k, v in numbers.items()))
    return suite
