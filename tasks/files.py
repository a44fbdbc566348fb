"""Task: restore a files snapshot (or some paths of it) into a directory."""

from __future__ import annotations

from dataclasses import asdict

from prefect import get_run_logger, task

from scholar_ops.sources.files.restore import restore_files
from scholar_ops.vault.summary import RestoreSummary, human_bytes, plural
from tasks.common import RESTORE_TASK_OPTIONS, load_repository, restore_run_name


@task(
    name="restore-files-target",
    task_run_name=restore_run_name("files"),
    **RESTORE_TASK_OPTIONS,
)
def restore_files_target(
    repository: str,
    destination: str,
    snapshot: str = "latest",
    source_target: str | None = None,
    paths: list[str] | None = None,
    overwrite: bool = False,
) -> RestoreSummary:
    """Rebuild a files snapshot (or ``paths`` of it) under ``destination``, which must be
    missing or empty unless ``overwrite``."""
    logger = get_run_logger()
    repo = load_repository(repository).open()
    snap = repo.find_snapshot(
        snapshot, component="files", target=source_target if snapshot == "latest" else None
    )
    logger.info(
        "restoring files snapshot %s (%s, %s) into %s",
        snap.short_id,
        snap.target,
        snap.timestamp,
        destination,
    )
    result = restore_files(repo, snap, destination, paths=paths, overwrite=overwrite)
    figures = asdict(result)
    for key in ("dest", "snapshot_id", "duration_s", "warnings"):
        figures.pop(key)
    return RestoreSummary(
        component="files",
        snapshot_id=snap.backup_id,
        destination=result.dest,
        restored=f"{plural(result.files, 'file')}, {plural(result.dirs, 'dir')}, "
        f"{plural(result.symlinks, 'symlink')}, {human_bytes(result.bytes)}",
        verified="every file's sha256 checked",
        duration_s=result.duration_s,
        figures=figures,
        mismatches=[],
        warnings=list(result.warnings),
    )
