"""The S3 server misbehaving (fault matrix, README "Fault matrix"): 500s, slow answers and
reset connections on a fraction of requests, and outages, injected by a proxy
(tests/fixtures/faulty_proxy.py) in front of the moto server. The store's retry layer
(RetryingStorage over botocore's own retries, with the circuit breaker) carries backups,
restores and check through; past its budget a backup fails with one clear line and
leaves nothing half-written, and the next run succeeds."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from blocks.storage import STORE_BOTOCORE_RETRIES
from scholar_ops.cli.common import EXIT_FAILED
from scholar_ops.cli.errors import exit_code
from scholar_ops.monitoring.backup_status import failure_reason
from scholar_ops.testbed.datagen import CompareSink, GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import TransientStorageError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.storage import RetryingStorage, S3Storage
from scholar_ops.vault.storage.breaker import CircuitBreaker
from tests.fixtures.faulty_proxy import FaultyProxy
from tests.fixtures.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server

MB = 1 << 20
PREFIX = "repo"


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[str]:
    name = f"faults-{uuid.uuid4().hex[:16]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name)
    yield name
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", ()):
                client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)
    except Exception:
        pass


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultyProxy]:
    with FaultyProxy(s3_server.endpoint_url, seed=1414) as p:
        yield p


def _client(endpoint: str) -> Any:
    # What the product's client has (blocks.storage): botocore's standard retries, 3 calls.
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(retries=STORE_BOTOCORE_RETRIES, connect_timeout=2, read_timeout=10),
    )


def _storage(endpoint: str, bucket: str, **retry: Any) -> RetryingStorage:
    """The product's stack (blocks.storage.storage_from_s3_bucket): S3Storage in
    RetryingStorage with the default policy (6 attempts, 0.2 s base, 10 s cap) and a
    circuit breaker (5 failures, 30 s), each overridable; a fresh breaker per call, as a
    new flow-run process has."""
    inner = S3Storage(_client(endpoint), bucket, PREFIX)
    breaker = retry.pop("breaker", CircuitBreaker(f"{inner.location} at {endpoint}"))
    return RetryingStorage(inner, breaker=breaker, **retry)


class _Trigger:
    """A stream that calls ``action`` once, when ``at`` bytes have been read."""

    def __init__(self, stream: GeneratedStream, at: int, action: Callable[[], None]) -> None:
        self.stream, self.at, self.action, self.done = stream, at, action, 0

    def _count(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if before < self.at <= self.done:
            self.action()

    def readinto(self, b: memoryview | bytearray, /) -> int:
        n = self.stream.readinto(b)
        self._count(n)
        return n

    def read(self, n: int = -1, /) -> bytes:
        data = self.stream.read(n)
        self._count(len(data))
        return data


def _identical(repo: Repository, snap_id: str, size: int, seed: int) -> bool:
    sink = CompareSink(GeneratedStream(size, seed=seed))
    restore_stream(repo, repo.find_snapshot(snap_id), sink)
    return sink.identical


def test_500s_slow_answers_and_resets_are_ridden_out(
    s3_server: S3Server, bucket: str, proxy: FaultyProxy, master: MasterKey
) -> None:
    proxy.error_rate, proxy.reset_rate, proxy.slow_rate = 0.10, 0.05, 0.10
    proxy.slow_seconds = 0.2
    storage = _storage(proxy.url, bucket)
    repo = Repository.init(storage, master, pack_size=1 * MB)
    first = backup_stream(repo, GeneratedStream(6 * MB, seed=3), component="c", target="t")
    second = backup_stream(repo, GeneratedStream(8 * MB, seed=4), component="c", target="t")
    # restores and check through the same faults
    repo = Repository.open(_storage(proxy.url, bucket), master)
    assert _identical(repo, first.backup_id, 6 * MB, 3)
    assert _identical(repo, second.backup_id, 8 * MB, 4)
    assert check(repo, read_data=1.0).ok
    assert proxy.stats["error"] >= 3 and proxy.stats["reset"] >= 1 and proxy.stats["slow"] >= 3
    # and, straight to the server, the same repository is whole
    direct = Repository.open(_storage(s3_server.endpoint_url, bucket), master)
    assert direct.snapshot_ids() == sorted([first.backup_id, second.backup_id])
    assert check(direct, read_data=1.0).ok


def test_too_many_faults_fail_the_backup_clearly_and_leave_nothing_half_written(
    s3_server: S3Server, bucket: str, proxy: FaultyProxy, master: MasterKey
) -> None:
    repo = Repository.init(_storage(proxy.url, bucket), master, pack_size=1 * MB)
    kept = backup_stream(repo, GeneratedStream(4 * MB, seed=5), component="c", target="t")

    def storm() -> None:
        proxy.error_rate, proxy.reset_rate = 0.85, 0.10

    with pytest.raises(TransientStorageError) as failed:
        backup_stream(
            repo,
            _Trigger(GeneratedStream(12 * MB, seed=6), 2 * MB, storm),
            component="c",
            target="t",
        )
    # What the operator sees: one line naming the bucket, exit code 1 (the metric
    # scholar_ops_backup_success 0 and ScholarOpsBackupFailed follow from the failed run).
    message = str(failed.value)
    assert bucket in message and "\n" not in message, message
    assert "gave up" in message or "circuit" in message.lower()
    assert exit_code(failed.value) == EXIT_FAILED
    assert failure_reason(failed.value) == "storage_unreachable"  # the alert's reason label

    proxy.error_rate, proxy.reset_rate = 0.0, 0.0
    direct = Repository.open(_storage(s3_server.endpoint_url, bucket), master)
    assert direct.snapshot_ids() == [kept.backup_id], "no half snapshot"
    assert check(direct, read_data=1.0).ok
    assert _identical(direct, kept.backup_id, 4 * MB, 5)
    # the next run (a new process: a fresh breaker) succeeds through the proxy
    again = Repository.open(_storage(proxy.url, bucket), master)
    snap = backup_stream(again, GeneratedStream(12 * MB, seed=6), component="c", target="t")
    assert _identical(again, snap.backup_id, 12 * MB, 6)
    assert check(again).ok


def test_an_outage_shorter_than_the_retry_budget_is_ridden_out(
    s3_server: S3Server, bucket: str, proxy: FaultyProxy, master: MasterKey
) -> None:
    # A test-sized budget: the server is away for 3 s; RetryingStorage waits up to
    # min(2 s, 0.25 s * 2**n) (full jitter) between 10 attempts, each of which is 3
    # botocore calls, and the breaker is generous. (Product defaults: README "Fault matrix".)
    storage = _storage(
        proxy.url,
        bucket,
        attempts=10,
        base_delay=0.25,
        max_delay=2.0,
        breaker=CircuitBreaker("outage", threshold=1000, cooldown=1.0),
    )
    repo = Repository.init(storage, master, pack_size=1 * MB)
    snap = backup_stream(
        repo,
        _Trigger(GeneratedStream(8 * MB, seed=7), 3 * MB, lambda: proxy.down(3.0)),
        component="c",
        target="t",
    )
    assert proxy.stats["outages"] == 1
    assert _identical(repo, snap.backup_id, 8 * MB, 7)
    assert check(Repository.open(_storage(s3_server.endpoint_url, bucket), master)).ok


def test_an_outage_longer_than_the_retry_budget_fails_the_backup_and_the_next_run_succeeds(
    s3_server: S3Server, bucket: str, proxy: FaultyProxy, master: MasterKey
) -> None:
    # Product defaults (6 attempts, circuit breaker after 5 consecutive failures): an
    # outage of a minute outlasts them; the backup fails fast once the breaker opens.
    repo = Repository.init(_storage(proxy.url, bucket), master, pack_size=1 * MB)
    kept = backup_stream(repo, GeneratedStream(3 * MB, seed=8), component="c", target="t")
    with pytest.raises(TransientStorageError) as failed:
        backup_stream(
            repo,
            _Trigger(GeneratedStream(8 * MB, seed=9), 2 * MB, lambda: proxy.down(60.0)),
            component="c",
            target="t",
        )
    proxy.up()
    message = str(failed.value)
    assert bucket in message and "\n" not in message, message
    assert exit_code(failed.value) == EXIT_FAILED
    assert failure_reason(failed.value) == "storage_unreachable"
    direct = Repository.open(_storage(s3_server.endpoint_url, bucket), master)
    assert direct.snapshot_ids() == [kept.backup_id]
    assert check(direct).ok
    again = Repository.open(_storage(proxy.url, bucket), master)
    snap = backup_stream(again, GeneratedStream(8 * MB, seed=9), component="c", target="t")
    assert _identical(again, snap.backup_id, 8 * MB, 9)
    assert check(again, read_data=1.0).ok
