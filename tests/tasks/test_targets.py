"""tasks/targets.py: which failures of the primary repository send a backup to its fallback."""

from __future__ import annotations

from scholar_ops.vault.errors import (
    IntegrityError,
    RepositoryFull,
    SourceError,
    StorageError,
    TransientStorageError,
    WrongKey,
)
from scholar_ops.vault.storage.breaker import CircuitOpen
from tasks.targets import storage_unreachable


def test_only_an_unreachable_storage_falls_back():
    assert storage_unreachable(TransientStorageError("connection refused (gave up)"))
    assert storage_unreachable(CircuitOpen("not tried"))
    try:
        try:
            raise TransientStorageError("timed out")
        except TransientStorageError as e:
            raise RuntimeError("wrapped by a task") from e
    except RuntimeError as wrapped:
        assert storage_unreachable(wrapped)
    for exc in (
        StorageError("AccessDenied"),
        WrongKey("wrong master key"),
        IntegrityError("damaged", "config"),
        RepositoryFull("full"),
        SourceError("pg_dump: connection refused", transient=True),
        ValueError("bad"),
    ):
        assert not storage_unreachable(exc), exc
