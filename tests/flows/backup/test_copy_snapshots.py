"""The copy-snapshots flow under the Prefect test harness: two repository blocks with their
own master keys, a copy (the destination created on the first run), a re-run that copies
nothing, the report artifact, and a damaged source failing the run after the report."""

from __future__ import annotations

import io
import os
import uuid

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from pydantic import SecretStr

from blocks.monitoring import PUSHGATEWAY_URL_ENV
from blocks.repository import BackupRepository
from flows.backup.copy_snapshots import CopyFailed, copy_snapshots
from scholar_ops.monitoring import names
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.copy import COPIED_FROM
from scholar_ops.vault.restorer import restore_stream


@pytest.fixture
def blocks(prefect_harness, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    names = {}
    for role in ("source", "destination"):
        key = f"copy-{role}-key-{suffix}"
        Secret(value=SecretStr(f"copy-flow-test-{role}-master-key-{suffix}")).save(key)
        name = f"copy-{role}-{suffix}"
        BackupRepository(local_path=str(tmp_path / role), master_key_secret=key).save(name)
        names[role] = name
    return names


def _markdown(key: str) -> str:
    with get_client(sync_client=True) as client:
        found = [a for a in client.read_artifacts() if a.key == key]
    return str(max(found, key=lambda a: str(a.created)).data)


def _copy_group(pushgateway, destination: str) -> dict[str, float]:
    return {
        name: s.value
        for name, fam in pushgateway.families().items()
        for s in fam.samples
        if s.labels.get("job") == names.JOB_COPY and s.labels.get("destination") == destination
    }


def test_copy_flow_copies_reports_and_reruns_idempotently(blocks, pushgateway, monkeypatch):
    monkeypatch.setenv(PUSHGATEWAY_URL_ENV, pushgateway.url)
    source = BackupRepository.load(blocks["source"]).open(create=True)  # type: ignore[union-attr]
    data = os.urandom(300_000)
    snap = backup_stream(source, io.BytesIO(data), component="redis", target="cache")

    report = copy_snapshots(destination=blocks["destination"], source=blocks["source"])
    assert report is not None and report.ok and report.copied == 1
    dest = BackupRepository.load(blocks["destination"]).open()  # type: ignore[union-attr]
    (copy,) = dest.snapshots()
    assert copy.details[COPIED_FROM]["backup_id"] == snap.backup_id
    out = io.BytesIO()
    restore_stream(dest, copy, out)
    assert out.getvalue() == data
    text = _markdown("copy-report")
    assert "**Copy succeeded**" in text and f"`{snap.short_id}`" in text

    group = _copy_group(pushgateway, blocks["destination"])
    assert group[names.COPY_LAST_STATUS] == 1
    assert group[names.COPY_BYTES] == report.bytes_transferred > 0
    success = group[names.COPY_LAST_SUCCESS]

    again = copy_snapshots(destination=blocks["destination"], source=blocks["source"])
    assert again is not None
    assert (again.copied, again.skipped, again.bytes_transferred) == (0, 1, 0)
    assert _copy_group(pushgateway, blocks["destination"])[names.COPY_LAST_SUCCESS] >= success


def test_a_damaged_source_fails_the_run_after_the_report(blocks, pushgateway, monkeypatch):
    monkeypatch.setenv(PUSHGATEWAY_URL_ENV, pushgateway.url)
    source = BackupRepository.load(blocks["source"]).open(create=True)  # type: ignore[union-attr]
    snap = backup_stream(source, io.BytesIO(os.urandom(100_000)), component="files", target="f")
    (pack,) = [o.name for o in source.storage.list("data/")]
    raw = bytearray(source.storage.get(pack))
    raw[50] ^= 1
    source.storage.put(pack, bytes(raw))
    with pytest.raises(CopyFailed, match=pack):
        copy_snapshots.fn(destination=blocks["destination"], source=blocks["source"])
    text = _markdown("copy-report")
    assert "**Copy failed** for 1 snapshot(s)" in text and pack in text and snap.short_id in text
    group = _copy_group(pushgateway, blocks["destination"])
    assert group[names.COPY_LAST_STATUS] == 0 and names.COPY_LAST_SUCCESS not in group


def test_without_a_destination_block_the_run_says_so_and_completes(blocks):
    assert copy_snapshots(destination="no-such-offsite-block", source=blocks["source"]) is None
    assert "**Second copy not configured**" in _markdown("copy-report")
