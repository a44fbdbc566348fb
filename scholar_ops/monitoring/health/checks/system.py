"""The host checks: ``disk`` (used space of filesystems) and ``system`` (CPU and
memory), both through psutil."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scholar_ops.monitoring.health.checks.result import Check, CheckResult, Status, worst
from scholar_ops.monitoring.health.checks.shared import pct


def disk_check(
    paths: Sequence[str | Path],
    *,
    name: str = "disk",
    degraded_ratio: float = 0.80,
    unhealthy_ratio: float = 0.95,
    timeout: float = 2.0,
) -> Check:
    """Used space of each path's filesystem (used / (used + free), as ``df``):
    degraded above ``degraded_ratio``, unhealthy above ``unhealthy_ratio``."""
    shown_paths = [str(p) for p in paths]
    if not shown_paths:
        raise ValueError("disk_check: no path")

    def run() -> CheckResult:
        import psutil

        details: dict[str, Any] = {}
        statuses: list[Status] = []
        problems: list[str] = []
        for path in shown_paths:
            try:
                usage = psutil.disk_usage(path)
            except OSError as e:
                statuses.append(Status.UNHEALTHY)
                problems.append(f"{path}: {e.strerror or e}")
                details[path] = {"error": e.strerror or str(e)}
                continue
            ratio = usage.used / (usage.used + usage.free) if usage.used + usage.free else 0.0
            details[path] = {
                "used_ratio": round(ratio, 4),
                "free_bytes": usage.free,
                "total_bytes": usage.total,
            }
            if ratio > unhealthy_ratio:
                statuses.append(Status.UNHEALTHY)
                problems.append(f"{path} {pct(ratio)} used (> {pct(unhealthy_ratio)})")
            elif ratio > degraded_ratio:
                statuses.append(Status.DEGRADED)
                problems.append(f"{path} {pct(ratio)} used (> {pct(degraded_ratio)})")
        return CheckResult(worst(statuses), details, "; ".join(problems) or None)

    return Check(name, run, timeout, "system")


def system_check(
    *,
    name: str = "system",
    cpu_degraded_ratio: float = 0.95,
    memory_degraded_ratio: float = 0.90,
    memory_unhealthy_ratio: float = 0.97,
    timeout: float = 2.0,
) -> Check:
    """CPU over a short interval and memory in use (psutil): degraded when the CPU is
    above ``cpu_degraded_ratio`` or memory above ``memory_degraded_ratio``,
    unhealthy when memory is above ``memory_unhealthy_ratio``."""

    def run() -> CheckResult:
        import psutil

        cpu = psutil.cpu_percent(interval=min(0.2, timeout / 4)) / 100.0
        memory = psutil.virtual_memory()
        mem_ratio = (memory.total - memory.available) / memory.total if memory.total else 0.0
        details = {
            "cpu_usage_ratio": round(cpu, 4),
            "cpu_count": psutil.cpu_count() or 0,
            "load1": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "memory_used_ratio": round(mem_ratio, 4),
            "memory_available_bytes": memory.available,
            "memory_total_bytes": memory.total,
        }
        statuses: list[Status] = []
        problems: list[str] = []
        if mem_ratio > memory_unhealthy_ratio:
            statuses.append(Status.UNHEALTHY)
            problems.append(f"memory {pct(mem_ratio)} used (> {pct(memory_unhealthy_ratio)})")
        elif mem_ratio > memory_degraded_ratio:
            statuses.append(Status.DEGRADED)
            problems.append(f"memory {pct(mem_ratio)} used (> {pct(memory_degraded_ratio)})")
        if cpu > cpu_degraded_ratio:
            statuses.append(Status.DEGRADED)
            problems.append(f"CPU {pct(cpu)} busy (> {pct(cpu_degraded_ratio)})")
        return CheckResult(worst(statuses), details, "; ".join(problems) or None)

    return Check(name, run, timeout, "system")
