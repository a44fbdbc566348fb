"""Progress on the operator's terminal: a listener of scholar_ops.vault.progress.

Registered by the command line when stderr is a terminal; one line, redrawn at
most twice a second, ended when the operation finishes.
"""

from __future__ import annotations

import sys
import threading
import time

from scholar_ops.vault import progress

_lock = threading.Lock()
_last = 0.0


def terminal(
    what: str, done: int | None, total: int | None, elapsed_s: float, unit: str = "bytes"
) -> None:
    global _last
    if done is None:
        sys.stderr.write("\n")
        sys.stderr.flush()
        return
    now = time.monotonic()
    with _lock:
        if now - _last < 0.5:
            return
        _last = now
        pct = f" {min(99.9, 100 * done / total):5.1f}%" if total else ""
        if unit == "bytes":
            rate = done / 1e6 / max(elapsed_s, 1e-3)
            figures = f"{done / 2**20:,.0f} MiB, {rate:,.0f} MB/s"
        else:
            figures = f"{done:,} of {total:,}" if total else f"{done:,}"
        sys.stderr.write(f"\r{what}:{pct} {figures}   ")
        sys.stderr.flush()


def enable(on: bool = True) -> None:
    if on:
        progress.add_listener(terminal)
    else:
        progress.remove_listener(terminal)
