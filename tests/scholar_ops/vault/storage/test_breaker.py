"""The circuit breaker in the storage wrapper (vault.storage.breaker, RetryingStorage)."""

from __future__ import annotations

import pytest

from scholar_ops.vault.errors import ObjectNotFound, TransientStorageError
from scholar_ops.vault.storage import RetryingStorage
from scholar_ops.vault.storage.breaker import CircuitBreaker, CircuitOpen, breaker_for
from scholar_ops.vault.storage.memory import MemoryStorage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Flaky(MemoryStorage):
    """Fails every call with a transient error while ``down``; counts the calls."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.calls = 0

    def stat(self, name: str):
        self.calls += 1
        if self.down:
            raise TransientStorageError("connection refused")
        return super().stat(name)


def _wrapped(flaky: Flaky, clock: Clock, attempts: int = 3) -> RetryingStorage:
    breaker = CircuitBreaker("s3://b/p", threshold=4, cooldown=30, clock=clock)
    return RetryingStorage(flaky, attempts=attempts, sleep=lambda s: None, breaker=breaker)


def test_opens_after_n_failures_then_fails_fast_without_calling():
    flaky, clock = Flaky(), Clock()
    storage = _wrapped(flaky, clock)
    with pytest.raises(TransientStorageError, match="after 3 attempts"):
        storage.stat("config")
    assert flaky.calls == 3 and storage.breaker is not None
    assert storage.breaker.state == "closed"
    # the fourth consecutive failure opens it; the next attempt is not even tried
    with pytest.raises(CircuitOpen, match=r"4 calls in a row failed \(circuit open for 30 s"):
        storage.stat("config")
    assert flaky.calls == 4
    assert storage.breaker.state == "open"
    for _ in range(10):
        with pytest.raises(CircuitOpen, match="connection refused"):
            storage.stat("config")
    assert flaky.calls == 4  # no hammering


def test_half_open_lets_one_probe_through():
    flaky, clock = Flaky(), Clock()
    storage = _wrapped(flaky, clock, attempts=1)
    breaker = storage.breaker
    assert breaker is not None
    for _ in range(4):
        with pytest.raises(TransientStorageError):
            storage.stat("config")
    assert breaker.state == "open"
    clock.now = 29.9
    with pytest.raises(CircuitOpen):
        storage.stat("config")
    clock.now = 30.0
    assert breaker.state == "half-open"
    # the probe fails: open again for a whole cool-down
    with pytest.raises(TransientStorageError) as err:
        storage.stat("config")
    assert not isinstance(err.value, CircuitOpen) and flaky.calls == 5
    assert breaker.state == "open"
    clock.now = 59.0
    with pytest.raises(CircuitOpen):
        storage.stat("config")
    # the next probe succeeds: closed again
    clock.now = 60.0
    flaky.down = False
    flaky.put("config", b"x")
    assert storage.stat("config").size == 1
    assert breaker.state == "closed" and breaker.failures == 0


def test_a_probe_in_flight_keeps_the_others_out():
    clock = Clock()
    breaker = CircuitBreaker("x", threshold=1, cooldown=5, clock=clock)
    breaker.failure(TransientStorageError("down"))
    clock.now = 5
    breaker.before()  # the probe
    with pytest.raises(CircuitOpen, match="a probe is under way"):
        breaker.before()
    breaker.success()
    breaker.before()


def test_answers_that_are_not_transient_count_as_up():
    flaky, clock = Flaky(), Clock()
    flaky.down = False
    storage = _wrapped(flaky, clock, attempts=1)
    for _ in range(10):
        with pytest.raises(ObjectNotFound):
            storage.stat("missing")
    assert storage.breaker is not None and storage.breaker.state == "closed"


def test_one_breaker_per_location():
    assert breaker_for("s3://one/x at e") is breaker_for("s3://one/x at e")
    assert breaker_for("s3://one/x at e") is not breaker_for("s3://two/x at e")
    with pytest.raises(ValueError):
        CircuitBreaker("x", threshold=0)
