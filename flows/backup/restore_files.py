"""The restore-files flow: restore one files snapshot, then publish the restore report."""

from __future__ import annotations

from prefect import flow

from blocks.names import DEFAULT_REPOSITORY_BLOCK
from flows.backup.destinations import DEFAULT_RESTORE_ROOT, restore_directory
from scholar_ops.vault.summary import RestoreSummary
from tasks.artifacts import publish_restore_report
from tasks.files import restore_files_target


@flow(name="restore-files", log_prints=True)
def restore_files(
    destination: str | None = None,
    snapshot: str = "latest",
    repository: str = DEFAULT_REPOSITORY_BLOCK,
    source_target: str | None = None,
    paths: list[str] | None = None,
    overwrite: bool = False,
    restore_root: str = DEFAULT_RESTORE_ROOT,
) -> RestoreSummary:
    """Rebuild a files snapshot (or ``paths`` of it) under ``destination`` (missing or
    empty, unless ``overwrite``), with permissions, times and symlinks. Without a
    destination: a new directory for this run, ``<restore_root>/files/<UTC time>-<run>``."""
    destination = restore_directory(destination, restore_root, "files")
    result = restore_files_target(
        repository, destination, snapshot, source_target, paths, overwrite
    )
    publish_restore_report(result)
    return result
