"""Tasks on one target of any component: back it up, drill its latest snapshot.

The component's target block (blocks.targets) binds the target's settings into
the engine's backup and drill; these tasks add what every component shares:
the repository, progress, logs, retries and a small typed result.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.base import BackupRequest, TargetBlock
from blocks.repository import BackupRepository
from blocks.targets import load_target
from scholar_ops.sources.drill import DrillResult
from scholar_ops.vault.errors import TransientStorageError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import BackupType, Snapshot
from scholar_ops.vault.summary import BackupSummary, human_bytes
from tasks.common import (
    BACKUP_RUN_NAME,
    BACKUP_TASK_OPTIONS,
    DRILL_RUN_NAME,
    RESTORE_TASK_OPTIONS,
    load_repository,
)
from tasks.concurrency import dump_slot
from tasks.progress import reported_progress
from tasks.space import ensure_room


@task(name="backup-target", task_run_name=BACKUP_RUN_NAME, **BACKUP_TASK_OPTIONS)
def backup_target(
    repository: str,
    component: str,
    target: str,
    backup_type: BackupType = "incremental",
    retention_days: float | None = None,
    group: str | None = None,
) -> BackupSummary:
    """Back the target block ``target`` of ``component`` up as one snapshot; its summary."""
    logger = get_run_logger()
    block = load_target(component, target)
    repo_block = load_repository(repository)
    request = (backup_type, retention_days, group)
    fallback = None
    try:
        snap = _back_up_into(repo_block, block, request, logger)
    except Exception as e:
        fallback = repo_block.fallback_repository
        if fallback is None or not storage_unreachable(e):
            raise
        # The primary stayed unreachable after its retries (or its breaker is open):
        # the fallback repository takes the backup; `scholar-ops copy` moves it back later.
        logger.warning(
            "repository %s is unreachable (%s): backing %s/%s up into the fallback "
            "repository %s instead",
            repo_block.location,
            e,
            component,
            block.target_name,
            fallback,
        )
        snap = _back_up_into(load_repository(fallback), block, request, logger)
    for problem in [*snap.details.get("warnings", []), *snap.details.get("errors", [])]:
        logger.warning("%s/%s: %s", component, block.target_name, problem)
    summary = replace(BackupSummary.of(snap), fallback=fallback)
    logger.info(
        "snapshot %s (%s): %s read, %s new, %s stored in %s",
        summary.short_id,
        summary.items,
        human_bytes(summary.size_bytes),
        human_bytes(summary.new_bytes),
        human_bytes(summary.stored_bytes),
        summary.timing(),
    )
    return summary


def storage_unreachable(exc: BaseException) -> bool:
    """The repository's storage failed transiently (after its retries) or its circuit
    breaker refused the call: anywhere in the chain of causes."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, TransientStorageError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _back_up_into(
    repo_block: BackupRepository,
    block: TargetBlock,
    request: tuple[BackupType, float | None, str | None],
    logger: Any,
) -> Snapshot:
    backup_type, retention_days, group = request
    component, name = block.component, block.target_name
    repo = repo_block.open(create=True)
    logger.info(
        "%s backup of %s %s into %s", backup_type, component, block.describe(), repo_block.location
    )
    # the repository's size limit: retention first, RepositoryFull if still too full
    ensure_room(repo_block, repo, block, backup_type, logger)
    # one of the few slots of its database server, shared by every worker
    with (
        dump_slot(component, block, logger),
        reported_progress(
            f"backup {name}", f"{backup_type} backup of {component} {name}", block.estimate_bytes()
        ) as progress,
    ):
        return block.backup(repo, BackupRequest(backup_type, retention_days, group, progress))


def latest_of(repo: Repository, block: TargetBlock) -> Snapshot:
    """The block's newest snapshot (under an earlier name of the target until its first)."""
    return repo.find_snapshot(
        "latest",
        component=block.component,
        target=block.target_name,
        earlier_targets=block.earlier_target_names,
    )


@task(
    name="drill-target",
    task_run_name=DRILL_RUN_NAME,
    **{**RESTORE_TASK_OPTIONS, "cache_policy": NO_CACHE},
)
def drill_target(
    repository: str, component: str, target: str, scratch_dir: str | None = None
) -> DrillResult:
    """Restore the target's latest snapshot into a scratch place, verify it, remove it.

    A drill that restored but found differences returns them (``ok`` False); one that
    could not restore raises. Subprocesses run under the engine's own timeouts."""
    logger = get_run_logger()
    repo = load_repository(repository).open()
    block = load_target(component, target)
    result = block.drill(repo, latest_of(repo, block), scratch_dir)
    what = f"{component}/{result.target} snapshot {result.snapshot_id[:8]}"
    for w in result.warnings:
        logger.warning("%s: %s", what, w)
    if result.ok:
        logger.info(
            "drill of %s (%.0f s old) verified in %.1f s: %s",
            what,
            result.snapshot_age_s,
            result.duration_s,
            "; ".join(result.checked),
        )
    else:
        logger.error(
            "drill of %s: the restored data differs from the snapshot: %s",
            what,
            "; ".join(result.mismatches[:5]),
        )
    return result
