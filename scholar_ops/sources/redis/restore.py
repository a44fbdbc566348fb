"""The Redis restore functions, as the other layers (tasks, flows, drills) import them.

Restoring a snapshot written by sources.redis.dump, two ways:

- a new server from the RDB (restore_rdb): ``restore_redis_rdb`` writes ``dump.rdb``
  into a directory (a redis-server started there loads it), ``restore_redis_fresh``
  also starts a throwaway server on it (restore drills);
- into a running server (restore_into): ``restore_redis_into`` copies every key with
  DUMP/RESTORE, the existing keys kept, replaced or flushed as ``existing`` says, then
  verifies the result.

``verify_redis`` and ``verify_redis_rdb`` (verify) compare a restored server, or an RDB
file, with the snapshot's manifest.
"""

from __future__ import annotations

from scholar_ops.sources.redis.restore_into import (
    ExistingMode,
    RedisRestoreResult,
    restore_redis_into,
)
from scholar_ops.sources.redis.restore_rdb import backup_dbs, restore_redis_fresh, restore_redis_rdb
from scholar_ops.sources.redis.verify import verify_redis, verify_redis_rdb

__all__ = [
    "ExistingMode",
    "RedisRestoreResult",
    "backup_dbs",
    "restore_redis_fresh",
    "restore_redis_into",
    "restore_redis_rdb",
    "verify_redis",
    "verify_redis_rdb",
]
