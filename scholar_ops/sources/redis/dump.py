"""Backing up a running Redis server: its RDB, streamed through replication, into the store.

One snapshot (component ``redis``) with one entry, ``dump.rdb``: the RDB the
server produces for a replica (``SYNC``, see scholar_ops.sources.redis.sync), read from the
socket straight into the chunker. No access to the server's disk is needed and
nothing of the RDB is kept whole in memory or written to local disk. The RDB is
a point-in-time image of every database (the server forks for it).

Around it (see scholar_ops.sources.redis.survey and .digests for the consistency
rules), the manifest details record the server version, role and memory, per
database the key counts (INFO keyspace before and after), the count of each type
(SCAN + TYPE, bounded memory), the allowed ranges a restore must fall in, and a
sample of keys with canonical value digests taken before and after the RDB (only
keys unchanged between both are verified later).

Chunking: 16 KiB average (8 KiB min, 64 KiB max), finer than PostgreSQL's 128 KiB.
An RDB lists each database's keys in hash-table order, which stays the same
between two backups while the table is not resized: a changed value rewrites the
bytes of that key only, in place, and new keys land at scattered positions. Each
scattered change then costs about two chunks, so an incremental backup stores
roughly (changed keys) x 2 x (average chunk), whatever the data set's size. With
~5 KB values and 1% of the keys changed (tests/scholar_ops/sources/redis) the second backup
stores 7% of the first at 16 KiB, 10% at 32 KiB, 23% at 64 KiB and 52% at 256
KiB; the store's 1 MiB default would store nearly everything again. 8 KiB would
store 5%, for twice the chunks (index entries, per-chunk work, and one ranged read
per chunk on restore). A hash-table resize (a database's key count crossing a
power of two) reorders that database once: that backup stores most of it again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from scholar_ops.sources.redis.client import ping, raw_client, redis_errors
from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.digests import SampleLimits, digest_sample, redigest, same_value
from scholar_ops.sources.redis.info import dirty_counter, function_names, keyspace, server_info
from scholar_ops.sources.redis.survey import DbSurvey, allowed_ranges, survey_db
from scholar_ops.sources.redis.sync import rdb_stream
from scholar_ops.vault.archiver import BackupWriter, Progress
from scholar_ops.vault.chunker import ChunkerParams
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import BackupType, Snapshot

log = logging.getLogger("scholar_ops.sources.redis")
T = TypeVar("T")

COMPONENT = "redis"
RDB_ENTRY = "dump.rdb"
FORMAT = "scholar-ops-redis/1"
REDIS_CHUNKER = ChunkerParams(avg_size=16 << 10, min_size=8 << 10, max_size=64 << 10)


@dataclass
class RedisDumpOptions:
    sample_size: int = 200  # keys per database whose value digest is recorded
    sample_limits: SampleLimits = field(default_factory=SampleLimits)
    scan_count: int = 1000
    timeout_s: float = 6 * 3600  # the whole backup, RDB transfer included
    seed: int | None = None  # for the sample (tests)


def backup_redis(
    repo: Repository,
    conn: RedisConnInfo,
    *,
    target: str | None = None,
    backup_type: BackupType = "incremental",
    retention_days: float | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
    options: RedisDumpOptions | None = None,
) -> Snapshot:
    """Back a running server up as one snapshot (component ``redis``, entry ``dump.rdb``)."""
    opts = options or RedisDumpOptions()
    started = time.monotonic()
    deadline = started + opts.timeout_s
    rng = random.Random(opts.seed)
    ping(conn)  # a wrong address or password fails at once
    client = raw_client(conn.client())
    try:
        with redis_errors(conn, "survey before the backup"):
            dirty0, saved0 = dirty_counter(client)
            server = server_info(client)
            functions = function_names(client)
            keys_info = keyspace(client)
            dbs = sorted(keys_info)
            surveys = _each_db(
                conn,
                dbs,
                lambda c, db: survey_db(
                    c, db, sample_size=opts.sample_size, rng=rng, scan_count=opts.scan_count,
                    ttl=bool(keys_info[db]["expires"]),
                ),
            )  # fmt: skip
            # Digests right before the RDB (the survey of a large keyspace takes a while).
            samples_before = _each_db(
                conn,
                dbs,
                lambda c, db: [
                    s
                    for s in digest_sample(
                        c, [k for k, _ in surveys[db].sample], opts.sample_limits
                    )
                    if s
                ],
            )
            keys_before = keyspace(client)
            dirty1, saved1 = dirty_counter(client)
        with BackupWriter(
            repo,
            component=COMPONENT,
            target=target or f"{conn.host}:{conn.port}",
            backup_type=backup_type,
            chunker=REDIS_CHUNKER,
            progress=progress,
        ) as writer:
            t0 = time.monotonic()
            with rdb_stream(conn, deadline=deadline) as rdb:
                entry = writer.add_stream(RDB_ENTRY, rdb)
                rdb.check()
            transfer_s = time.monotonic() - t0
            with redis_errors(conn, "survey after the backup"):
                keys_after = keyspace(client)
                dirty2, saved2 = dirty_counter(client)
                samples_after = _each_db(
                    conn, dbs, lambda c, db: redigest(c, samples_before[db], opts.sample_limits)
                )
            writes, exact = _writes(dirty0, saved0, dirty1, saved1, dirty2, saved2, keys_before)
            databases: dict[str, Any] = {}
            changed_in_sample = 0
            for db in sorted(set(dbs) | set(keys_before) | set(keys_after)):
                survey = surveys.get(db)
                if survey is None:  # appeared after the survey: only INFO knows it
                    survey = DbSurvey(db)
                sample = []
                for s_before, s_after in zip(
                    samples_before.get(db, []), samples_after.get(db, []), strict=True
                ):
                    stable = same_value(s_before, s_after)
                    changed_in_sample += not stable
                    sample.append({**s_before, "stable": stable})
                before = keys_before.get(db, {"keys": 0, "expires": 0})
                after = keys_after.get(db, {"keys": 0, "expires": 0})
                databases[str(db)] = {
                    "keys": before["keys"],
                    "expires": before["expires"],
                    "keys_after": after["keys"],
                    "expires_after": after["expires"],
                    "types": dict(sorted(survey.types.items())),
                    "volatile": dict(sorted(survey.volatile.items())),
                    "scanned": survey.scanned,
                    "check": allowed_ranges(survey, before, after, writes),
                    "sample": sample,
                }
            details: dict[str, Any] = {
                "format": FORMAT,
                "source": conn.describe(),
                "server": server,
                "rdb": {
                    "entry": entry.name,
                    "bytes": rdb.bytes,
                    "version": rdb.rdb_version,
                    "diskless": rdb.diskless,
                    "transfer_s": round(transfer_s, 3),
                },
                "databases": databases,
                "max_db": max((int(d) for d in databases), default=0),
                "functions": functions,
                "consistency": {
                    "writes_during_backup": writes,
                    "writes_exact": exact,
                    "sample_changed": changed_in_sample,
                    "sample_taken": "digested right before the RDB and again right after it; "
                    "only keys unchanged between both are verified",
                },
                "chunker": REDIS_CHUNKER.to_json(),
            }
            if writes:
                log.info(
                    "%s changed during the backup (about %d writes): counts are checked "
                    "within a tolerance",
                    conn.describe(),
                    writes,
                )
            return writer.commit(
                retention_days=retention_days, group=group, tags=tags or [], details=details
            )
    finally:
        client.close()


def _each_db(
    conn: RedisConnInfo, dbs: list[int], fn: Callable[[redis.Redis, int], T]
) -> dict[int, T]:
    """fn(client on db, db) for each database."""
    out = {}
    for db in dbs:
        client = raw_client(conn.client(db))
        try:
            out[db] = fn(client, db)
        finally:
            client.close()
    return out


def _writes(
    dirty0: int,
    saved0: int,
    dirty1: int,
    saved1: int,
    dirty2: int,
    saved2: int,
    keys: dict[int, dict[str, int]],
) -> tuple[int, bool]:
    """Writes the server made between the survey and the end of the RDB: (count, exact).

    The dirty counter resets when a save completes. A diskless transfer does not save,
    so the difference is exact. A disk-based one does (its BGSAVE forks when SYNC
    arrives and, when done, leaves the writes made since the fork): the writes before
    SYNC plus those after the fork, missing the few milliseconds in between. A save
    during the survey itself leaves no measure: 1% of the keys, at least 100.
    """
    if saved2 == saved0 and dirty2 >= dirty0:
        return dirty2 - dirty0, True
    if saved1 == saved0 and dirty1 >= dirty0:
        return (dirty1 - dirty0) + dirty2, False
    total = sum(v["keys"] for v in keys.values())
    return max(100, total // 100) + dirty2, False
