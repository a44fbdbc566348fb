"""Locks that live in the store, so processes on different machines exclude each other.

Shared locks (backup, restore, check) coexist; an exclusive lock (prune,
forget, key changes) excludes everything. Acquire = write own lock, list the
others, back off if one conflicts. Holders refresh their lock; one not
refreshed for ``stale_after`` seconds is stale, and so is a lock of a process
on this host that is gone (its pid is not running, or runs another program
since). Stale locks are ignored by others and removed by ``remove_locks``
(``scholar-ops unlock``).

Lock objects are sealed like every other object (bound to their name): the
storage provider sees that a lock exists, not who holds it or why.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from scholar_ops.vault.errors import IntegrityError, ObjectNotFound, RepositoryLocked
from scholar_ops.vault.storage.base import Storage

LOCK_PREFIX = "locks/"
LOCK_KIND = "lock"
STALE_AFTER = 30 * 60.0
REFRESH_EVERY = 60.0
#: How often a waiting process says again who it waits for.
WAIT_NOTICE_EVERY = 60.0
log = logging.getLogger("scholar_ops.vault.lock")


class LockCodec(Protocol):
    """Seals and opens lock objects (the repository, with its data keys)."""

    def seal(self, name: str, payload: bytes) -> bytes: ...

    def unseal(self, name: str, data: bytes, kind: str = "") -> bytes: ...


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if it does not run."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # NoSuchProcess, AccessDenied, psutil missing: treat as not running
        return None


@dataclass
class LockInfo:
    lock_id: str
    operation: str
    exclusive: bool
    host: str
    pid: int
    created: float
    refreshed: float
    user: str = ""
    process_start: float | None = None  # tells a dead holder from a reused pid

    @property
    def name(self) -> str:
        return LOCK_PREFIX + self.lock_id

    def age(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.refreshed

    def holder_gone(self) -> bool:
        """True when the holder ran on this host and no longer runs."""
        if self.host != socket.gethostname():
            return False
        started = _process_start(self.pid)
        if started is None:
            return True
        return self.process_start is not None and abs(started - self.process_start) > 1.0

    def stale_reason(self, stale_after: float, now: float | None = None) -> str | None:
        """Why the lock no longer counts (None while it does)."""
        if self.holder_gone():
            return f"pid {self.pid} on {self.host} is gone"
        age = self.age(now)
        if age > stale_after:
            return f"not refreshed for {int(age // 60)} minutes"
        return None

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        since = datetime.fromtimestamp(self.created, UTC).isoformat(timespec="seconds")
        who = f"{self.user}@{self.host}" if self.user else self.host
        return f"{kind} lock {self.lock_id[:8]} ({self.operation}) held by {who} pid {self.pid} since {since}"


@dataclass
class LockListing:
    locks: list[LockInfo] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (object name, why)


def list_locks(storage: Storage, codec: LockCodec) -> LockListing:
    listing = LockListing()
    for info in storage.list(LOCK_PREFIX):
        try:
            doc = json.loads(codec.unseal(info.name, storage.get(info.name), LOCK_KIND))
            lock = LockInfo(**doc)
            if lock.name != info.name:
                raise ValueError(f"it describes lock {lock.lock_id}")
            listing.locks.append(lock)
        except ObjectNotFound:
            continue  # released meanwhile
        except (IntegrityError, ValueError, TypeError) as e:
            listing.unreadable.append((info.name, str(e)))
    return listing


def _unreadable_message(name: str, why: str) -> str:
    return (
        f"unreadable lock object {name} ({why}); if no other scholar-ops process uses this "
        "repository, remove it with `scholar-ops unlock --force`"
    )


class Lock:
    """A held lock; use as a context manager. Refreshes itself in a background thread.

    ``wait`` seconds are spent waiting for conflicting locks (a warning names the
    holder when the wait starts and every minute); then RepositoryLocked names it.
    """

    def __init__(
        self,
        storage: Storage,
        codec: LockCodec,
        operation: str,
        exclusive: bool = False,
        *,
        wait: float = 0.0,
        stale_after: float = STALE_AFTER,
        refresh_every: float = REFRESH_EVERY,
        clock: Callable[[], float] = time.time,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.storage = storage
        self.codec = codec
        self.stale_after = stale_after
        self.refresh_every = refresh_every
        self.wait = wait
        self.clock = clock
        self.on_wait = on_wait or (lambda message: log.warning("%s", message))
        now = clock()
        pid = os.getpid()
        self.info = LockInfo(
            lock_id=os.urandom(16).hex(),
            operation=operation,
            exclusive=exclusive,
            host=socket.gethostname(),
            pid=pid,
            created=now,
            refreshed=now,
            user=_user(),
            process_start=_process_start(pid),
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        payload = json.dumps(asdict(self.info)).encode()
        self.storage.put(self.info.name, self.codec.seal(self.info.name, payload))

    def _conflicts(self) -> list[str]:
        """Descriptions of the live locks this one conflicts with."""
        now = self.clock()
        listing = list_locks(self.storage, self.codec)
        out = [_unreadable_message(n, why) for n, why in listing.unreadable]
        for other in listing.locks:
            if other.lock_id == self.info.lock_id:
                continue
            if not (self.info.exclusive or other.exclusive):
                continue
            if other.stale_reason(self.stale_after, now) is None:
                out.append(other.describe())
        return out

    def acquire(self) -> Lock:
        deadline = time.monotonic() + self.wait
        delay = 0.05
        told: tuple[str, float] | None = None  # (holder, when) last announced
        while True:
            self._write()
            conflicts = self._conflicts()
            if not conflicts:
                break
            self._remove()
            left = deadline - time.monotonic()
            if left <= 0:
                raise RepositoryLocked(
                    f"repository {self.storage.location} is locked: {conflicts[0]}. Wait for it "
                    "to finish; if that process is gone, run `scholar-ops unlock` (locks of "
                    "processes gone from their host, and locks not refreshed for "
                    f"{int(self.stale_after // 60)} minutes, are stale)"
                )
            if (
                told is None
                or told[0] != conflicts[0]
                or time.monotonic() - told[1] >= WAIT_NOTICE_EVERY
            ):
                self.on_wait(
                    f"waiting up to {int(left)} s for the repository lock "
                    f"({self.info.operation}): {conflicts[0]}"
                )
                told = (conflicts[0], time.monotonic())
            time.sleep(min(delay, max(0.0, left)) * random.uniform(0.5, 1.0))
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


@dataclass
class RemovedLock:
    name: str
    description: str
    live: bool  # removed although it was not stale (force)


def remove_locks(
    storage: Storage,
    codec: LockCodec,
    *,
    force: bool = False,
    stale_after: float = STALE_AFTER,
) -> list[RemovedLock]:
    """Remove stale locks; with ``force`` every lock (live and unreadable ones too)."""
    removed: list[RemovedLock] = []
    now = time.time()
    listing = list_locks(storage, codec)
    candidates: list[tuple[str, str, bool]] = []
    for lock in listing.locks:
        reason = lock.stale_reason(stale_after, now)
        if reason is not None:
            candidates.append((lock.name, f"{lock.describe()}: {reason}", False))
        elif force:
            candidates.append((lock.name, lock.describe(), True))
    if force:
        candidates += [
            (n, f"unreadable lock object ({why})", True) for n, why in listing.unreadable
        ]
    for name, description, live in candidates:
        try:
            storage.delete(name)
        except ObjectNotFound:
            continue
        removed.append(RemovedLock(name, description, live))
    from scholar_ops.vault.repository import Repository  # here: it imports this module lazily

    if isinstance(codec, Repository):  # the audit trail (vault.audit) needs the repository
        from scholar_ops.vault import audit

        audit.append_quietly(
            codec,
            "unlock",
            details={
                "force": force,
                "removed": len(removed),
                "live_removed": sum(r.live for r in removed),
            },
        )
    return removed


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry for this uid (containers)
        return str(os.getuid())
