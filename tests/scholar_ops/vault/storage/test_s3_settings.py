"""S3 storage class, server-side encryption and Object Lock (vault.storage.s3.S3ObjectSettings),
against the moto server: what arrives (head_object), what moto enforces, and prune on locked
objects."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from blocks.storage import storage_from_s3_bucket
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import ConfigError, ObjectLocked
from scholar_ops.vault.prune import RetentionPolicy, forget_and_prune, prune_by_policy
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.storage import RetryingStorage, S3Storage
from scholar_ops.vault.storage.s3 import S3ObjectSettings
from tests.fixtures.s3 import S3Server

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0b7c8a9e-1111-2222-3333-444455556666"
LOCKED = S3ObjectSettings(
    storage_class="STANDARD_IA",
    sse="aws:kms",
    sse_kms_key_id=KMS_KEY,
    lock_mode="GOVERNANCE",
    lock_days=1,
)


@pytest.fixture
def lock_bucket(s3_server: S3Server) -> Iterator[str]:
    """A bucket created with Object Lock enabled (and so versioned)."""
    name = f"lock-{uuid.uuid4().hex[:20]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    try:  # GOVERNANCE versions go with the bypass; COMPLIANCE ones stay (small)
        for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
            for v in [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]:
                client.delete_object(
                    Bucket=name,
                    Key=v["Key"],
                    VersionId=v["VersionId"],
                    BypassGovernanceRetention=True,
                )
    except Exception:
        pass


def _storage(s3_server: S3Server, bucket: str, settings: S3ObjectSettings | None = LOCKED):
    return S3Storage(s3_server.client(), bucket, "repo", settings=settings)


def test_put_args_per_object_kind() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    pack = LOCKED.put_args("data/ab/" + "ab" * 32, now)
    assert pack == {
        "StorageClass": "STANDARD_IA",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": KMS_KEY,
        "ObjectLockMode": "GOVERNANCE",
        "ObjectLockRetainUntilDate": now + timedelta(days=1),
    }
    for name in ("index/x", "snapshots/x", "keys/x", "config"):
        args = LOCKED.put_args(name, now)
        assert "StorageClass" not in args  # metadata stays STANDARD
        assert args["ObjectLockMode"] == "GOVERNANCE"
    for name in ("locks/x", "forgotten/x", "wal/1/00000001/x"):
        assert LOCKED.put_args(name, now) == {
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": KMS_KEY,
        }
    assert S3ObjectSettings().put_args("data/ab/x") == {}
    assert S3ObjectSettings(sse="AES256").put_args("config") == {"ServerSideEncryption": "AES256"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"storage_class": "GLACIER"}, "need a restore"),
        ({"storage_class": "DEEP_ARCHIVE"}, "cannot hold packs"),
        ({"sse": "aws:kms:dsse"}, "AES256 or aws:kms"),
        ({"sse": "AES256", "sse_kms_key_id": "k"}, "needs server-side encryption 'aws:kms'"),
        ({"lock_mode": "GOVERNANCE"}, "both a mode"),
        ({"lock_days": 3}, "both a mode"),
        ({"lock_mode": "FOREVER", "lock_days": 3}, "GOVERNANCE or COMPLIANCE"),
        ({"lock_mode": "COMPLIANCE", "lock_days": 0}, "1-36500"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        S3ObjectSettings(**kwargs)


def test_storage_class_sse_and_lock_arrive(s3_server: S3Server, lock_bucket: str) -> None:
    storage = _storage(s3_server, lock_bucket)
    pack = "data/ab/" + "ab" * 32
    for name in (pack, "snapshots/" + "cd" * 32, "locks/" + "ef" * 16):
        storage.put(name, b"payload")
    client = s3_server.client()
    heads = {
        name: client.head_object(Bucket=lock_bucket, Key="repo/" + name)
        for name in (pack, "snapshots/" + "cd" * 32, "locks/" + "ef" * 16)
    }
    assert heads[pack]["StorageClass"] == "STANDARD_IA"
    assert "StorageClass" not in heads["snapshots/" + "cd" * 32]  # STANDARD is not sent back
    for head in heads.values():
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == KMS_KEY
    for name in (pack, "snapshots/" + "cd" * 32):
        assert heads[name]["ObjectLockMode"] == "GOVERNANCE"
        until = heads[name]["ObjectLockRetainUntilDate"]
        assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(days=1)
        assert storage.locked_until(name) is not None
    assert "ObjectLockMode" not in heads["locks/" + "ef" * 16]
    assert storage.locked_until("locks/" + "ef" * 16) is None
    storage.delete("locks/" + "ef" * 16)  # not locked: the store deletes it as usual

    # SSE-S3 and GLACIER_IR
    other = _storage(s3_server, lock_bucket, S3ObjectSettings("GLACIER_IR", "AES256"))
    other.put("data/cd/" + "cd" * 32, b"x")
    head = client.head_object(Bucket=lock_bucket, Key="repo/data/cd/" + "cd" * 32)
    assert (head["StorageClass"], head["ServerSideEncryption"]) == ("GLACIER_IR", "AES256")
    assert other.get("data/cd/" + "cd" * 32) == b"x"  # read back at once


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_locked_objects_cannot_be_deleted_or_overwritten(
    s3_server: S3Server, lock_bucket: str, mode: str
) -> None:
    """What the store does, and what moto (like S3) enforces with the repository's own
    credentials. A plain DELETE on the versioned bucket only adds a delete marker: the
    locked version stays and comes back when the marker is removed."""
    settings = S3ObjectSettings(lock_mode=mode, lock_days=1)  # type: ignore[arg-type]
    storage = RetryingStorage(_storage(s3_server, lock_bucket, settings))
    name, key = "snapshots/" + "ab" * 32, "repo/snapshots/" + "ab" * 32
    storage.put(name, b"the manifest")
    # the store refuses to delete it, naming the date
    with pytest.raises(ObjectLocked, match="retention until") as err:
        storage.delete(name)
    assert err.value.object_name == name
    assert storage.get(name) == b"the manifest"
    client = s3_server.client()
    version = client.head_object(Bucket=lock_bucket, Key=key)["VersionId"]
    # deleting the version itself: refused (403 AccessDenied)
    with pytest.raises(ClientError) as denied:
        client.delete_object(Bucket=lock_bucket, Key=key, VersionId=version)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    # overwriting makes a new version; the locked one stays as it was
    client.put_object(Bucket=lock_bucket, Key=key, Body=b"tampered")
    assert (
        client.get_object(Bucket=lock_bucket, Key=key, VersionId=version)["Body"].read()
        == b"the manifest"
    )
    # a plain DELETE hides it behind a delete marker; removing the marker brings it back
    marker = client.delete_object(Bucket=lock_bucket, Key=key)
    assert marker["DeleteMarker"] is True
    assert list(storage.list("snapshots/")) == []
    client.delete_object(Bucket=lock_bucket, Key=key, VersionId=marker["VersionId"])
    tampered = client.head_object(Bucket=lock_bucket, Key=key)["VersionId"]
    client.delete_object(Bucket=lock_bucket, Key=key, VersionId=tampered)  # not locked
    assert storage.get(name) == b"the manifest"


def _repo(s3_server: S3Server, bucket: str) -> Repository:
    storage = RetryingStorage(_storage(s3_server, bucket))
    master = MasterKey.from_string("test-master-key-0123456789abcdef")
    return Repository.init(storage, master, pack_size=4 << 20)


def test_retention_keeps_locked_snapshots_and_says_so(s3_server: S3Server, lock_bucket: str):
    repo = _repo(s3_server, lock_bucket)
    old = backup_stream(repo, io.BytesIO(b"a" * 100_000), component="redis", target="r")
    new = backup_stream(repo, io.BytesIO(b"b" * 100_000), component="redis", target="r")
    report = prune_by_policy(repo, RetentionPolicy(keep_last=1))
    assert report.snapshots_forgotten == []
    assert list(report.snapshots_locked) == [old.backup_id]
    assert datetime.fromisoformat(report.snapshots_locked[old.backup_id]) > datetime.now(UTC)
    assert {s.backup_id for s in repo.snapshots()} == {old.backup_id, new.backup_id}
    assert repo.forgotten() == {}  # not forgotten-but-present: nothing for check to report
    sink = io.BytesIO()
    restore_stream(repo, repo.load_snapshot(old.backup_id), sink)
    assert sink.getvalue() == b"a" * 100_000
    assert check(repo, read_data=1.0).ok


def test_locked_packs_nobody_needs_are_left_for_later(s3_server: S3Server, lock_bucket: str):
    repo = _repo(s3_server, lock_bucket)
    old = backup_stream(repo, io.BytesIO(b"a" * 100_000), component="redis", target="r")
    new = backup_stream(repo, io.BytesIO(b"b" * 100_000), component="redis", target="r")
    # The old snapshot's own retention shortened (GOVERNANCE, with the bypass right):
    # its manifest can go, its pack and the index objects are still locked.
    client = s3_server.client()
    client.put_object_retention(
        Bucket=lock_bucket,
        Key="repo/snapshots/" + old.backup_id,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": datetime.now(UTC)},
        BypassGovernanceRetention=True,
    )
    assert repo.storage.locked_until("snapshots/" + old.backup_id) is None  # type: ignore[attr-defined]
    report = forget_and_prune(repo, [old.backup_id])
    assert report.snapshots_forgotten == [old.backup_id]
    assert report.snapshots_locked == {}
    assert report.packs_deleted == len(old.packs)
    assert report.objects_locked == len(old.packs) + report.index_objects_replaced
    assert [s.backup_id for s in repo.snapshots()] == [new.backup_id]
    assert check(repo).ok


def test_block_settings_reach_the_storage(s3_bucket_block: Any) -> None:
    from blocks.repository import BackupRepository

    r = BackupRepository(
        s3_bucket=s3_bucket_block,
        s3_pack_storage_class="STANDARD_IA",
        s3_sse="aws:kms",
        s3_sse_kms_key_id=KMS_KEY,
        s3_object_lock_mode="COMPLIANCE",
        s3_object_lock_days=30,
    )
    storage = r.storage()
    assert isinstance(storage, RetryingStorage) and isinstance(storage.inner, S3Storage)
    assert storage.inner.settings == S3ObjectSettings(
        "STANDARD_IA", "aws:kms", KMS_KEY, "COMPLIANCE", 30
    )
    plain = storage_from_s3_bucket(s3_bucket_block)
    assert isinstance(plain.inner, S3Storage) and plain.inner.settings == S3ObjectSettings()
