"""What every task shares: loading blocks by name, and which failures are worth a retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from prefect import get_run_logger
from prefect.tasks import exponential_backoff

from blocks.base import StrictBlock
from blocks.chroma import ChromaTarget
from blocks.files import FilesTarget
from blocks.postgres import PostgresTarget
from blocks.redis import RedisTarget
from blocks.repository import BackupRepository
from scholar_ops.monitoring.push import PushError
from scholar_ops.vault.archiver import Progress
from scholar_ops.vault.errors import ConfigError, SourceError, TransientStorageError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import BackupType, Snapshot
from scholar_ops.vault.summary import human_bytes, snapshot_summary
from tasks.progress import reported_progress

B = TypeVar("B", bound=StrictBlock)


def is_transient(exc: BaseException | None) -> bool:
    """Connection-type failures: the server or the storage may be back on the next try."""
    if exc is None:
        return False
    if isinstance(exc, PushError):  # unreachable or 5xx, not a rejected push
        return exc.transient
    if isinstance(exc, TransientStorageError | psycopg.OperationalError):
        return True
    return isinstance(exc, SourceError) and exc.transient


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """retry_condition_fn: retry connection errors, never bad input or damaged data."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            state.result()
        except BaseException as e:
            exc = e
    return is_transient(exc)


#: Task options of every backup task: connection errors retried with backoff and jitter.
BACKUP_TASK_OPTIONS: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
}
#: Task options of every restore task.
RESTORE_TASK_OPTIONS: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_condition_fn": retry_if_transient,
}


def _load(cls: type[B], name: str, what: str) -> B:
    try:
        return cls.load_sync(name)
    except ValueError as e:
        raise ConfigError(
            f"cannot load the {what} block {name!r}: {e}. Create it with `scholar-ops setup`"
        ) from None


def load_repository(name: str) -> BackupRepository:
    return _load(BackupRepository, name, "backup repository")


def load_postgres_target(name: str) -> PostgresTarget:
    return _load(PostgresTarget, name, "PostgreSQL target")


def load_redis_target(name: str) -> RedisTarget:
    return _load(RedisTarget, name, "Redis target")


def load_chroma_target(name: str) -> ChromaTarget:
    return _load(ChromaTarget, name, "Chroma target")


def load_files_target(name: str) -> FilesTarget:
    return _load(FilesTarget, name, "files target")


def log_summary(snap: Snapshot) -> dict[str, Any]:
    """Log a new snapshot's figures and return its summary (the task's small result)."""
    summary = snapshot_summary(snap)
    get_run_logger().info(
        "snapshot %s (%s): %s read, %s new, %s stored in %.1f s",
        snap.short_id,
        summary["items"],
        human_bytes(summary["size_bytes"]),
        human_bytes(summary["new_bytes"]),
        human_bytes(summary["stored_bytes"]),
        summary["duration_s"],
    )
    return summary


def run_backup_into(
    repository: str,
    target_name: str,
    component: str,
    backup_type: BackupType,
    source: str,
    estimate: int,
    backup: Callable[[Repository, Callable[[Progress], None]], Snapshot],
) -> dict[str, Any]:
    """The body every backup task shares: open (or create) the repository, run
    ``backup(repo, progress)`` with terminal and artifact progress, log and return the
    snapshot's summary. ``source`` describes where the data comes from (no secrets)."""
    repo_block = load_repository(repository)
    repo = repo_block.open(create=True)
    get_run_logger().info(
        "%s backup of %s %s into %s", backup_type, component, source, repo_block.location
    )
    with reported_progress(
        f"backup {target_name}", f"{backup_type} backup of {component} {target_name}", estimate
    ) as progress:
        snap = backup(repo, progress)
    for problem in [*snap.details.get("warnings", []), *snap.details.get("errors", [])]:
        get_run_logger().warning("%s/%s: %s", component, target_name, problem)
    return log_summary(snap)
