"""What a check is and what it reports: Status, Check, CheckResult and HealthReport.

A check is a name, a callable returning a :class:`CheckResult`, a timeout and a
category (``database``, ``service``, ``system`` or ``backup``); a report is the
results of a group of checks and their worst status.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

CATEGORIES = ("database", "service", "system", "backup")


class Status(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def score(self) -> float:
        """The metric value: 1 healthy, 0.5 degraded, 0 unhealthy."""
        return _SCORE[self]


_SCORE = {Status.HEALTHY: 1.0, Status.DEGRADED: 0.5, Status.UNHEALTHY: 0.0}


def worst(statuses: Iterable[Status]) -> Status:
    """The worst status; healthy when there is none."""
    return min(statuses, key=lambda s: _SCORE[s], default=Status.HEALTHY)


@dataclass(frozen=True)
class CheckResult:
    """What a check found. A check's callable may leave ``name`` and ``latency_ms``
    alone: the runner fills them in (the latency is the time the callable took)."""

    status: Status
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None  # one line: why it is not healthy
    name: str = ""
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "latency_ms": round(self.latency_ms, 1),
            "details": dict(self.details),
            "error": self.error,
        }


CheckFn = Callable[[], CheckResult]


@dataclass(frozen=True)
class Check:
    """``fn`` returns a result or raises (an exception is ``unhealthy``, its message the
    error). ``secrets`` are scrubbed from the error and the details; ``details``
    (what is checked, e.g. ``{"target": "host:port"}``) go into every result, also
    when the check fails or times out."""

    name: str
    fn: CheckFn = field(repr=False)
    timeout: float = 5.0
    category: str = "service"
    secrets: tuple[str, ...] = field(default=(), repr=False)
    details: Mapping[str, Any] = field(default_factory=dict)  # in every result (the target)

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", self.name):
            raise ValueError(f"bad check name {self.name!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"check {self.name}: timeout must be > 0, not {self.timeout}")
        if self.category not in CATEGORIES:
            raise ValueError(
                f"check {self.name}: category must be one of {', '.join(CATEGORIES)}, "
                f"not {self.category!r}"
            )


@dataclass(frozen=True)
class HealthReport:
    group: str
    status: Status
    timestamp: float  # Unix time at the start
    duration_ms: float
    checks: Mapping[str, CheckResult]
    latency_ms: Mapping[str, float] | None = None  # the performance group: other checks' latency

    @property
    def http_status(self) -> int:
        return 503 if self.status is Status.UNHEALTHY else 200

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "status": self.status.value,
            "timestamp": datetime.fromtimestamp(self.timestamp, UTC).isoformat(
                timespec="milliseconds"
            ),
            "duration_ms": round(self.duration_ms, 1),
            "checks": {name: r.to_dict() for name, r in self.checks.items()},
        }
        if self.latency_ms is not None:
            doc["latency_ms"] = {k: round(v, 1) for k, v in self.latency_ms.items()}
        return doc
