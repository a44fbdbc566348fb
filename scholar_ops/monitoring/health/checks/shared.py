"""What the check kinds share: the latency gate (a healthy result that took too long
is degraded) and the way they show a ratio."""

from __future__ import annotations

import time
from dataclasses import replace

from scholar_ops.monitoring.health.checks.result import CheckFn, CheckResult, Status


def latency_gate(fn: CheckFn, latency_degraded_ms: float | None) -> CheckFn:
    """``fn``, degraded when healthy but slower than ``latency_degraded_ms``."""
    if latency_degraded_ms is None:
        return fn

    def gated() -> CheckResult:
        t0 = time.monotonic()
        result = fn()
        elapsed = (time.monotonic() - t0) * 1000.0
        if result.status is Status.HEALTHY and elapsed > latency_degraded_ms:
            return replace(
                result,
                status=Status.DEGRADED,
                error=f"slow: {elapsed:.0f} ms (threshold {latency_degraded_ms:g} ms)",
            )
        return result

    return gated


def pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"
