"""Progress on the operator's terminal for long operations.

Tasks report progress here as well as to Prefect artifacts; nothing is shown
unless the command line turned it on (stderr is a terminal).
"""

from __future__ import annotations

import sys
import threading
import time

_enabled = False
_lock = threading.Lock()
_last = 0.0


def enable(on: bool = True) -> None:
    global _enabled
    _enabled = on


def report(what: str, done_bytes: int, total_bytes: int | None, elapsed_s: float) -> None:
    global _last
    if not _enabled:
        return
    now = time.monotonic()
    with _lock:
        if now - _last < 0.5:
            return
        _last = now
        rate = done_bytes / 1e6 / max(elapsed_s, 1e-3)
        pct = f" {min(99.9, 100 * done_bytes / total_bytes):5.1f}%" if total_bytes else ""
        sys.stderr.write(f"\r{what}:{pct} {done_bytes / 2**20:,.0f} MiB, {rate:,.0f} MB/s   ")
        sys.stderr.flush()


def done() -> None:
    if _enabled:
        sys.stderr.write("\n")
        sys.stderr.flush()
