"""The restore-chroma flow: restore one Chroma snapshot, then publish the restore report."""

from __future__ import annotations

from prefect import flow

from blocks.names import DEFAULT_REPOSITORY_BLOCK
from flows.backup.destinations import DEFAULT_RESTORE_ROOT, restore_directory
from scholar_ops.sources.chroma.restore import Existing
from scholar_ops.vault.summary import RestoreSummary
from tasks.artifacts import publish_restore_report
from tasks.chroma import restore_chroma_target


@flow(name="restore-chroma", log_prints=True)
def restore_chroma(
    target: str | None = None,
    directory: str | None = None,
    snapshot: str = "latest",
    repository: str = DEFAULT_REPOSITORY_BLOCK,
    source_target: str | None = None,
    collections: list[str] | None = None,
    existing: Existing = "fail",
    restore_root: str = DEFAULT_RESTORE_ROOT,
) -> RestoreSummary:
    """Restore a Chroma snapshot into the store of the ``target`` block or a new embedded
    ``directory`` (``existing`` collections: fail, replace or skip); then compare record
    counts and nearest neighbours with the source. With neither: a new directory for this
    run, ``<restore_root>/chroma/<UTC time>-<run>``."""
    if target is None:
        directory = restore_directory(directory, restore_root, "chroma")
    result = restore_chroma_target(
        repository, snapshot, target, directory, source_target, collections, existing
    )
    publish_restore_report(result)
    return result
