"""Tasks: one restore drill of one target (scholar_ops.sources.drill does the work).

Each task loads the repository and the target block, drills the latest snapshot of
the block's ``target_name`` and returns ``DrillResult.summary()`` (ok False with the
mismatches when the restored data differs from the manifest). A restore that cannot
be done at all raises; connection errors are retried like restores. Subprocesses
(pg_restore, psql, redis-server) run under the sources' own timeouts.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from scholar_ops.sources.drill import (
    DrillResult,
    drill_chroma,
    drill_files,
    drill_postgres,
    drill_redis,
)
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot
from tasks.common import (
    RESTORE_TASK_OPTIONS,
    load_chroma_target,
    load_files_target,
    load_postgres_target,
    load_redis_target,
    load_repository,
)

#: Most a PostgreSQL drill's pg_restore and COPY may take in all.
POSTGRES_DRILL_TIMEOUT_S = 6 * 3600.0

_OPTIONS: dict[str, Any] = {**RESTORE_TASK_OPTIONS, "cache_policy": NO_CACHE}


def _latest(repo: Repository, component: str, block: Any) -> Snapshot:
    """The block's newest snapshot (under an earlier name of the target until its first)."""
    return repo.find_snapshot(
        "latest",
        component=component,
        target=block.target_name,
        earlier_targets=block.earlier_target_names,
    )


def _report(result: DrillResult) -> dict[str, Any]:
    logger = get_run_logger()
    what = f"{result.component}/{result.target} snapshot {result.snapshot_id[:8]}"
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
    return result.summary()


@task(name="drill-postgres", task_run_name="drill postgres {target}", **_OPTIONS)
def drill_postgres_target(
    repository: str, target: str, scratch_dir: str | None = None
) -> dict[str, Any]:
    """Restore the target's latest snapshot into a scratch database on its server,
    check row counts, drop the database. (``scratch_dir`` is not used: the scratch
    place is a database.)"""
    repo = load_repository(repository).open()
    block = load_postgres_target(target)
    return _report(
        drill_postgres(
            repo,
            block.conninfo(),
            block.target_name,
            snap=_latest(repo, "postgres", block),
            timeout_s=POSTGRES_DRILL_TIMEOUT_S,
        )
    )


@task(name="drill-redis", task_run_name="drill redis {target}", **_OPTIONS)
def drill_redis_target(
    repository: str, target: str, scratch_dir: str | None = None
) -> dict[str, Any]:
    """Start a throwaway redis-server from the latest RDB, verify it, stop it."""
    repo = load_repository(repository).open()
    block = load_redis_target(target)
    snap = _latest(repo, "redis", block)
    return _report(drill_redis(repo, block.target_name, snap=snap, scratch_dir=scratch_dir))


@task(name="drill-chroma", task_run_name="drill chroma {target}", **_OPTIONS)
def drill_chroma_target(
    repository: str, target: str, scratch_dir: str | None = None
) -> dict[str, Any]:
    """Restore the latest Chroma snapshot into a scratch directory, verify it, remove it."""
    repo = load_repository(repository).open()
    block = load_chroma_target(target)
    return _report(
        drill_chroma(
            repo,
            block.target_name,
            snap=_latest(repo, "chroma", block),
            scratch_dir=scratch_dir,
            batch_size=block.batch_size,
        )
    )


@task(name="drill-files", task_run_name="drill files {target}", **_OPTIONS)
def drill_files_target(
    repository: str, target: str, scratch_dir: str | None = None
) -> dict[str, Any]:
    """Restore the latest files snapshot into a scratch directory, verify it, remove it."""
    repo = load_repository(repository).open()
    block = load_files_target(target)
    snap = _latest(repo, "files", block)
    return _report(drill_files(repo, block.target_name, snap=snap, scratch_dir=scratch_dir))
