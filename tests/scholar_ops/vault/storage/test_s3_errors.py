"""How S3Storage reports failures: against the moto server, and with canned botocore errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.stub import Stubber

from blocks.storage import storage_from_s3_bucket
from scholar_ops.sources.process import free_port
from scholar_ops.vault.errors import ObjectNotFound, StorageError, TransientStorageError
from scholar_ops.vault.storage import RetryingStorage, S3Storage, Storage
from tests.fixtures.s3 import S3Server

OPERATIONS: dict[str, Callable[[Storage], object]] = {
    "put": lambda s: s.put("config", b"x"),
    "get": lambda s: s.get("config"),
    "ranged get": lambda s: s.get("config", 5, 10),
    "empty get": lambda s: s.get("config", 5, 0),
    "list": lambda s: list(s.list("keys/")),
    "stat": lambda s: s.stat("config"),
    "delete": lambda s: s.delete("config"),
}


@pytest.mark.parametrize("op", OPERATIONS)
def test_missing_bucket_is_a_storage_error_naming_the_bucket(s3_server: S3Server, op: str) -> None:
    storage = S3Storage(s3_server.client(), "no-such-bucket-here", "repo")
    with pytest.raises(StorageError) as info:
        OPERATIONS[op](storage)
    assert not isinstance(info.value, ObjectNotFound | TransientStorageError)
    assert "no-such-bucket-here" in str(info.value)
    assert "NoSuchBucket" in str(info.value)


@pytest.mark.parametrize("op", OPERATIONS)
def test_unreachable_endpoint_is_transient(op: str) -> None:
    import boto3
    from botocore.config import Config

    port = free_port()  # nothing listens there
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1}),
    )
    storage = S3Storage(client, "bucket")
    started = time.monotonic()
    with pytest.raises(TransientStorageError) as info:
        OPERATIONS[op](storage)
    assert time.monotonic() - started < 5
    assert "s3://bucket/" in str(info.value)
    assert "EndpointConnectionError" in str(info.value)


def test_unreachable_endpoint_through_retrying_storage_gives_up() -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(connect_timeout=1, retries={"total_max_attempts": 1}),
    )
    delays: list[float] = []
    storage = RetryingStorage(S3Storage(client, "bucket"), attempts=3, sleep=delays.append)
    with pytest.raises(TransientStorageError, match="after 3 attempts"):
        storage.stat("config")
    assert len(delays) == 2


def test_block_glue(s3_server: S3Server, s3_bucket_block: Any) -> None:
    s3_bucket_block.bucket_folder = "backups/pg/"
    storage = storage_from_s3_bucket(s3_bucket_block)
    assert isinstance(storage, RetryingStorage)
    name = s3_bucket_block.bucket_name
    assert storage.location == f"s3://{name}/backups/pg"
    storage.put("keys/k1", b"key")
    raw = s3_server.client().get_object(Bucket=name, Key="backups/pg/keys/k1")
    assert raw["Body"].read() == b"key"
    assert [i.name for i in storage.list()] == ["keys/k1"]


def test_prefix_is_stripped_and_isolated(s3_server: S3Server, s3_bucket_block: Any) -> None:
    client = s3_server.client()
    bucket = s3_bucket_block.bucket_name
    a = S3Storage(client, bucket, "repo-a")
    b = S3Storage(client, bucket, "/repo-ab/")
    root = S3Storage(client, bucket)
    a.put("config", b"a")
    b.put("config", b"bb")
    client.put_object(Bucket=bucket, Key="repo-a/folder/", Body=b"")  # console "folder"
    assert root.location == f"s3://{bucket}"
    assert b.location == f"s3://{bucket}/repo-ab"
    assert [(i.name, i.size) for i in a.list()] == [("config", 1)]
    assert [(i.name, i.size) for i in b.list()] == [("config", 2)]
    assert sorted(i.name for i in root.list()) == ["repo-a/config", "repo-ab/config"]


# -- canned errors (botocore Stubber): the mapping of codes and statuses ----------


def stubbed(method: str, code: str, status: int, **params: Any) -> tuple[S3Storage, Stubber]:
    import boto3

    client = boto3.client(
        "s3",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    stubber = Stubber(client)
    stubber.add_client_error(
        method, service_error_code=code, service_message=f"{code} says no", http_status_code=status
    )
    stubber.activate()
    return S3Storage(client, "bkt", "pre"), stubber


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("ServiceUnavailable", 503),
        ("InternalError", 500),
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("RequestTimeout", 400),
        ("SomethingNew", 502),
        ("TooManyRequests", 429),
    ],
)
def test_transient_codes(code: str, status: int) -> None:
    storage, _ = stubbed("put_object", code, status)
    with pytest.raises(TransientStorageError) as info:
        storage.put("data/ab/ab01", b"x")
    assert code in str(info.value)
    assert "s3://bkt/pre/data/ab/ab01" in str(info.value)


@pytest.mark.parametrize(
    ("code", "status"),
    [("AccessDenied", 403), ("InvalidAccessKeyId", 403), ("EntityTooLarge", 400)],
)
def test_permanent_codes(code: str, status: int) -> None:
    storage, _ = stubbed("get_object", code, status)
    with pytest.raises(StorageError) as info:
        storage.get("config")
    assert not isinstance(info.value, TransientStorageError | ObjectNotFound)
    assert code in str(info.value)
    assert "s3://bkt/pre/config" in str(info.value)
    assert str(status) in str(info.value)


def test_no_such_key_is_object_not_found() -> None:
    storage, _ = stubbed("get_object", "NoSuchKey", 404)
    with pytest.raises(ObjectNotFound) as info:
        storage.get("index/i1")
    assert info.value.object_name == "index/i1"
    assert "s3://bkt/pre" in str(info.value)


def test_invalid_range_reads_as_empty() -> None:
    storage, stubber = stubbed("get_object", "InvalidRange", 416)
    assert storage.get("config", 100, 5) == b""
    stubber.assert_no_pending_responses()


def test_no_credentials_is_a_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.config import Config

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.session.Session().client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(StorageError, match="credentials") as info:
        S3Storage(client, "bkt").put("config", b"x")
    assert not isinstance(info.value, TransientStorageError)
