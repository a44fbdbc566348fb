"""Which failures the tasks retry: connection-type ones only."""

from __future__ import annotations

import psycopg

from scholar_ops.monitoring.push import PushError
from scholar_ops.vault.errors import ConfigError, IntegrityError, SourceError, TransientStorageError
from tasks.common import is_transient


def test_connection_failures_are_retried_bad_input_and_damage_are_not():
    assert is_transient(TransientStorageError("503 from S3"))
    assert is_transient(psycopg.OperationalError("connection refused"))
    assert is_transient(SourceError("server went away", transient=True))
    assert is_transient(PushError("gateway unreachable", transient=True))
    assert not is_transient(PushError("400: inconsistent metrics", transient=False, status=400))
    assert not is_transient(SourceError("pg_dump: permission denied"))
    assert not is_transient(ConfigError("no such block"))
    assert not is_transient(IntegrityError("bad pack", "packs/x"))
    assert not is_transient(None)
