"""The copy-snapshots flow under the Prefect test harness: two repository blocks with their
own master keys, a copy (the destination created on the first run), a re-run that copies
nothing, the report artifact, and a damaged source failing the run after the report; the
snapshots a backup left in the source's fallback repository moved back into it first."""

from __future__ import annotations

import io
import logging
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
from scholar_ops.vault.errors import TransientStorageError
from scholar_ops.vault.restorer import restore_stream
from tasks.copies import copy_to_repository


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


def _with_fallback(blocks, tmp_path) -> str:
    """A fallback repository block (its own key) named by the source block; its name."""
    suffix = uuid.uuid4().hex[:8]
    key = f"copy-fallback-key-{suffix}"
    Secret(value=SecretStr(f"copy-flow-test-fallback-master-key-{suffix}")).save(key)
    fallback = f"copy-fallback-{suffix}"
    BackupRepository(local_path=str(tmp_path / "fallback"), master_key_secret=key).save(fallback)
    source = BackupRepository.load(blocks["source"])
    source.fallback_repository = fallback  # type: ignore[union-attr]
    source.save(blocks["source"], overwrite=True)  # type: ignore[union-attr]
    return fallback


def test_the_fallbacks_snapshots_are_moved_back_into_the_primary_first(blocks, tmp_path, caplog):
    fallback = _with_fallback(blocks, tmp_path)
    primary = BackupRepository.load(blocks["source"]).open(create=True)  # type: ignore[union-attr]
    own = backup_stream(primary, io.BytesIO(os.urandom(50_000)), component="redis", target="r")
    spare = BackupRepository.load(fallback).open(create=True)  # type: ignore[union-attr]
    data = os.urandom(200_000)
    away = backup_stream(spare, io.BytesIO(data), component="files", target="docs")

    caplog.set_level(logging.INFO)
    report = copy_snapshots.fn(
        destination=blocks["destination"], source=blocks["source"], monitoring=None
    )
    # moved back: in the primary, restoring byte-identical, its origin the fallback
    (back,) = [s for s in primary.snapshots() if s.backup_id != own.backup_id]
    origin = back.details[COPIED_FROM]
    assert origin["backup_id"] == away.backup_id
    assert origin["repo_id"] == spare.config.repo_id and origin["location"] == spare.location
    out = io.BytesIO()
    restore_stream(primary, back, out)
    assert out.getvalue() == data
    assert [s.backup_id for s in spare.snapshots()] == [away.backup_id]  # left in place
    # then the usual copy: both of the primary's snapshots reach the destination
    assert report is not None and report.ok and report.copied == 2
    dest = BackupRepository.load(blocks["destination"]).open()  # type: ignore[union-attr]
    copied = {s.details[COPIED_FROM]["backup_id"] for s in dest.snapshots()}
    assert copied == {own.backup_id, back.backup_id}
    text = _markdown("copy-report")
    assert "**Copy succeeded**" in text
    assert f"## Moved back from the fallback `{fallback}` → `{blocks['source']}`" in text
    assert "Moved back 1 snapshot(s)" in text and f"`{away.short_id}`" in text
    assert f"moved back 1 snapshot(s) from the fallback repository {fallback}" in caplog.text

    again = copy_snapshots.fn(
        destination=blocks["destination"], source=blocks["source"], monitoring=None
    )
    assert again is not None and (again.copied, again.skipped) == (0, 2)
    assert len(primary.snapshots()) == 2 and len(dest.snapshots()) == 2
    assert "Moved back 0 snapshot(s)" in _markdown("copy-report")


def test_a_primary_still_unreachable_skips_the_move_back_with_a_warning(
    blocks, tmp_path, monkeypatch, caplog
):
    import flows.backup.copy_snapshots as flow_module

    fallback = _with_fallback(blocks, tmp_path)
    primary = BackupRepository.load(blocks["source"]).open(create=True)  # type: ignore[union-attr]
    backup_stream(primary, io.BytesIO(os.urandom(50_000)), component="redis", target="r")

    class Unreachable:
        """The copy task, its primary (the move back's destination) unreachable."""

        def with_options(self, **options):
            def move_back(source, destination, **kwargs):
                assert (source, destination) == (fallback, blocks["source"])
                raise TransientStorageError("503 Service Unavailable")

            return move_back

        def __call__(self, *args, **kwargs):  # the usual copy
            return copy_to_repository(*args, **kwargs)

    monkeypatch.setattr(flow_module, "copy_to_repository", Unreachable())
    report = copy_snapshots.fn(
        destination=blocks["destination"], source=blocks["source"], monitoring=None
    )
    assert report is not None and report.ok and report.copied == 1
    assert "**Not moved back this run**: unreachable (503 Service Unavailable)" in _markdown(
        "copy-report"
    )
    assert any(
        r.levelno == logging.WARNING and "nothing moved back" in r.getMessage()
        for r in caplog.records
    )
