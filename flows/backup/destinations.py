"""Where a restore goes when the run names no place: a new place per run.

A restore writes only into a new or empty place (a directory, a database), so one fixed
default would work once and fail with TargetNotEmpty on the next run. The restore flows'
defaults are therefore made per run: ``<restore_root>/<component>/<UTC time>-<run name>``
for directories and ``restored_<UTC time>_<run name>`` for a PostgreSQL database. A place
given explicitly is used as is (it must still be new or empty).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect.context import FlowRunContext

#: Under which the restore flows make their per-run directories by default (their
#: ``restore_root`` parameter).
DEFAULT_RESTORE_ROOT = "/var/lib/scholar-ops/restore"

_PG_IDENTIFIER_MAX = 63


def run_label(now: datetime | None = None) -> str:
    """``20261204T081840Z-crimson-beaver``: UTC time and the flow run's name (a short random
    id outside a flow run), unique per run and easy to find from the run in the UI."""
    ctx = FlowRunContext.get()
    name = ctx.flow_run.name if ctx is not None and ctx.flow_run is not None else ""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or uuid.uuid4().hex[:8]
    return f"{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}-{name}"


def restore_directory(given: str | None, restore_root: str, component: str) -> str:
    """``given`` when set; else a new directory for this run under ``restore_root``."""
    if given:
        return given
    return str(Path(restore_root).expanduser() / component / run_label())


def restore_database(given: str | None) -> str:
    """``given`` when set; else a new database name for this run
    (``restored_20261204t081840z_crimson_beaver``, at most 63 characters)."""
    if given:
        return given
    label = re.sub(r"[^a-z0-9_]+", "_", run_label().lower())
    return f"restored_{label}"[:_PG_IDENTIFIER_MAX].rstrip("_")
