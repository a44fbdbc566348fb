"""The audit trail's tip as metrics (scholar_ops.monitoring.collectors.audit)."""

from __future__ import annotations

from scholar_ops.monitoring import names
from scholar_ops.monitoring.collectors.audit import collect_audit
from scholar_ops.vault import audit
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository


def test_the_tip_sequence_and_hash_and_a_deleted_tip(storage):
    repo = Repository.init(storage, MasterKey.from_string("collector-master-key-0123456789"))
    rid = repo.config.repo_id[:16]
    audit.append(repo, "check")
    newest = audit.append(repo, "backup", snapshots=["a" * 64])
    seq, info = collect_audit(repo)
    assert (seq.name, seq.value, seq.labels) == (names.AUDIT_TIP_SEQUENCE, 3, {"repo_id": rid})
    assert (info.name, info.value) == (names.AUDIT_TIP_INFO, 1)
    assert info.labels == {"repo_id": rid, "hash": newest.sha256[:16]}
    # Deleting the newest record leaves a chain that verifies: only the number going down
    # (the metric, and the alert on it) tells.
    repo.storage.delete(newest.name)
    assert audit.verify(repo).ok
    assert collect_audit(repo)[0].value == 2
    for info_ in list(repo.storage.list(audit.AUDIT_PREFIX)):
        repo.storage.delete(info_.name)
    assert [(s.name, s.value) for s in collect_audit(repo)] == [(names.AUDIT_TIP_SEQUENCE, 0)]
