"""Continuous WAL archiving into the store: the first half of point-in-time recovery.

``names``: WAL file names, segment arithmetic, the segment header and pg_control;
``store``: the archive in the repository (push, fetch, list, continuity, prune, last archived);
``status``: the status file the ``scholar-ops-wal`` command keeps for the metrics export.
The command itself (archive_command / restore_command) is ``scholar_ops.walcmd``.
"""

from scholar_ops.sources.postgres.wal.names import (
    WalName,
    WalNameError,
    format_lsn,
    parse_lsn,
    parse_wal_name,
    segment_name,
)
from scholar_ops.sources.postgres.wal.store import (
    PushResult,
    WalConflict,
    WalFile,
    archived_clusters,
    check_wal_continuity,
    fetch_wal,
    last_archived,
    list_wal,
    object_name,
    prune_wal,
    push_wal,
    wal_segment_size,
)

__all__ = [
    "PushResult",
    "WalConflict",
    "WalFile",
    "WalName",
    "WalNameError",
    "archived_clusters",
    "check_wal_continuity",
    "fetch_wal",
    "format_lsn",
    "last_archived",
    "list_wal",
    "object_name",
    "parse_lsn",
    "parse_wal_name",
    "prune_wal",
    "push_wal",
    "segment_name",
    "wal_segment_size",
]
