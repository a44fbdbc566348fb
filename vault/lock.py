"""Locks that live in the store, so processes on different machines exclude each other.

Shared locks (backup, restore, check) coexist; an exclusive lock (prune,
forget, key changes) excludes everything. Acquire = write own lock, list the
others, back off if one conflicts. Holders refresh their lock; one not
refreshed for ``stale_after`` seconds is ignored and may be removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from vault.errors import ObjectNotFound, RepositoryLocked
from vault.storage.base import Storage

LOCK_PREFIX = "locks/"
STALE_AFTER = 30 * 60.0
REFRESH_EVERY = 60.0
log = logging.getLogger("vault.lock")


@dataclass
class LockInfo:
    lock_id: str
    operation: str
    exclusive: bool
    host: str
    pid: int
    created: float
    refreshed: float

    @property
    def name(self) -> str:
        return LOCK_PREFIX + self.lock_id

    def age(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.refreshed

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        since = datetime.fromtimestamp(self.created, UTC).isoformat(timespec="seconds")
        return f"{kind} lock {self.lock_id[:8]} ({self.operation}) held by {self.host} pid {self.pid} since {since}"


def list_locks(storage: Storage) -> list[LockInfo]:
    locks = []
    for info in storage.list(LOCK_PREFIX):
        try:
            locks.append(LockInfo(**json.loads(storage.get(info.name))))
        except ObjectNotFound:
            continue  # released meanwhile
        except (ValueError, TypeError):
            log.warning("ignoring unreadable lock object %s", info.name)
    return locks


class Lock:
    """A held lock; use as a context manager. Refreshes itself in a background thread."""

    def __init__(
        self,
        storage: Storage,
        operation: str,
        exclusive: bool = False,
        *,
        wait: float = 0.0,
        stale_after: float = STALE_AFTER,
        refresh_every: float = REFRESH_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.stale_after = stale_after
        self.refresh_every = refresh_every
        self.wait = wait
        self.clock = clock
        now = clock()
        self.info = LockInfo(
            lock_id=os.urandom(16).hex(),
            operation=operation,
            exclusive=exclusive,
            host=socket.gethostname(),
            pid=os.getpid(),
            created=now,
            refreshed=now,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        self.storage.put(self.info.name, json.dumps(asdict(self.info)).encode())

    def _conflicts(self) -> list[LockInfo]:
        now = self.clock()
        out = []
        for other in list_locks(self.storage):
            if other.lock_id == self.info.lock_id or other.age(now) > self.stale_after:
                continue
            if self.info.exclusive or other.exclusive:
                out.append(other)
        return out

    def acquire(self) -> Lock:
        deadline = time.monotonic() + self.wait
        delay = 0.05
        while True:
            self._write()
            conflicts = self._conflicts()
            if not conflicts:
                break
            self._remove()
            if time.monotonic() >= deadline:
                raise RepositoryLocked(
                    f"repository {self.storage.location} is locked: {conflicts[0].describe()}. "
                    "Wait for it to finish; if that process is gone, run `scholar-ops unlock` "
                    "(stale locks expire after "
                    f"{int(self.stale_after // 60)} minutes)"
                )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 5.0)
        self._thread = threading.Thread(target=self._refresh_loop, daemon=True, name="vault-lock")
        self._thread.start()
        return self

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_every):
            self.info.refreshed = self.clock()
            try:
                self._write()
            except Exception as e:  # refreshing is best effort; staleness is the safety net
                log.warning("could not refresh %s: %s", self.info.name, e)

    def _remove(self) -> None:
        with contextlib.suppress(ObjectNotFound):
            self.storage.delete(self.info.name)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._remove()

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_locks(
    storage: Storage, *, all_locks: bool = False, stale_after: float = STALE_AFTER
) -> int:
    """Remove stale locks (or every lock with all_locks=True). Returns how many were removed."""
    removed = 0
    now = time.time()
    for lock in list_locks(storage):
        if all_locks or lock.age(now) > stale_after:
            try:
                storage.delete(lock.name)
                removed += 1
            except ObjectNotFound:
                pass
    return removed
