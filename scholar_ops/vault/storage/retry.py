"""Retries around any Storage: exponential backoff with full jitter.

Only TransientStorageError is retried; ObjectNotFound, StorageError and
ValueError pass straight through. With a ``breaker`` (storage.breaker), every attempt
asks it first and reports to it; ``CircuitOpen`` (the breaker refused the call) is never
retried. Attempt ``n`` (counting from 0) that fails is
followed by a sleep of ``uniform(0, min(max_delay, base_delay * 2**n))``.
"""

from __future__ import annotations

import builtins
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from scholar_ops.vault.errors import ObjectNotFound, TransientStorageError
from scholar_ops.vault.storage.base import (
    ObjectInfo,
    PartialUpload,
    Storage,
    partial_uploads,
    remove_partial,
)
from scholar_ops.vault.storage.breaker import CircuitBreaker, CircuitOpen

if TYPE_CHECKING:
    import logging
    from datetime import datetime


def _log() -> logging.Logger:
    # logging is imported on the first retry: the WAL command pays for none on the way.
    import logging

    return logging.getLogger("scholar_ops.vault.storage")


T = TypeVar("T")

#: ``on_retry(attempt, error, delay)``: ``attempt`` is the 1-based attempt that failed.
RetryCallback = Callable[[int, TransientStorageError, float], None]


class RetryingStorage:
    """Delegate to ``inner``, retrying TransientStorageError up to ``attempts`` calls in all."""

    def __init__(
        self,
        inner: Storage,
        attempts: int = 6,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: RetryCallback | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must be >= 0")
        self.inner = inner
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.on_retry = on_retry
        self.breaker = breaker

    def __repr__(self) -> str:
        return f"RetryingStorage({self.inner!r}, attempts={self.attempts})"

    @property
    def location(self) -> str:
        return self.inner.location

    def delay(self, failed: int) -> float:
        """Full-jitter delay after the 0-based attempt ``failed``."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**failed))

    def _call(
        self, what: str, fn: Callable[[], T], failures: builtins.list[int] | None = None
    ) -> T:
        breaker = self.breaker
        for n in range(self.attempts):
            try:
                if breaker is None:
                    return fn()
                breaker.before()  # CircuitOpen: not tried, not retried
                try:
                    result = fn()
                except TransientStorageError as e:
                    breaker.failure(e)
                    raise
                except BaseException:
                    breaker.success()  # it answered (not found, refused): it is up
                    raise
                breaker.success()
                return result
            except CircuitOpen:
                raise
            except TransientStorageError as e:
                if failures is not None:
                    failures.append(n)
                if n + 1 >= self.attempts:
                    raise TransientStorageError(
                        f"{e} (gave up on {what} after {self.attempts} attempts)"
                    ) from e
                delay = self.delay(n)
                _log().warning(
                    "%s on %s failed (attempt %d of %d), retrying in %.2f s: %s",
                    what,
                    self.inner.location,
                    n + 1,
                    self.attempts,
                    delay,
                    e,
                )
                if self.on_retry is not None:
                    self.on_retry(n + 1, e, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def put(self, name: str, data: bytes) -> None:
        self._call(f"put {name}", lambda: self.inner.put(name, data))

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(f"get {name}", lambda: self.inner.get(name, offset, length))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Materialise inside the retry: a listing that fails half-way is restarted whole.
        items = self._call(f"list {prefix!r}", lambda: builtins.list(self.inner.list(prefix)))
        return iter(items)

    def stat(self, name: str) -> ObjectInfo:
        return self._call(f"stat {name}", lambda: self.inner.stat(name))

    def delete(self, name: str) -> None:
        failures: builtins.list[int] = []
        try:
            self._call(f"delete {name}", lambda: self.inner.delete(name), failures)
        except ObjectNotFound:
            if not failures:
                raise
            # An earlier attempt failed transiently but may have deleted the object
            # before the error: the object is gone, which is what delete asked for.
            _log().info(
                "delete %s on %s: object gone after a failed attempt; treating as deleted",
                name,
                self.inner.location,
            )

    def locked_until(self, name: str) -> datetime | None:
        """The inner storage's Object Lock retention end of ``name`` (None: no lock)."""
        fn = getattr(self.inner, "locked_until", None)
        if not callable(fn):
            return None
        until: datetime | None = self._call(f"stat {name}", lambda: fn(name))
        return until

    def partial_uploads(self) -> builtins.list[PartialUpload]:
        return partial_uploads(self.inner)

    def remove_partial(self, name: str) -> None:
        remove_partial(self.inner, name)
