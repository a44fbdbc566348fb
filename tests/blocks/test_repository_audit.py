"""The audit trail's "who" from the Prefect side: a repository opened through its block
inside a flow run records that run's id (blocks.repository, vault.audit)."""

from __future__ import annotations

import io

from prefect import flow
from prefect.runtime import flow_run

from blocks.repository import BackupRepository
from scholar_ops.vault import audit
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.crypto.keys import MasterKey

MASTER = "audit-block-master-key-0123456789"


def test_a_backup_in_a_flow_run_records_the_run_id(prefect_harness, tmp_path, monkeypatch):
    monkeypatch.setattr(BackupRepository, "master_key", lambda self: MasterKey.from_string(MASTER))
    monkeypatch.delenv(audit.FLOW_RUN_ENV, raising=False)
    block = BackupRepository(local_path=str(tmp_path / "repo"))
    block.open(create=True)

    @flow
    def backup_in_a_run() -> tuple[str, str]:
        repo = block.open()
        snap = backup_stream(repo, io.BytesIO(b"x" * 1000), component="files", target="t")
        return str(flow_run.id), snap.backup_id

    run_id, backup_id = backup_in_a_run()
    records, problems = audit.read_all(block.open())
    assert not problems
    assert [(r.operation, r.flow_run_id) for r in records] == [
        ("init", None),
        ("backup", run_id),
    ]
    assert records[1].snapshots == [backup_id]
    assert block.open().flow_run_id is None  # outside a run
