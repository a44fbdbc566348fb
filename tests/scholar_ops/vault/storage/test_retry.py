"""RetryingStorage against an in-memory Storage that fails on demand."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from scholar_ops.vault.errors import ObjectNotFound, StorageError, TransientStorageError
from scholar_ops.vault.storage import ObjectInfo, RetryingStorage


class FlakyStorage:
    """In-memory storage whose next ``failures`` calls raise ``error`` (then it works)."""

    def __init__(self, failures: int = 0, error: StorageError | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.failures = failures
        self.mid_list_failures = 0
        self.error = error or TransientStorageError("connection reset by peer")
        self.calls: list[str] = []

    @property
    def location(self) -> str:
        return "mem://flaky"

    def _maybe_fail(self, op: str) -> None:
        self.calls.append(op)
        if self.failures > 0:
            self.failures -= 1
            raise self.error

    def put(self, name: str, data: bytes) -> None:
        self._maybe_fail("put")
        self.objects[name] = data

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._maybe_fail("get")
        if name not in self.objects:
            raise ObjectNotFound(name, self.location)
        data = self.objects[name]
        return data[offset:] if length is None else data[offset : offset + length]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._maybe_fail("list")
        for i, (name, data) in enumerate(sorted(self.objects.items())):
            if i == 1 and self.mid_list_failures > 0:
                # fail half-way through the listing, after yielding something
                self.mid_list_failures -= 1
                self.calls.append("list-broke")
                raise TransientStorageError("connection closed mid-listing")
            if name.startswith(prefix):
                yield ObjectInfo(name, len(data))

    def stat(self, name: str) -> ObjectInfo:
        self._maybe_fail("stat")
        if name not in self.objects:
            raise ObjectNotFound(name, self.location)
        return ObjectInfo(name, len(self.objects[name]))

    def delete(self, name: str) -> None:
        self._maybe_fail("delete")
        if name not in self.objects:
            raise ObjectNotFound(name, self.location)
        del self.objects[name]


class Recorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make(
    inner: FlakyStorage, attempts: int = 6, base_delay: float = 0.2, max_delay: float = 10.0
) -> tuple[RetryingStorage, Recorder]:
    sleep = Recorder()
    storage = RetryingStorage(
        inner, attempts=attempts, base_delay=base_delay, max_delay=max_delay, sleep=sleep
    )
    return storage, sleep


@pytest.mark.parametrize("failures", [0, 1, 3, 5])
def test_retries_until_success(failures: int) -> None:
    inner = FlakyStorage()
    inner.objects["config"] = b"abc"
    storage, sleep = make(inner)
    inner.failures = failures
    assert storage.get("config", 1) == b"bc"
    assert inner.calls == ["get"] * (failures + 1)
    assert len(sleep.delays) == failures


@pytest.mark.parametrize("op", ["put", "get", "stat", "delete", "list"])
def test_every_operation_is_retried(op: str) -> None:
    inner = FlakyStorage()
    inner.objects = {"a": b"1", "b": b"22", "c": b"333"}
    storage, sleep = make(inner)
    inner.failures = 2
    if op == "put":
        storage.put("d", b"4444")
        assert inner.objects["d"] == b"4444"
    elif op == "get":
        assert storage.get("b") == b"22"
    elif op == "stat":
        assert storage.stat("c") == ObjectInfo("c", 3)
    elif op == "delete":
        storage.delete("a")
        assert "a" not in inner.objects
    else:
        assert sorted(storage.list(), key=lambda i: i.name) == [
            ObjectInfo("a", 1),
            ObjectInfo("b", 2),
            ObjectInfo("c", 3),
        ]
    assert len(sleep.delays) == 2


def test_list_failing_half_way_is_restarted_whole() -> None:
    inner = FlakyStorage()
    inner.objects = {"keys/a": b"1", "keys/b": b"22", "keys/c": b"333"}
    storage, sleep = make(inner)
    inner.mid_list_failures = 1
    names = [i.name for i in storage.list("keys/")]
    assert names == ["keys/a", "keys/b", "keys/c"]  # no duplicates, nothing missing
    assert inner.calls == ["list", "list-broke", "list"]
    assert len(sleep.delays) == 1


def test_list_errors_surface_at_call_time() -> None:
    inner = FlakyStorage(failures=100)
    storage, _ = make(inner, attempts=2)
    with pytest.raises(TransientStorageError):
        storage.list("keys/")  # not deferred to the first next()


@pytest.mark.parametrize(
    "error",
    [
        ObjectNotFound("config", "mem://flaky"),
        StorageError("access denied"),
    ],
)
def test_permanent_errors_are_not_retried(error: StorageError) -> None:
    inner = FlakyStorage(failures=1, error=error)
    inner.objects["config"] = b"x"
    storage, sleep = make(inner)
    with pytest.raises(type(error)) as info:
        storage.get("config")
    assert info.value is error
    assert inner.calls == ["get"]
    assert sleep.delays == []


def test_value_errors_are_not_retried() -> None:
    class Rejecting(FlakyStorage):
        def put(self, name: str, data: bytes) -> None:
            self.calls.append("put")
            raise ValueError("bad name")

    inner = Rejecting()
    storage, sleep = make(inner)
    with pytest.raises(ValueError):
        storage.put("../x", b"")
    assert inner.calls == ["put"]
    assert sleep.delays == []


def test_missing_object_raises_without_retry() -> None:
    storage, sleep = make(FlakyStorage())
    with pytest.raises(ObjectNotFound):
        storage.stat("nope")
    with pytest.raises(ObjectNotFound):
        storage.delete("nope")
    assert sleep.delays == []


def test_gives_up_after_attempts() -> None:
    inner = FlakyStorage(failures=100, error=TransientStorageError("503 SlowDown"))
    storage, sleep = make(inner, attempts=4)
    with pytest.raises(TransientStorageError) as info:
        storage.put("config", b"x")
    assert inner.calls == ["put"] * 4
    assert len(sleep.delays) == 3  # no sleep after the last attempt
    message = str(info.value)
    assert "503 SlowDown" in message
    assert "4 attempts" in message
    assert isinstance(info.value.__cause__, TransientStorageError)


def test_single_attempt_means_no_retry() -> None:
    inner = FlakyStorage(failures=1)
    storage, sleep = make(inner, attempts=1)
    with pytest.raises(TransientStorageError, match="1 attempts"):
        storage.put("config", b"x")
    assert sleep.delays == []


def test_backoff_delays_are_bounded_full_jitter() -> None:
    inner = FlakyStorage(failures=1000)
    storage, sleep = make(inner, attempts=12, base_delay=0.5, max_delay=4.0)
    with pytest.raises(TransientStorageError):
        storage.stat("x")
    assert len(sleep.delays) == 11
    for n, delay in enumerate(sleep.delays):
        assert 0 <= delay <= min(4.0, 0.5 * 2**n)


def test_backoff_jitter_spreads_and_grows() -> None:
    storage, _ = make(FlakyStorage(), base_delay=0.1, max_delay=10.0)
    first = [storage.delay(0) for _ in range(300)]
    sixth = [storage.delay(5) for _ in range(300)]
    assert max(first) <= 0.1 and max(sixth) <= 3.2
    assert len(set(first)) > 250  # jittered, not constant
    assert sum(sixth) / len(sixth) > 5 * sum(first) / len(first)  # exponential growth
    capped = [storage.delay(30) for _ in range(300)]
    assert max(capped) <= 10.0


def test_on_retry_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[int, str, float]] = []
    inner = FlakyStorage(failures=2, error=TransientStorageError("read timeout"))
    sleep = Recorder()
    storage = RetryingStorage(
        inner,
        sleep=sleep,
        on_retry=lambda attempt, err, delay: seen.append((attempt, str(err), delay)),
    )
    with caplog.at_level(logging.WARNING, logger="scholar_ops.vault.storage"):
        storage.put("config", b"x")
    assert [(a, e) for a, e, _ in seen] == [(1, "read timeout"), (2, "read timeout")]
    assert [d for _, _, d in seen] == sleep.delays
    records = [r for r in caplog.records if r.name == "scholar_ops.vault.storage"]
    assert len(records) == 2
    assert "read timeout" in records[0].getMessage()
    assert "mem://flaky" in records[0].getMessage()


def test_delete_that_succeeded_before_a_transient_error_counts_as_deleted() -> None:
    class LostResponse(FlakyStorage):
        def delete(self, name: str) -> None:
            self.calls.append("delete")
            existed = self.objects.pop(name, None) is not None
            if len(self.calls) == 1:
                raise TransientStorageError("connection reset after the delete was applied")
            if not existed:
                raise ObjectNotFound(name, self.location)

    inner = LostResponse()
    inner.objects["locks/l1"] = b"{}"
    storage, _ = make(inner)
    storage.delete("locks/l1")
    assert inner.calls == ["delete", "delete"]
    assert inner.objects == {}


def test_location_and_validation() -> None:
    inner = FlakyStorage()
    assert RetryingStorage(inner).location == "mem://flaky"
    with pytest.raises(ValueError):
        RetryingStorage(inner, attempts=0)
