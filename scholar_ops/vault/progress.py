"""Listeners of long operations' progress (a backup's bytes, a check's packs).

Whoever shows progress registers a listener (the command line registers one
that draws on the terminal); whoever makes progress notifies. Nothing is shown
when nobody listens. A listener never fails the operation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

#: ``listener(what, done, total, elapsed_s, unit)``: ``total`` None when unknown, ``done``
#: None at the end; ``unit`` "bytes" or "items".
Listener = Callable[[str, int | None, int | None, float, str], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def notify(
    what: str, done: int | None, total: int | None, elapsed_s: float, unit: str = "bytes"
) -> None:
    """Tell every listener; ``done=None`` says the operation finished."""
    for listener in list(_listeners):
        try:
            listener(what, done, total, elapsed_s, unit)
        except Exception as e:  # showing progress must never break the work
            log.debug("progress listener failed: %s", e)
