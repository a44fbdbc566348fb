"""Task: restore a PostgreSQL snapshot into a database."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from prefect import get_run_logger, task

from blocks.postgres import PostgresTarget
from blocks.targets import load_block
from scholar_ops.sources.postgres.restore import RestoreOptions, restore_database
from scholar_ops.sources.postgres.roles import RolesMode
from scholar_ops.vault.summary import RestoreSummary, plural
from tasks.common import RESTORE_TASK_OPTIONS, load_repository, restore_run_name


@task(
    name="restore-postgres-target",
    task_run_name=restore_run_name("postgres"),
    **RESTORE_TASK_OPTIONS,
)
def restore_postgres_target(
    repository: str,
    snapshot: str,
    target: str,
    database: str,
    before: datetime | None = None,
    source_target: str | None = None,
    clean: bool = False,
    schemas: list[str] | None = None,
    tables: list[str] | None = None,
    jobs: int = 2,
    no_owner: bool = False,
    roles: RolesMode = "create",
) -> RestoreSummary:
    """Restore a snapshot (id, prefix or 'latest') into ``database`` on the ``target`` server."""
    logger = get_run_logger()
    repo = load_repository(repository).open()
    server = load_block(PostgresTarget, target)
    snap = repo.find_snapshot(
        snapshot,
        component="postgres",
        target=source_target if snapshot == "latest" else None,
        before=before,
    )
    logger.info(
        "restoring snapshot %s (%s, %s) into %s",
        snap.short_id,
        snap.target,
        snap.timestamp,
        database,
    )
    result = restore_database(
        repo,
        snap,
        server.conninfo().with_db(database),
        RestoreOptions(
            clean=clean,
            schemas=schemas,
            tables=tables,
            jobs=jobs,
            no_owner=no_owner,
            roles=roles,
        ),
    )
    if result.mismatches:
        shown = "; ".join(result.mismatches[:3])
        more = len(result.mismatches) - 3
        raise RuntimeError(
            f"restored database differs from the backup: {len(result.mismatches)} "
            f"difference(s): {shown}" + (f" (and {more} more)" if more > 0 else "")
        )
    figures = asdict(result)
    for key in ("snapshot_id", "duration_s", "mismatches", "warnings"):
        figures.pop(key)
    return RestoreSummary(
        component="postgres",
        snapshot_id=snap.backup_id,
        destination=result.database,
        restored=f"{plural(result.tables, 'table')}, {plural(result.rows, 'row')}"
        + (f", {plural(result.large_objects, 'large object')}" if result.large_objects else "")
        + (f", roles created: {', '.join(result.roles_created)}" if result.roles_created else ""),
        verified="row counts"
        + (", large objects (size and MD5)" if result.large_objects else "")
        + " match the backup",
        duration_s=result.duration_s,
        figures=figures,
        mismatches=[],
        warnings=list(result.warnings),
    )
