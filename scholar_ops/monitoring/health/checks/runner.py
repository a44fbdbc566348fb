"""Running checks: each group's checks run concurrently, each within its own timeout,
and their results make one report whose status is the worst of them.

:class:`HealthService` runs the checks of a group in threads and waits for each
one until its own deadline: a check still running then is reported ``unhealthy``
("timed out after N s") and the report goes out on time, so one slow dependency
never stalls an endpoint. The thread it leaves behind is not restarted while it
runs: later reports join it (one run per check at a time), so a hung dependency
costs one thread, not one per request. Every check also hands its timeout to the
client library it uses, so that thread ends soon after.

Categories and the groups (the endpoints of the original design):

- ``comprehensive``: every check;
- ``database``: category ``database`` (postgres, redis, chroma);
- ``services``: category ``service`` (backend, frontend, other HTTP services,
  and checks added without a category);
- ``performance``: category ``system`` (system, disk) in full, plus the latency
  of every other check (``latency_ms``); degraded when one of them is slower
  than the performance threshold, whatever their own status.

``backups`` (category ``backup``) appears in ``comprehensive`` only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace

from scholar_ops.monitoring.health.checks.from_config import checks_from_config
from scholar_ops.monitoring.health.checks.result import (
    Check,
    CheckResult,
    HealthReport,
    Status,
    worst,
)
from scholar_ops.monitoring.health.checks.scrubbing import sanitize
from scholar_ops.monitoring.health.config import HealthConfig

GROUPS = ("comprehensive", "database", "services", "performance")
_GROUP_CATEGORY = {"database": "database", "services": "service", "performance": "system"}


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    future: Future[CheckResult] | None = None
    started: float = 0.0


class HealthService:
    """Runs checks concurrently; thread-safe (reports may overlap)."""

    def __init__(
        self, checks: Iterable[Check], *, performance_latency_degraded_ms: float = 1000.0
    ) -> None:
        self._checks: dict[str, Check] = {}
        for check in checks:
            if check.name in self._checks:
                raise ValueError(f"two checks are named {check.name!r}")
            self._checks[check.name] = check
        self._slots = {name: _Slot() for name in self._checks}
        self.performance_latency_degraded_ms = performance_latency_degraded_ms

    @classmethod
    def from_config(cls, config: HealthConfig) -> HealthService:
        return cls(
            checks_from_config(config),
            performance_latency_degraded_ms=config.performance_latency_degraded_ms,
        )

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(self._checks.values())

    def names(self, group: str = "comprehensive") -> list[str]:
        """The checks a group's report shows."""
        if group == "comprehensive":
            return list(self._checks)
        if group not in _GROUP_CATEGORY:
            raise ValueError(f"unknown group {group!r} (known: {', '.join(GROUPS)})")
        return [c.name for c in self._checks.values() if c.category == _GROUP_CATEGORY[group]]

    def run(self, names: Collection[str] | None = None) -> dict[str, CheckResult]:
        """Run ``names`` (default: every check) concurrently; returns within the largest
        of their timeouts (plus scheduling), in the order of the checks."""
        selected = [c for c in self._checks.values() if names is None or c.name in names]
        if names is not None:
            unknown = set(names) - set(self._checks)
            if unknown:
                raise ValueError(f"unknown checks: {', '.join(sorted(unknown))}")
        pending = [(check, *self._start(check)) for check in selected]
        results: dict[str, CheckResult] = {}
        for check, future, started in pending:
            remaining = started + check.timeout - time.monotonic()
            try:
                result = future.result(timeout=max(0.0, remaining))
            except FutureTimeout:
                result = None
            # A run that ended past its deadline (its client library's own timeout, or
            # an earlier run joined late) reads the same as one still going.
            if result is None or result.latency_ms > check.timeout * 1000.0:
                result = sanitize(
                    CheckResult(
                        name=check.name,
                        status=Status.UNHEALTHY,
                        details=check.details,
                        latency_ms=check.timeout * 1000.0,
                        error=f"timed out after {check.timeout:g} s",
                    ),
                    check.secrets,
                )
            results[check.name] = result
        return results

    def report(self, group: str = "comprehensive") -> HealthReport:
        shown = self.names(group)
        timestamp = time.time()
        t0 = time.monotonic()
        to_run = list(self._checks) if group == "performance" else shown
        results = self.run(to_run)
        duration_ms = (time.monotonic() - t0) * 1000.0
        checks = {name: results[name] for name in shown}
        if group != "performance":
            return HealthReport(
                group, worst(r.status for r in checks.values()), timestamp, duration_ms, checks
            )
        others = {n: r.latency_ms for n, r in results.items() if n not in checks}
        status = worst(r.status for r in checks.values())
        if any(ms > self.performance_latency_degraded_ms for ms in others.values()):
            status = worst([status, Status.DEGRADED])
        return HealthReport(group, status, timestamp, duration_ms, checks, latency_ms=others)

    def _start(self, check: Check) -> tuple[Future[CheckResult], float]:
        """The check's current run, started now unless one is still going."""
        slot = self._slots[check.name]
        with slot.lock:
            if slot.future is None or slot.future.done():
                future: Future[CheckResult] = Future()
                slot.future, slot.started = future, time.monotonic()
                threading.Thread(
                    target=_execute,
                    args=(check, future, slot.started),
                    name=f"health-check-{check.name}",
                    daemon=True,
                ).start()
            return slot.future, slot.started


def _execute(check: Check, future: Future[CheckResult], started: float) -> None:
    result: CheckResult | None = None
    try:
        result = check.fn()
        if not isinstance(result, CheckResult):
            raise TypeError(f"the check returned {type(result).__name__}, not a CheckResult")
    except Exception as e:
        result = CheckResult(status=Status.UNHEALTHY, error=_describe_error(e))
    finally:
        if result is None:  # BaseException: the thread is going away
            result = CheckResult(status=Status.UNHEALTHY, error="the check was interrupted")
        latency_ms = (time.monotonic() - started) * 1000.0
        result = replace(
            result,
            name=check.name,
            latency_ms=latency_ms,
            details={**check.details, **result.details},
        )
        future.set_result(sanitize(result, check.secrets))


def _describe_error(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
