"""The restore-postgres flow: restore one PostgreSQL snapshot, then publish the restore report."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from prefect import flow

from blocks.names import DEFAULT_REPOSITORY_BLOCK
from flows.backup.destinations import restore_database
from scholar_ops.vault.summary import RestoreSummary
from tasks.artifacts import publish_restore_report
from tasks.postgres import restore_postgres_target


@flow(name="restore-postgres", log_prints=True)
def restore_postgres(
    target: str,
    database: str | None = None,
    snapshot: str = "latest",
    repository: str = DEFAULT_REPOSITORY_BLOCK,
    before: datetime | None = None,
    source_target: str | None = None,
    clean: bool = False,
    schemas: list[str] | None = None,
    tables: list[str] | None = None,
    jobs: int = 2,
    no_owner: bool = False,
    roles: Literal["create", "skip", "fail"] = "create",
) -> RestoreSummary:
    """Restore ``snapshot`` (id, id prefix, or 'latest' [before a time] [of source_target])
    into ``database`` on the server of the ``target`` block, then check row counts. Without
    a database: a new one for this run, ``restored_<UTC time>_<run>``."""
    database = restore_database(database)
    result = restore_postgres_target(
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
        roles,
    )
    publish_restore_report(result)
    return result
