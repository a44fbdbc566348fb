"""Tasks: back up and restore one Chroma target."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task

from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.chroma.dump import backup_chroma
from scholar_ops.sources.chroma.restore import Existing, restore_chroma, restore_chroma_physical
from scholar_ops.vault.errors import ConfigError
from scholar_ops.vault.snapshot import BackupType
from tasks.common import (
    BACKUP_TASK_OPTIONS,
    RESTORE_TASK_OPTIONS,
    load_chroma_target,
    load_repository,
    run_backup_into,
)


@task(name="backup-chroma", task_run_name="backup chroma {target}", **BACKUP_TASK_OPTIONS)
def backup_chroma_target(
    repository: str,
    target: str,
    backup_type: BackupType = "incremental",
    retention_days: float | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """Export every collection (or copy the embedded directory) as one snapshot."""
    block = load_chroma_target(target)
    source = block.source()
    kind = "physical copy" if block.physical else "logical export"
    return run_backup_into(
        repository,
        block.target_name,
        "chroma",
        backup_type,
        f"{source.describe()} ({kind})",
        0,
        lambda repo, progress: backup_chroma(
            repo,
            source,
            target=block.target_name,
            backup_type=backup_type,
            collections=block.collections,
            batch_size=block.batch_size,
            physical=block.physical,
            retention_days=retention_days,
            group=group,
            progress=progress,
        ),
    )


@task(name="restore-chroma", task_run_name="restore chroma {snapshot}", **RESTORE_TASK_OPTIONS)
def restore_chroma_target(
    repository: str,
    snapshot: str = "latest",
    target: str | None = None,
    directory: str | None = None,
    source_target: str | None = None,
    collections: list[str] | None = None,
    existing: Existing = "fail",
) -> dict[str, Any]:
    """Restore a Chroma snapshot into the store of the ``target`` block, or into a new
    embedded directory ``directory``; then compare counts and nearest neighbours.

    A logical snapshot goes into either; a physical copy only into ``directory``
    (it must be missing or empty)."""
    if (target is None) == (directory is None):
        raise ConfigError(
            "restore-chroma needs exactly one of target (a Chroma target block) or directory "
            "(a new embedded Chroma directory)"
        )
    logger = get_run_logger()
    repo = load_repository(repository).open()
    snap = repo.find_snapshot(
        snapshot, component="chroma", target=source_target if snapshot == "latest" else None
    )
    physical = snap.details.get("kind") == "physical"
    if physical:
        if directory is None:
            raise ConfigError(
                f"snapshot {snap.short_id} is a physical copy of a Chroma directory: restore it "
                "into a new directory (directory=...), then point the application at it"
            )
        if collections is not None:
            raise ConfigError("a physical copy is restored whole: drop collections")
        logger.info("restoring physical chroma snapshot %s into %s", snap.short_id, directory)
        result = restore_chroma_physical(repo, snap, directory)
    else:
        dest = (
            load_chroma_target(target).source()
            if target is not None
            else ChromaSource.embedded(str(directory))
        )
        logger.info(
            "restoring chroma snapshot %s (%s, %s) into %s (existing collections: %s)",
            snap.short_id,
            snap.target,
            snap.timestamp,
            dest.describe(),
            existing,
        )
        result = restore_chroma(repo, snap, dest, collections=collections, existing=existing)
    out = {"component": "chroma", **asdict(result)}
    if result.mismatches:
        raise RuntimeError(
            f"restored chroma data differs from snapshot {snap.short_id}: "
            + "; ".join(result.mismatches[:5])
        )
    return out
