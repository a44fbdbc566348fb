"""The repository's size limit before a backup (scholar_ops/vault/space.py).

``ensure_room`` runs in the backup task before the target's backup opens its writer:
when the repository block has a ``size_limit`` and the backup is expected to pass it,
retention runs first (the apply-retention deployment's default policy, never forgetting a
target's newest snapshot, then prune and the WAL no kept base backup needs), under the
repository's prune slot; if that is not enough, RepositoryFull fails the target (the
run's reason ``repository_full``, the alert ``ScholarOpsRepositoryFull``).
"""

from __future__ import annotations

import logging
from typing import Any

from blocks.base import TargetBlock
from blocks.repository import BackupRepository
from scholar_ops.sources.postgres.archive import prune_wal_archives
from scholar_ops.vault.errors import RepositoryLocked
from scholar_ops.vault.prune import DEFAULT_POLICY, PruneReport, RetentionPolicy
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.space import SpaceEstimate, ensure_space, make_room
from tasks.concurrency import prune_slot

#: How long making room waits for the exclusive lock (other backups hold shared ones).
ROOM_LOCK_WAIT_S = 60.0


def ensure_room(
    repo_block: BackupRepository,
    repo: Repository,
    target: TargetBlock,
    backup_type: str,
    logger: Any = None,
    policy: RetentionPolicy = DEFAULT_POLICY,
) -> SpaceEstimate | None:
    """RepositoryFull when a backup of ``target`` will not fit, even after retention."""
    if repo.size_limit is None:
        return None
    logger = logger or logging.getLogger(__name__)

    def room() -> PruneReport:
        try:
            with prune_slot(repo_block.location, logger):
                report = make_room(repo, policy, wait=ROOM_LOCK_WAIT_S, on_wait=logger.warning)
                report.wal_files_deleted = prune_wal_archives(repo)
        except RepositoryLocked as e:
            # Backups running now hold shared locks; their data stays, the check decides.
            logger.warning("retention could not run to make room: %s", e)
            return PruneReport()
        logger.warning(
            "retention made room in %s: %d snapshot(s) forgotten, %d pack(s) deleted",
            repo_block.location,
            len(report.snapshots_forgotten),
            report.packs_deleted,
        )
        return report

    return ensure_space(
        repo,
        component=target.component,
        target=target.target_name,
        backup_type=backup_type,
        source_bytes=target.estimate_bytes(),
        room=room,
    )
