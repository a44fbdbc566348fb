"""Restore flows, one per component: PostgreSQL, Redis, Chroma and files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from scholar_ops.sources.chroma.restore import Existing
from scholar_ops.sources.redis.restore import ExistingMode
from tasks.artifacts import publish_restore_report
from tasks.chroma import restore_chroma_target
from tasks.files import restore_files_target
from tasks.postgres import restore_postgres
from tasks.redis import restore_redis


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


@flow(name="restore-redis", log_prints=True)
def redis_restore(
    target: str | None = None,
    rdb_dir: str | None = None,
    snapshot: str = "latest",
    repository: str = "scholar-ops-repository",
    source_target: str | None = None,
    existing: ExistingMode = "fail",
    dbs: list[int] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Restore a Redis snapshot into the running server of the ``target`` block (keys keep
    their TTLs; ``existing``: fail, skip, replace or flush), or write its RDB into
    ``rdb_dir`` for a new server; then verify counts and sampled values."""
    result = restore_redis(
        repository, snapshot, target, rdb_dir, source_target, existing, dbs, overwrite
    )
    publish_restore_report(result)
    return result


@flow(name="restore-chroma", log_prints=True)
def chroma_restore(
    target: str | None = None,
    directory: str | None = None,
    snapshot: str = "latest",
    repository: str = "scholar-ops-repository",
    source_target: str | None = None,
    collections: list[str] | None = None,
    existing: Existing = "fail",
) -> dict[str, Any]:
    """Restore a Chroma snapshot into the store of the ``target`` block or a new embedded
    ``directory`` (``existing`` collections: fail, replace or skip); then compare record
    counts and nearest neighbours with the source."""
    result = restore_chroma_target(
        repository, snapshot, target, directory, source_target, collections, existing
    )
    publish_restore_report(result)
    return result


@flow(name="restore-files", log_prints=True)
def files_restore(
    destination: str,
    snapshot: str = "latest",
    repository: str = "scholar-ops-repository",
    source_target: str | None = None,
    paths: list[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Rebuild a files snapshot (or ``paths`` of it) under ``destination`` (missing or
    empty, unless ``overwrite``), with permissions, times and symlinks."""
    result = restore_files_target(
        repository, destination, snapshot, source_target, paths, overwrite
    )
    publish_restore_report(result)
    return result
