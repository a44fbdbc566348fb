"""The results of a test run: TestResult, TestSuite, ComprehensiveTestReport.

Field names follow the original design (test_name, status, duration, error_message,
timestamp; suite_name, tests, total_tests, passed_tests, failed_tests,
execution_time; test_suites, overall_status, total_execution_time,
system_health_score, recommendations). Plain dataclasses: they cross the task
boundary small (no response bodies, no screenshots: those are files).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

#: passed; failed (an assertion: the thing tested is broken); error (the test itself
#: could not run, e.g. bad data from the previous step); skipped; unavailable (the
#: service could not be reached after retries: not a verdict on it).
TestStatus = Literal["passed", "failed", "error", "skipped", "unavailable"]
SuiteStatus = Literal["passed", "failed", "unavailable", "error", "timed_out", "skipped"]
OverallStatus = Literal["passed", "failed", "degraded", "unavailable"]

#: critical: users cannot use a core function (server error, auth bypass, data lost
#: between stores, a journey broken); high: wrong answers or a broken contract; medium:
#: SLO or performance regression; low: hygiene (missing TTL, console warning).
Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TestResult:
    """One test. ``context``: short strings that locate the failure (endpoint, method,
    status, expected, actual, table, selector, artifact path); never secrets or bodies."""

    __test__ = False  # not a pytest class

    test_name: str
    status: TestStatus
    duration: float = 0.0
    error_message: str | None = None
    timestamp: datetime = field(default_factory=now)
    severity: Severity = "high"
    category: str | None = None
    context: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")


@dataclass
class SloResult:
    """One service-level objective measured by the performance suite."""

    endpoint: str
    metric: str  # p50_ms, p95_ms, p99_ms, error_rate, throughput_rps
    objective: float
    measured: float
    baseline: float | None = None
    passed: bool = True

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "throughput_rps"


@dataclass
class TestSuite:
    __test__ = False

    suite_name: str
    tests: list[TestResult] = field(default_factory=list)
    execution_time: float = 0.0
    status: SuiteStatus = "passed"
    #: why the suite is unavailable/error/timed_out (one line)
    reason: str | None = None
    attempts: int = 1
    slos: list[SloResult] = field(default_factory=list)
    #: files kept for the operator (screenshots, traces, JUnit XML of a pytest suite)
    artifacts: list[str] = field(default_factory=list)
    #: numbers worth reporting (requests, rps, p95 per endpoint, ...), by name
    measurements: dict[str, float] = field(default_factory=dict)

    @property
    def total_tests(self) -> int:
        return len(self.tests)

    @property
    def passed_tests(self) -> int:
        return sum(1 for t in self.tests if t.status == "passed")

    @property
    def failed_tests(self) -> int:
        return sum(1 for t in self.tests if t.status in ("failed", "error"))

    @property
    def skipped_tests(self) -> int:
        return sum(1 for t in self.tests if t.status == "skipped")

    def finish(self, started: float, end: float) -> TestSuite:
        """Set execution_time and, unless already unavailable/error/timed out, the status
        from the tests."""
        self.execution_time = max(0.0, end - started)
        if self.status in ("passed", "failed"):
            self.status = "failed" if self.failed_tests else "passed"
        return self


@dataclass
class ComprehensiveTestReport:
    test_suites: list[TestSuite]
    overall_status: OverallStatus
    total_execution_time: float
    system_health_score: float
    recommendations: list[str]
    target: str = ""
    base_url: str = ""
    started_at: datetime = field(default_factory=now)
    run_id: str = ""
    kind: str = "full"  # full | smoke

    @property
    def failures(self) -> list[tuple[TestSuite, TestResult]]:
        return [
            (s, t) for s in self.test_suites for t in s.tests if t.status in ("failed", "error")
        ]

    def to_dict(self) -> dict[str, Any]:
        def conv(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: conv(v) for k, v in value.items()}
            if isinstance(value, list):
                return [conv(v) for v in value]
            return value

        doc = conv(asdict(self))
        for suite, raw in zip(self.test_suites, doc["test_suites"], strict=True):
            raw["total_tests"] = suite.total_tests
            raw["passed_tests"] = suite.passed_tests
            raw["failed_tests"] = suite.failed_tests
            raw["skipped_tests"] = suite.skipped_tests
        return dict(doc)
