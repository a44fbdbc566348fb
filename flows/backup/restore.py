"""Restore a PostgreSQL snapshot into a database (new, or an existing one with clean=True)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from tasks.artifacts import publish_restore_report
from tasks.postgres import restore_postgres


@flow(name="restore-postgres", log_prints=True)
def postgres_restore(
    target: str,
    database: str,
    snapshot: str = "latest",
    repository: str = "scholar-ops-repository",
    before: datetime | None = None,
    source_target: str | None = None,
    clean: bool = False,
    schemas: list[str] | None = None,
    tables: list[str] | None = None,
    jobs: int = 2,
    no_owner: bool = False,
) -> dict[str, Any]:
    """Restore ``snapshot`` (id, id prefix, or 'latest' [before a time] [of source_target])
    into ``database`` on the server of the ``target`` block, then check row counts."""
    result = restore_postgres(
        repository,
        snapshot,
        target,
        database,
        before,
        source_target,
        clean,
        schemas,
        tables,
        jobs,
        no_owner,
    )
    publish_restore_report(result)
    return result
