"""The WAL command's status file: what the metrics export reads about archiving and fetching.

``scholar-ops-wal`` records every push and fetch in a small JSON file (written atomically:
a temporary file renamed over it, under an advisory lock), so failures are visible to
Prometheus and not only in PostgreSQL's log::

    {"push":  {"successes": 812, "failures": 3, "consecutive_failures": 0,
               "last_success": {"name": "0000000100000000000000A3", "time": 1733300000.1},
               "last_failure": {"name": "...", "time": ..., "exit_code": 1, "error": "one line"}},
     "fetch": {... the same ...}}

The error line is the one printed on stderr (never a secret). Where the file lives:
``--status-file``, else ``$SCHOLAR_OPS_WAL_STATUS_FILE``, else
``<config dir>/wal-status.json`` of the OS user running the command (the PostgreSQL
user: ``~postgres/.config/scholar-ops/wal-status.json``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATUS_FILE_ENV = "SCHOLAR_OPS_WAL_STATUS_FILE"
CONFIG_DIR_ENV = "SCHOLAR_OPS_CONFIG_DIR"


def default_status_file() -> Path:
    if value := os.environ.get(STATUS_FILE_ENV):
        return Path(value)
    if value := os.environ.get(CONFIG_DIR_ENV):
        return Path(value) / "wal-status.json"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "scholar-ops" / "wal-status.json"


def read_status(path: Path | None = None) -> dict[str, Any]:
    """The recorded status ({} when nothing was recorded yet or the file is unreadable)."""
    try:
        doc = json.loads(Path(path or default_status_file()).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def record(
    path: Path | None,
    operation: str,
    name: str,
    ok: bool,
    *,
    exit_code: int = 0,
    error: str = "",
    now: float | None = None,
) -> None:
    """Add one push/fetch outcome to the status file. Never raises (status is best effort)."""
    path = Path(path or default_status_file())
    now = time.time() if now is None else now
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(path):
            doc = read_status(path)
            op = doc.setdefault(operation, {})
            if ok:
                op["successes"] = int(op.get("successes", 0)) + 1
                op["consecutive_failures"] = 0
                op["last_success"] = {"name": name, "time": now}
            else:
                op["failures"] = int(op.get("failures", 0)) + 1
                op["consecutive_failures"] = int(op.get("consecutive_failures", 0)) + 1
                op["last_failure"] = {
                    "name": name,
                    "time": now,
                    "exit_code": exit_code,
                    "error": error[:500],
                }
            op.setdefault("successes", 0)
            op.setdefault("failures", 0)
            # One writer at a time (the lock): a fixed temporary name is safe, and saves
            # importing tempfile on every archived segment.
            tmp = path.with_name(f".{path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(doc, f, indent=1)
                os.chmod(tmp, 0o644)  # the metrics export may run as another user
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
