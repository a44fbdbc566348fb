"""Run one suite with its own time limit and retries for unavailability.

A suite body runs in a worker thread joined with the suite's limit: a suite that
outlives it is reported ``timed_out`` (its thread is abandoned; every blocking call a
suite makes carries its own timeout, so it ends soon after). ``ServiceUnavailable``
raised before any verdict is retried after the plan's exponential delays, then
reported ``unavailable``; an assertion failure is a result, never retried; any other
exception is ``error`` with one line naming it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from scholar_ops.functest.context import SuiteContext
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.models import TestSuite


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _call_with_limit(
    body: Callable[[], TestSuite], limit: float, name: str
) -> tuple[TestSuite | None, BaseException | None, bool]:
    """(result, exception, timed_out) of ``body()`` run in a daemon thread."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = body()
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=target, name=f"suite-{name}", daemon=True)
    thread.start()
    thread.join(max(0.0, limit))
    if thread.is_alive():
        return None, None, True
    return box.get("result"), box.get("error"), False


def run_suite(
    name: str,
    run: Callable[[SuiteContext, Any], TestSuite],
    settings: Any,
    ctx: SuiteContext,
    *,
    timeout: float,
    delays: list[float],
    sleep: Callable[[float], None] = time.sleep,
) -> TestSuite:
    """Run ``run(ctx, settings)`` within ``timeout`` seconds in all, trying again after
    each of ``delays`` while it raises ServiceUnavailable."""
    started = time.monotonic()
    deadline = started + timeout
    attempts = 0
    pending = list(delays)
    while True:
        attempts += 1
        ctx.deadline = deadline
        remaining = deadline - time.monotonic()
        result, error, timed_out = _call_with_limit(lambda: run(ctx, settings), remaining, name)
        if timed_out:
            suite = TestSuite(name, status="timed_out", attempts=attempts)
            suite.reason = f"did not finish within its {timeout:g} s limit"
            return suite.finish(started, time.monotonic())
        if result is not None:
            result.suite_name = name
            result.attempts = attempts
            return result.finish(started, time.monotonic())
        if isinstance(error, ServiceUnavailable):
            delay = pending.pop(0) if pending else None
            if delay is not None and time.monotonic() + delay < deadline:
                ctx.log(f"{name}: {error}; trying again in {delay:g} s")
                sleep(delay)
                continue
            suite = TestSuite(name, status="unavailable", attempts=attempts)
            suite.reason = ctx.scrub(f"{error} (after {attempts} attempt(s))")
            return suite.finish(started, time.monotonic())
        suite = TestSuite(name, status="error", attempts=attempts)
        suite.reason = ctx.scrub(_one_line(error) if error else "the suite returned nothing")
        return suite.finish(started, time.monotonic())
