"""The audit trail's tip (scholar_ops.vault.audit), for the rollback alert.

``scholar_ops_audit_tip_sequence{repo_id}`` is the newest record's sequence number, which
only ever grows (records are never deleted); ``scholar_ops_audit_tip_info{repo_id, hash}``
carries the first 16 hex digits of the SHA-256 of its stored bytes. Someone with write
access to the bucket can delete the newest records without leaving a trace inside the
repository; the number going down is what ``ScholarOpsAuditRollback`` fires on. ``repo_id``
(its first 16 hex digits) makes a repository created anew under the same block a new
series, not a rollback. One listing and one small read.
"""

from __future__ import annotations

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import Sample, gauge
from scholar_ops.vault import audit
from scholar_ops.vault.repository import Repository


def collect_audit(repo: Repository) -> list[Sample]:
    labels = {"repo_id": repo.config.repo_id[:16]}
    tip = audit.tip(repo)
    if tip is None:
        return [gauge(names.AUDIT_TIP_SEQUENCE, 0, labels)]
    seq, sha256 = tip
    return [
        gauge(names.AUDIT_TIP_SEQUENCE, seq, labels),
        gauge(names.AUDIT_TIP_INFO, 1, {**labels, "hash": sha256[:16]}),
    ]
