"""BackupRepository: validation, local and S3 repositories end to end, save/load."""

from __future__ import annotations

import io
import os
import uuid
from typing import Any

import pytest
from prefect.blocks.system import Secret
from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket
from pydantic import SecretStr, ValidationError

from blocks.repository import BackupRepository
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import RepositoryNotFound
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.storage import LocalStorage, RetryingStorage, S3Storage

MASTER = "test-master-key-0123456789abcdef"


@pytest.fixture
def fixed_master_key(monkeypatch):
    """The master key without a Prefect API (the Secret block path is tested below)."""
    monkeypatch.setattr(BackupRepository, "master_key", lambda self: MasterKey.from_string(MASTER))


@pytest.fixture
def master_key_secret(prefect_harness) -> str:
    name = f"master-{uuid.uuid4().hex[:8]}"
    Secret(value=SecretStr(MASTER)).save(name)
    return name


def _round_trip(repo, data: bytes) -> None:
    snap = backup_stream(repo, io.BytesIO(data), component="postgres", target="scholar")
    sink = io.BytesIO()
    assert restore_stream(repo, snap, sink) == len(data)
    assert sink.getvalue() == data


# -- validation ----------------------------------------------------------------


def test_exactly_one_storage_is_required():
    with pytest.raises(ValidationError, match=r"exactly one of local_path.*neither is set"):
        BackupRepository()
    with pytest.raises(ValidationError, match=r"exactly one of local_path.*both are set"):
        BackupRepository(local_path="/srv/backups", s3_bucket=S3Bucket(bucket_name="b"))
    with pytest.raises(ValidationError, match="neither is set"):
        BackupRepository(local_path="")  # an emptied text box in the UI


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"local_path": "s3://bucket/x"}, "configure S3 through s3_bucket"),
        ({"compression": "lz4"}, "compression"),
        ({"compression": "none", "compression_level": 3}, "must be empty"),
        ({"compression": "gzip", "compression_level": 12}, r"out of range for gzip \(1-9\)"),
        ({"compression_level": 0}, r"out of range for zstd \(1-22\)"),
        ({"pack_size_mib": 2}, "pack_size_mib"),
        ({"pack_size_mib": 512}, "pack_size_mib"),
        ({"master_key_secret": " "}, "must name a Secret block"),
        ({"local_pth": "/x"}, r"did you mean 'local_path'\?"),
    ],
)
def test_invalid_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        BackupRepository(**{"local_path": "/srv/backups", **kwargs})


def test_defaults_and_location(tmp_path):
    r = BackupRepository(local_path=str(tmp_path))
    assert (r.master_key_secret, r.compression, r.compression_level) == (
        "scholar-ops-master-key",
        "zstd",
        None,
    )
    assert r.pack_size == 16 << 20
    assert r.location == str(tmp_path)
    assert BackupRepository(local_path="~/backups").location == os.path.expanduser("~/backups")
    assert BackupRepository.get_block_type_slug() == "scholar-ops-backup-repository"


def test_s3_location_names_no_secret():
    r = BackupRepository(
        s3_bucket=S3Bucket(
            bucket_name="backups",
            bucket_folder="/scholar/",
            credentials=AwsCredentials(
                aws_access_key_id="AKIDEXAMPLE",
                aws_secret_access_key=SecretStr("very-secret"),
                aws_client_parameters=AwsClientParameters(
                    endpoint_url="https://user:pass@minio.internal:9000"
                ),
            ),
        )
    )
    assert r.location == "s3://backups/scholar (endpoint https://minio.internal:9000)"
    assert "very-secret" not in repr(r) and "very-secret" not in str(r.model_dump())


# -- local repositories ----------------------------------------------------------


def test_local_repository_is_created_then_found(tmp_path, fixed_master_key):
    r = BackupRepository(
        local_path=str(tmp_path / "repo"),
        compression="gzip",
        compression_level=4,
        pack_size_mib=4,
    )
    assert isinstance(r.storage(), LocalStorage)
    with pytest.raises(RepositoryNotFound):
        r.open()
    created = r.open(create=True)
    assert (created.config.compression, created.config.compression_level) == ("gzip", 4)
    assert created.config.pack_size == 4 << 20
    _round_trip(created, os.urandom(100_000))

    again = r.open()
    assert again.config.repo_id == created.config.repo_id
    assert r.open(create=True).config.repo_id == created.config.repo_id  # no second init
    assert len(again.snapshots()) == 1


def test_local_path_as_file_url(tmp_path, fixed_master_key):
    r = BackupRepository(local_path=f"file://{tmp_path}/repo")
    repo = r.open(create=True)
    assert repo.location == str(tmp_path / "repo") or str(tmp_path / "repo") in repo.location


def test_master_key_from_the_secret_block(tmp_path, master_key_secret):
    r = BackupRepository(local_path=str(tmp_path / "repo"), master_key_secret=master_key_secret)
    assert r.master_key() == MasterKey.from_string(MASTER)
    r.open(create=True)
    assert r.open().config.compression == "zstd"


# -- S3 ----------------------------------------------------------------------------


