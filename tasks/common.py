"""What every task shares: loading blocks by name, and which failures are worth a retry."""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg

from blocks.base import StrictBlock
from blocks.postgres import PostgresTarget
from blocks.repository import BackupRepository
from vault.errors import ConfigError, SourceError, TransientStorageError

B = TypeVar("B", bound=StrictBlock)


def is_transient(exc: BaseException | None) -> bool:
    """Connection-type failures: the server or the storage may be back on the next try."""
    if exc is None:
        return False
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
