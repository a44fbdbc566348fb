"""The restore-redis flow: restore one Redis snapshot, then publish the restore report."""

from __future__ import annotations

from prefect import flow

from blocks.names import DEFAULT_REPOSITORY_BLOCK
from flows.backup.destinations import DEFAULT_RESTORE_ROOT, restore_directory
from scholar_ops.sources.redis.restore import ExistingMode
from scholar_ops.vault.summary import RestoreSummary
from tasks.artifacts import publish_restore_report
from tasks.redis import restore_redis_target


@flow(name="restore-redis", log_prints=True)
def restore_redis(
    target: str | None = None,
    rdb_dir: str | None = None,
    snapshot: str = "latest",
    repository: str = DEFAULT_REPOSITORY_BLOCK,
    source_target: str | None = None,
    existing: ExistingMode = "fail",
    dbs: list[int] | None = None,
    overwrite: bool = False,
    restore_root: str = DEFAULT_RESTORE_ROOT,
) -> RestoreSummary:
    """Restore a Redis snapshot into the running server of the ``target`` block (keys keep
    their TTLs; ``existing``: fail, skip, replace or flush), or write its RDB into
    ``rdb_dir`` for a new server; then verify counts and sampled values. With neither: the
    RDB goes into a new directory for this run, ``<restore_root>/redis/<UTC time>-<run>``."""
    if target is None:
        rdb_dir = restore_directory(rdb_dir, restore_root, "redis")
    result = restore_redis_target(
        repository, snapshot, target, rdb_dir, source_target, existing, dbs, overwrite
    )
    publish_restore_report(result)
    return result