def test_s3_repository_end_to_end(s3_bucket_block, master_key_secret):
    s3_bucket_block.bucket_folder = "scholar/backups"
    r = BackupRepository(s3_bucket=s3_bucket_block, master_key_secret=master_key_secret)
    storage = r.storage()
    assert isinstance(storage, RetryingStorage) and isinstance(storage.inner, S3Storage)
    assert storage.location == f"s3://{s3_bucket_block.bucket_name}/scholar/backups"

    repo = r.open(create=True)
    data = b"COPY public.papers (id, title) FROM stdin;\n" + os.urandom(300_000)
    _round_trip(repo, data)

    reopened = r.open()
    assert reopened.config.repo_id == repo.config.repo_id
    assert [s.size_bytes for s in reopened.snapshots()] == [len(data)]
    keys = [
        o["Key"]
        for o in s3_bucket_block.credentials.get_s3_client().list_objects_v2(
            Bucket=s3_bucket_block.bucket_name
        )["Contents"]
    ]
    assert keys and all(k.startswith("scholar/backups/") for k in keys)


def test_saved_repository_with_nested_s3_bucket_round_trips(s3_bucket_block, master_key_secret):
    name = f"repo-{uuid.uuid4().hex[:8]}"
    BackupRepository(
        s3_bucket=s3_bucket_block,
        master_key_secret=master_key_secret,
        compression="gzip",
        pack_size_mib=8,
    ).save(name)

    loaded = BackupRepository.load_sync(name)
    assert loaded.s3_bucket is not None
    assert loaded.s3_bucket.bucket_name == s3_bucket_block.bucket_name
    creds = loaded.s3_bucket.credentials
    assert isinstance(creds, AwsCredentials)
    assert creds.aws_secret_access_key is not None
    assert creds.aws_secret_access_key.get_secret_value() == "testing"
    assert creds.aws_client_parameters.endpoint_url == (
        s3_bucket_block.credentials.aws_client_parameters.endpoint_url
    )
    assert (loaded.compression, loaded.pack_size_mib, loaded.master_key_secret) == (
        "gzip",
        8,
        master_key_secret,
    )

    # The loaded block works: it creates the repository, a fresh load opens it.
    repo = loaded.open(create=True)
    assert repo.config.compression == "gzip" and repo.config.pack_size == 8 << 20
    _round_trip(repo, os.urandom(50_000))
    assert BackupRepository.load_sync(name).open().config.repo_id == repo.config.repo_id

    # Saved again after loading (nested blocks are now references) still loads.
    loaded.pack_size_mib = 32
    loaded.save(name, overwrite=True)
    assert BackupRepository.load_sync(name).pack_size_mib == 32


# -- size limit (scholar_ops/vault/space.py) ----------------------------------------


def test_size_limit_is_validated_and_carried_by_the_opened_repository(tmp_path, fixed_master_key):
    assert BackupRepository(local_path="/x").size_limit_bytes is None
    assert BackupRepository(local_path="/x", size_limit="").size_limit is None  # emptied box
    assert BackupRepository(local_path="/x", size_limit=" 500 GB ").size_limit == "500 GB"
    assert BackupRepository(local_path="/x", size_limit="500 GB").size_limit_bytes == 500 * 10**9
    assert BackupRepository(local_path="/x", size_limit="2 GiB").size_limit_bytes == 2 << 30
    for bad in ("500 GiG", "lots", "0 GB", "-5 GB"):
        with pytest.raises(ValidationError, match="size_limit"):
            BackupRepository(local_path="/x", size_limit=bad)
    with pytest.raises(ValidationError, match="did you mean 'size_limit'"):
        misspelt: dict[str, Any] = {"size_limt": "5 GB"}
        BackupRepository(local_path="/x", **misspelt)
    r = BackupRepository(local_path=str(tmp_path / "repo"), size_limit="64 MiB")
    assert r.open(create=True).size_limit == 64 << 20
    assert BackupRepository(local_path=str(tmp_path / "repo")).open().size_limit is None


# -- S3 settings (scholar_ops/vault/storage/s3.py; tested against moto in
#    tests/scholar_ops/vault/storage/test_s3_settings.py) -------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"s3_pack_storage_class": "GLACIER"}, "s3_pack_storage_class"),
        ({"s3_sse": "DES"}, "s3_sse"),
        ({"s3_sse": "AES256", "s3_sse_kms_key_id": "k"}, "needs server-side encryption"),
        ({"s3_object_lock_mode": "GOVERNANCE"}, "both a mode"),
        ({"s3_object_lock_mode": "COMPLIANCE", "s3_object_lock_days": 0}, "s3_object_lock_days"),
        ({"s3_object_lock_mod": "COMPLIANCE"}, "did you mean 's3_object_lock_mode'"),
    ],
)
def test_s3_settings_are_validated(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        BackupRepository(s3_bucket=S3Bucket(bucket_name="b"), **kwargs)


def test_s3_settings_need_an_s3_repository():
    with pytest.raises(ValidationError, match="S3 repository"):
        BackupRepository(local_path="/x", s3_sse="AES256")
    blank: dict[str, Any] = {"s3_sse": "", "s3_object_lock_mode": ""}
    r = BackupRepository(s3_bucket=S3Bucket(bucket_name="b"), **blank)
    assert r.s3_settings() is None  # emptied boxes in the UI
