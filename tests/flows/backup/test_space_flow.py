"""A repository block with a size limit, through the backup flow (Prefect test harness)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from pydantic import SecretStr

from blocks.files import FilesTarget
from blocks.repository import BackupRepository
from flows.backup.full_backup import full_backup
from flows.backup.group import BackupFailed
from scholar_ops.vault.space import repository_size

MB = 1 << 20


def test_a_backup_past_the_size_limit_fails_clearly_and_reports_repository_full(
    prefect_harness, tmp_path, monkeypatch
):
    import flows.backup.group as group

    pushed: list[dict[str, str]] = []
    monkeypatch.setattr(
        group,
        "push_backup_status_safely",
        lambda monitoring, results, failures, reasons: pushed.append(dict(reasons)),
    )
    suffix = uuid.uuid4().hex[:8]
    Secret(value=SecretStr("space-test-master-key-" + suffix)).save(f"master-{suffix}")
    repo_name = f"repo-{suffix}"
    BackupRepository(
        local_path=str(tmp_path / "repo"), master_key_secret=f"master-{suffix}", size_limit="5 MB"
    ).save(repo_name)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(os.urandom(3 * MB))
    FilesTarget(path=str(data), label="docs").save(f"files-{suffix}")

    first = full_backup(file_targets=[f"files-{suffix}"], repository=repo_name, monitoring=None)
    assert first[0].target == "docs" and pushed == [{}]
    before = _packs_and_snapshots(tmp_path / "repo")
    # The second full backup adds about 3 MB again: 6 MB > 5 MB, and retention keeps the
    # only snapshot (the newest of its target, and held for 90 days).
    with pytest.raises(BackupFailed) as err:
        full_backup(file_targets=[f"files-{suffix}"], repository=repo_name, monitoring=None)
    message = str(err.value)
    assert "files/docs" in message and "repository full" in message
    assert str(tmp_path / "repo") in message and "size limit" in message
    assert "4.8 MiB size limit" in message  # 5 MB, as human_bytes writes it
    assert "size_limit" in message  # what to do
    assert pushed[-1] == {f"files/files-{suffix}": "repository_full"}
    repo = BackupRepository.load_sync(repo_name).open()
    assert len(repo.snapshots()) == 1
    assert repository_size(repo.storage) <= 5 * 10**6
    # nothing of the refused backup was written (retention rewrote the index, no more)
    assert _packs_and_snapshots(tmp_path / "repo") == before


def _packs_and_snapshots(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for sub in ("data", "snapshots")
        for p in (root / sub).rglob("*")
        if p.is_file()
    )
