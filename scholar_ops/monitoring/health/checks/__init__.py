"""Health checks of the AI Scholar stack, run concurrently, each within its own timeout.

One module per concept:

- ``result``: what a check is and what it reports (Status, Check, CheckResult,
  HealthReport);
- ``runner``: HealthService, which runs a group's checks concurrently with timeouts
  and aggregates a report (the groups are described there);
- ``scrubbing``: secrets out of errors and details (``scrub``);
- ``shared``: what the check kinds share (the latency gate);
- one module per check kind: ``postgres``, ``redis``, ``chroma``, ``http``
  (backend, frontend and other HTTP endpoints), ``system`` (disk and system),
  ``backups``;
- ``from_config``: the checks a HealthConfig turns on.

The overall status is the worst of the checks. Errors are one line, cut short,
and scrubbed of every secret the check was given (passwords, DSNs, tokens) and
of any URL's password.
"""

from __future__ import annotations

from scholar_ops.monitoring.health.checks.backups import (
    BackupStatusFn,
    backups_check,
    read_backup_status,
)
from scholar_ops.monitoring.health.checks.chroma import chroma_check
from scholar_ops.monitoring.health.checks.from_config import checks_from_config
from scholar_ops.monitoring.health.checks.http import http_check
from scholar_ops.monitoring.health.checks.postgres import postgres_check
from scholar_ops.monitoring.health.checks.redis import redis_check
from scholar_ops.monitoring.health.checks.result import (
    CATEGORIES,
    Check,
    CheckFn,
    CheckResult,
    HealthReport,
    Status,
    worst,
)
from scholar_ops.monitoring.health.checks.runner import GROUPS, HealthService
from scholar_ops.monitoring.health.checks.scrubbing import one_line, scrub
from scholar_ops.monitoring.health.checks.system import disk_check, system_check

__all__ = [
    "CATEGORIES",
    "GROUPS",
    "BackupStatusFn",
    "Check",
    "CheckFn",
    "CheckResult",
    "HealthReport",
    "HealthService",
    "Status",
    "backups_check",
    "checks_from_config",
    "chroma_check",
    "disk_check",
    "http_check",
    "one_line",
    "postgres_check",
    "read_backup_status",
    "redis_check",
    "scrub",
    "system_check",
    "worst",
]
