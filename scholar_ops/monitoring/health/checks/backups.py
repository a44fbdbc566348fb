"""The ``backups`` check: the age of each component's newest snapshot, from a
function or a JSON backup status file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scholar_ops.monitoring.health.checks.result import Check, CheckResult, Status, worst

BackupStatusFn = Callable[[], Mapping[str, float | None]]
"""Returns, per component, the Unix time of its newest snapshot (None: never)."""

_TIME_KEYS = (
    "newest_snapshot_timestamp",
    "newest_snapshot_time",
    "last_success_timestamp",
    "last_success",
    "timestamp",
    "time",
)


def read_backup_status(path: str | Path) -> dict[str, float | None]:
    """A JSON backup status file: per component, the time of its newest snapshot.

    Accepted shapes: ``{"components": {...}}`` or the mapping itself; each value a
    Unix time, an ISO 8601 time, null, or a mapping holding one of those under
    ``newest_snapshot_timestamp``, ``last_success_timestamp``, ``last_success``,
    ``timestamp`` or ``time``.
    """
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(doc, dict) and isinstance(doc.get("components"), dict):
        doc = doc["components"]
    if not isinstance(doc, dict):
        raise ValueError("the backup status file does not hold a mapping of components")
    result: dict[str, float | None] = {}
    for component, value in doc.items():
        if isinstance(value, dict):
            value = next((value[k] for k in _TIME_KEYS if k in value), None)
        result[str(component)] = _as_timestamp(value, str(component))
    return result


def _as_timestamp(value: Any, component: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"backup status of {component}: not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"backup status of {component}: not a time: {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise ValueError(f"backup status of {component}: not a time: {value!r}")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def backups_check(
    source: BackupStatusFn | str | Path,
    *,
    name: str = "backups",
    max_age_seconds: float = 26 * 3600.0,
    components: Mapping[str, float] | None = None,
    timeout: float = 2.0,
    clock: Callable[[], float] = time.time,
) -> Check:
    """Age of each component's newest snapshot, from ``source``: a function or the path
    of a JSON status file (:func:`read_backup_status`).

    ``components`` maps the components to watch to their max age (default: every
    component the source knows, with ``max_age_seconds``). Healthy within the max
    age, degraded up to twice it, unhealthy beyond, or when a component never had
    a snapshot."""
    status_fn: BackupStatusFn
    if callable(source):
        status_fn = source
    else:
        status_path = Path(source)

        def from_file() -> Mapping[str, float | None]:
            if not status_path.exists():
                raise FileNotFoundError("the backup status file does not exist")
            return read_backup_status(status_path)

        status_fn = from_file

    def run() -> CheckResult:
        newest = status_fn()
        watched = dict(components) if components else dict.fromkeys(newest, max_age_seconds)
        if not watched:
            return CheckResult(Status.UNHEALTHY, {}, "no backup status for any component")
        now = clock()
        details: dict[str, Any] = {}
        statuses: list[Status] = []
        problems: list[str] = []
        for component, max_age in watched.items():
            when = newest.get(component)
            if when is None:
                details[component] = {"age_seconds": None, "max_age_seconds": max_age}
                statuses.append(Status.UNHEALTHY)
                problems.append(f"{component}: no snapshot")
                continue
            age = max(0.0, now - when)
            details[component] = {"age_seconds": round(age, 1), "max_age_seconds": max_age}
            if age > 2 * max_age:
                statuses.append(Status.UNHEALTHY)
            elif age > max_age:
                statuses.append(Status.DEGRADED)
            else:
                statuses.append(Status.HEALTHY)
                continue
            problems.append(f"{component}: newest snapshot {_age(age)} old (max {_age(max_age)})")
        return CheckResult(worst(statuses), details, "; ".join(problems) or None)

    return Check(name, run, timeout, "backup")
