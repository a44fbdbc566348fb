"""The suite runner: its own limit, retries only while the service is unavailable."""

from __future__ import annotations

import time

from scholar_ops.functest.context import SuiteContext
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.models import TestResult, TestSuite
from scholar_ops.functest.runner import run_suite


def ctx() -> SuiteContext:
    return SuiteContext(base_url="http://127.0.0.1:9", secrets=("hunter2",))


def test_unavailable_is_retried_with_the_plan_delays_then_reported_unavailable():
    calls: list[float] = []
    waits: list[float] = []

    def down(c: SuiteContext, settings: object) -> TestSuite:
        calls.append(time.monotonic())
        raise ServiceUnavailable("api at http://x", "connection refused")

    suite = run_suite("api", down, None, ctx(), timeout=30, delays=[1, 2, 4], sleep=waits.append)
    assert suite.status == "unavailable"
    assert suite.attempts == 4 and len(calls) == 4
    assert waits == [1, 2, 4]
    assert "connection refused" in (suite.reason or "") and "4 attempt" in (suite.reason or "")


def test_service_back_on_a_retry_gives_the_verdict():
    attempts = []

    def flaky(c: SuiteContext, settings: object) -> TestSuite:
        attempts.append(1)
        if len(attempts) < 3:
            raise ServiceUnavailable("db", "timed out")
        return TestSuite("x", tests=[TestResult("t", "passed")])

    suite = run_suite("database", flaky, None, ctx(), timeout=30, delays=[0, 0, 0])
    assert suite.status == "passed" and suite.attempts == 3 and suite.suite_name == "database"


def test_a_failed_assertion_is_never_retried():
    attempts = []

    def failing(c: SuiteContext, settings: object) -> TestSuite:
        attempts.append(1)
        return TestSuite("api", tests=[TestResult("GET /x", "failed", error_message="500")])

    suite = run_suite("api", failing, None, ctx(), timeout=30, delays=[0, 0])
    assert suite.status == "failed" and len(attempts) == 1 and suite.failed_tests == 1


def test_a_suite_that_outlives_its_limit_is_timed_out():
    def hangs(c: SuiteContext, settings: object) -> TestSuite:
        time.sleep(5)
        return TestSuite("ui")

    started = time.monotonic()
    suite = run_suite("ui", hangs, None, ctx(), timeout=0.3, delays=[])
    assert time.monotonic() - started < 2
    assert suite.status == "timed_out" and "0.3 s" in (suite.reason or "")


def test_a_crash_is_an_error_in_one_scrubbed_line():
    def crashes(c: SuiteContext, settings: object) -> TestSuite:
        raise RuntimeError("cannot log in as bob with hunter2\nsecond line")

    suite = run_suite("api", crashes, None, ctx(), timeout=5, delays=[0])
    assert suite.status == "error"
    assert suite.reason == "RuntimeError: cannot log in as bob with ***"


def test_the_suite_sees_its_deadline():
    seen: dict[str, float | None] = {}

    def look(c: SuiteContext, settings: object) -> TestSuite:
        seen["remaining"] = c.remaining()
        return TestSuite("api")

    run_suite("api", look, None, ctx(), timeout=10, delays=[])
    remaining = seen["remaining"]
    assert remaining is not None and 9 < remaining <= 10
