"""Tasks on the repository as a whole: catalog, check, retention, key rotation."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.tasks import exponential_backoff

from blocks.secrets import load_master_key
from scholar_ops.sources.postgres.archive import check_wal_archives, prune_wal_archives
from scholar_ops.vault.checker import CheckReport, check
from scholar_ops.vault.errors import WrongKey
from scholar_ops.vault.known import default_state_dir
from scholar_ops.vault.prune import PruneReport, RetentionPolicy, prune_by_policy
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.summary import catalog_row
from tasks.common import load_repository, retry_if_transient
from tasks.concurrency import prune_slot

_RETRY: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
}


@task(name="open-repository", **_RETRY)
def open_repository(repository: str, create: bool = True) -> str:
    """Open (and, the first time, create) the repository; returns its location.

    Backup flows run it once before their parallel backup tasks, so that those never
    race to create the same new repository."""
    block = load_repository(repository)
    block.open(create=create)
    return block.location


@task(name="list-snapshots", **_RETRY)
def list_snapshots(
    repository: str,
    component: str | None = None,
    backup_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """The catalog: snapshots' metadata (no entries), oldest first, filtered."""
    repo = load_repository(repository).open()
    rows = []
    for snap in repo.snapshots():
        if component and snap.component != component:
            continue
        if backup_type and snap.backup_type != backup_type:
            continue
        if since and snap.time < since:
            continue
        if until and snap.time > until:
            continue
        rows.append({**snap.metadata(), "row": catalog_row(snap)})
    return rows


@task(name="check-repository", task_run_name="check repository {repository}", **_RETRY)
def check_repository(repository: str, read_data: float = 0.0) -> CheckReport:
    logger = get_run_logger()
    repo = load_repository(repository).open()
    # This worker remembers the snapshots it saw: one vanishing later is reported.
    report = check(repo, read_data=read_data, known_state=default_state_dir())
    # Point-in-time recovery: the WAL from every base backup on must be continuous.
    report.problems += check_wal_archives(repo, repo.scan_snapshots()[0])
    for notice in report.notices:
        logger.warning("%s", notice)
    logger.info(
        "check: %d snapshots, %d packs, %d read back, %d problems",
        report.snapshots,
        report.packs,
        report.packs_read,
        len(report.problems),
    )
    return report


@task(name="prune-snapshots", task_run_name="prune repository {repository}", **_RETRY)
def prune_snapshots(repository: str, policy: RetentionPolicy, dry_run: bool = False) -> PruneReport:
    """Forget the snapshots ``policy`` does not keep, then delete the data none needs.

    One prune per repository at a time, across workers (tasks.concurrency); a dry run,
    which deletes nothing, does not wait for it."""
    logger = get_run_logger()
    block = load_repository(repository)
    with nullcontext() if dry_run else prune_slot(block.location, logger):
        repo = block.open()
        report = prune_by_policy(
            repo,
            policy,
            dry_run=dry_run,
            wait=600,
            on_wait=logger.warning,  # in the run's log: who holds the lock
        )
        if not dry_run:
            # and the archived WAL that no kept base backup needs any more
            report.wal_files_deleted = prune_wal_archives(repo)
    for sid, until in report.snapshots_locked.items():  # S3 Object Lock: kept, said so
        logger.warning("snapshot %s kept: under S3 Object Lock retention until %s", sid[:8], until)
    return report


@task(name="rewrap-key-sets")
def rewrap_key_sets(repository: str, new_master_key_secret: str) -> list[str]:
    """Rewrap the data keys with the key in another Secret block; no data is rewritten.
    Nothing to do (an empty list) when an earlier run rewrapped them already."""
    block = load_repository(repository)
    new = load_master_key(new_master_key_secret)
    try:
        repo = block.open()
    except WrongKey:
        Repository.open(block.storage(), new)  # WrongKey again when neither key opens it
        return []
    return repo.rotate_master_key(new)
