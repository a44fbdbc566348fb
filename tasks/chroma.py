"""Task: restore a Chroma snapshot into a store, or into a new embedded directory."""

from __future__ import annotations

from dataclasses import asdict

from prefect import get_run_logger, task

from blocks.chroma import ChromaTarget
from blocks.targets import load_block
from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.chroma.restore import Existing, restore_chroma, restore_chroma_physical
from scholar_ops.vault.errors import ConfigError
from scholar_ops.vault.summary import RestoreSummary, plural
from tasks.common import RESTORE_TASK_OPTIONS, load_repository, restore_run_name


@task(
    name="restore-chroma-target",
    task_run_name=restore_run_name("chroma"),
    **RESTORE_TASK_OPTIONS,
)
def restore_chroma_target(
    repository: str,
    snapshot: str = "latest",
    target: str | None = None,
    directory: str | None = None,
    source_target: str | None = None,
    collections: list[str] | None = None,
    existing: Existing = "fail",
) -> RestoreSummary:
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
            load_block(ChromaTarget, target).source()
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
    figures = asdict(result)
    for key in ("destination", "snapshot_id", "duration_s", "mismatches", "warnings"):
        figures.pop(key, None)
    restored = (
        f"{plural(len(result.collections), 'collection')}, {plural(result.records, 'record')}"
    )
    restored += "".join(f", {len(v)} {k}" for k, v in (("skipped", result.skipped),
                                                        ("replaced", result.replaced)) if v)  # fmt: skip
    if not result.ok:
        raise RuntimeError(result.summary())  # one line: count of differences, first three
    return RestoreSummary(
        component="chroma",
        snapshot_id=snap.backup_id,
        destination=result.destination,
        restored=restored,
        verified=(
            "verified (every record and the digests of ids, documents, metadata, embeddings; "
            "index recall of exact nearest neighbours)"
        ),
        duration_s=result.duration_s,
        figures=figures,
        mismatches=[],
        warnings=list(result.warnings),
    )
