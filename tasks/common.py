"""What every task shares: loading the repository block, and which failures are worth a retry."""

from __future__ import annotations

from typing import Any, cast

import psycopg
from prefect.tasks import TaskRunNameCallbackWithParameters, exponential_backoff

from blocks.repository import BackupRepository
from scholar_ops.monitoring.push import PushError
from scholar_ops.vault.errors import ConfigError, SourceError, TransientStorageError


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


# Task run names, one pattern for every component: "<verb> <component> <what>", as in
# "backup postgres aischolar-postgres", "drill redis aischolar-redis",
# "restore chroma latest into /srv/chroma-restored".
BACKUP_RUN_NAME = "backup {component} {target}"
DRILL_RUN_NAME = "drill {component} {target}"

#: The parameters of each component's restore task that say where it restores to (the first
#: one given is named).
RESTORE_DESTINATIONS: dict[str, tuple[str, ...]] = {
    "postgres": ("database",),
    "redis": ("target", "rdb_dir"),
    "chroma": ("target", "directory"),
    "files": ("destination",),
}


def restore_run_name(component: str) -> TaskRunNameCallbackWithParameters:
    """The task_run_name of a component's restore task: "restore <component> <snapshot> into
    <destination>" (Prefect calls it with the task's parameters)."""
    keys = RESTORE_DESTINATIONS[component]

    def restore_task_run_name(parameters: dict[str, Any]) -> str:
        where = next((str(parameters[k]) for k in keys if parameters.get(k)), None)
        name = f"restore {component} {parameters.get('snapshot') or 'latest'}"
        return f"{name} into {where}" if where else name

    # A plain function fits: Prefect passes ``parameters`` to a callable that takes it.
    return cast(TaskRunNameCallbackWithParameters, restore_task_run_name)


def load_repository(name: str) -> BackupRepository:
    try:
        return BackupRepository.load_sync(name)
    except ValueError as e:
        raise ConfigError(
            f"cannot load the backup repository block {name!r}: {e}. Create it with "
            "`scholar-ops setup`"
        ) from None
