"""A backup whose repository is unreachable goes to its fallback repository (Prefect test
harness; the primary is an S3 endpoint on a closed loopback port)."""

from __future__ import annotations

import os
import time
import uuid

from prefect.blocks.system import Secret
from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket
from pydantic import SecretStr

from blocks.files import FilesTarget
from blocks.repository import BackupRepository
from flows.backup.full_backup import full_backup
from scholar_ops.monitoring import names
from scholar_ops.monitoring.backup_status import backup_status_groups
from scholar_ops.sources.process import free_port
from scholar_ops.vault.storage import RetryingStorage


def test_an_unreachable_primary_sends_the_backup_to_the_fallback(
    prefect_harness, tmp_path, monkeypatch
):
    import flows.backup.group as group

    pushed: list[list] = []
    monkeypatch.setattr(
        group,
        "push_backup_status_safely",
        lambda monitoring, results, failures, reasons: pushed.append([results, failures]),
    )
    suffix = uuid.uuid4().hex[:8]
    key = f"master-{suffix}"
    Secret(value=SecretStr("fallback-test-master-key-" + suffix)).save(key)
    fallback = f"fallback-{suffix}"
    BackupRepository(local_path=str(tmp_path / "fallback"), master_key_secret=key).save(fallback)
    primary = f"primary-{suffix}"
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    BackupRepository(
        s3_bucket=S3Bucket(
            bucket_name="unreachable",
            credentials=AwsCredentials(
                aws_access_key_id="testing",
                aws_secret_access_key=SecretStr("testing"),
                region_name="us-east-1",
                aws_client_parameters=AwsClientParameters(endpoint_url=closed),
            ),
        ),
        master_key_secret=key,
        fallback_repository=fallback,
    ).save(primary)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(os.urandom(100_000))
    FilesTarget(path=str(data), label="docs").save(f"files-{suffix}")

    started = time.monotonic()
    (summary,) = full_backup(file_targets=[f"files-{suffix}"], repository=primary, monitoring=None)
    assert time.monotonic() - started < 120
    assert summary.fallback == fallback and summary.target == "docs"
    snaps = BackupRepository.load_sync(fallback).open().snapshots()
    assert [s.backup_id for s in snaps] == [summary.backup_id]
    # pushed as a success, flagged as having used the fallback
    [[results, failures]] = pushed
    assert failures == {}
    (g,) = backup_status_groups(results, failures)
    values = {s.name: s.value for s in g.samples}
    assert values[names.BACKUP_FALLBACK_USED] == 1.0
    assert values[names.BACKUP_LAST_STATUS] == 1.0
    # the primary's circuit breaker opened: later calls are not even sent
    storage = BackupRepository.load_sync(primary).storage()
    assert isinstance(storage, RetryingStorage) and storage.breaker is not None
    assert storage.breaker.state == "open"
