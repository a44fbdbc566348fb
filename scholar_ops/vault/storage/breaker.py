"""A circuit breaker for a storage location: stop hammering a backend that keeps failing.

``RetryingStorage(inner, breaker=...)`` asks the breaker before every attempt and tells it
how each attempt went (only ``TransientStorageError`` counts as a failure: a missing
object or a refused request says the backend is up):

- **closed**: calls go through; ``threshold`` consecutive failures open it.
- **open**: calls fail at once with ``CircuitOpen`` (no request is sent) until
  ``cooldown`` seconds have passed since it opened.
- **half-open**: one call (the probe) goes through, the others still fail at once; the
  probe's success closes the breaker, its failure opens it again for another cool-down.

``CircuitOpen`` is a ``TransientStorageError`` (the backend is unreachable, as far as
anyone knows) that ``RetryingStorage`` never retries: retrying is what the breaker is
there to stop. ``breaker_for(location)`` gives every storage of one location in this
process the same breaker, so the parallel tasks of a backup run share what they learn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from scholar_ops.vault.errors import TransientStorageError

#: Defaults: 5 consecutive failed calls open the breaker for 30 s.
DEFAULT_THRESHOLD = 5
DEFAULT_COOLDOWN_S = 30.0


class CircuitOpen(TransientStorageError):
    """The location failed too often lately: the call was not even tried."""


class CircuitBreaker:
    def __init__(
        self,
        location: str,
        threshold: int = DEFAULT_THRESHOLD,
        cooldown: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        if cooldown < 0:
            raise ValueError(f"cooldown must be >= 0, got {cooldown}")
        self.location = location
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0  # consecutive
        self.opened_at: float | None = None
        self.probing = False
        self.last_error = ""
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.probing or self.clock() - self.opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def before(self) -> None:
        """Raise CircuitOpen unless a call may go through now."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half-open" and not self.probing:
                self.probing = True  # this call is the probe
                return
            assert self.opened_at is not None
            left = max(0.0, self.cooldown - (self.clock() - self.opened_at))
            raise CircuitOpen(
                f"{self.location}: not tried, {self.failures} calls in a row failed (circuit "
                + (
                    "half-open: a probe is under way"
                    if state == "half-open"
                    else f"open for {left:.0f} s more"
                )
                + f"); last error: {self.last_error}"
            )

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self.probing = False

    def failure(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = str(error)
            if self.probing or self.failures >= self.threshold:
                self.opened_at = self.clock()  # (again) for a full cool-down
            self.probing = False


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(
    location: str, threshold: int = DEFAULT_THRESHOLD, cooldown: float = DEFAULT_COOLDOWN_S
) -> CircuitBreaker:
    """The process's breaker for ``location`` (made with these settings the first time)."""
    with _breakers_lock:
        breaker = _breakers.get(location)
        if breaker is None:
            breaker = _breakers[location] = CircuitBreaker(location, threshold, cooldown)
        return breaker
