"""The keyspace survey: what a Redis backup should contain, counted per database and type.

Survey (bounded memory): per database, ``SCAN`` with ``COUNT`` and a pipelined
``TYPE`` over each batch count the keys of each type, and reservoir sampling over
the same scan picks a uniform sample of N keys (default 200; their digests:
scholar_ops.sources.redis.digests).

Consistency. The server keeps changing while it is backed up; the RDB is an image
at the moment of the fork, somewhere between the survey and the end of the
transfer. So the survey runs just before the RDB, INFO keyspace is read right
before and right after it, and the number of writes the server made meanwhile is
taken from its dirty counter (``rdb_changes_since_last_save``; approximate when a
save resets it: the disk-based transfer's own BGSAVE). Each database records an
allowed range for its key count and for each type's count: exact on a quiet
server, widened by the writes seen and, downwards, by the keys with a TTL (they
may have expired by the time of the restore).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from scholar_ops.sources.redis.conninfo import RedisConnInfo

TYPES = ("string", "list", "set", "zset", "hash", "stream")


@dataclass
class DbSurvey:
    db: int
    types: Counter[str] = field(default_factory=Counter)
    volatile: Counter[str] = field(default_factory=Counter)  # keys with a TTL, per type
    sample: list[tuple[bytes, str]] = field(default_factory=list)

    @property
    def scanned(self) -> int:
        return sum(self.types.values())


def scan_types(
    client: redis.Redis, scan_count: int = 1000, *, ttl: bool = False
) -> Iterator[list[tuple[bytes, str, bool]]]:
    """Batches of (key, type, has a TTL) over the selected database, in bounded memory.

    Without ``ttl`` the TTL is not asked for (always False)."""
    cursor = 0
    while True:
        cursor, found = client.scan(cursor, count=scan_count)
        keys: list[bytes] = [k if isinstance(k, bytes) else k.encode() for k in found]
        if keys:
            pipe = client.pipeline(transaction=False)
            for k in keys:
                pipe.type(k)
                if ttl:
                    pipe.pttl(k)
            replies = pipe.execute()
            step = 2 if ttl else 1
            batch = []
            for i, k in enumerate(keys):
                typ = type_name(replies[i * step])
                if typ != "none":  # "none": deleted or expired since the SCAN
                    batch.append((k, typ, ttl and int(replies[i * step + 1]) >= 0))
            yield batch
        if cursor == 0:
            return


def type_name(t: bytes | str) -> str:
    return t.decode() if isinstance(t, bytes) else str(t)


def survey_db(
    client: redis.Redis,
    db: int,
    *,
    sample_size: int,
    rng: random.Random,
    scan_count: int = 1000,
    ttl: bool = True,
) -> DbSurvey:
    """Type counts (and, with ``ttl``, counts of keys with a TTL) and a uniform sample
    (reservoir) of one database."""
    out = DbSurvey(db)
    seen = 0
    for batch in scan_types(client, scan_count, ttl=ttl):
        for key, typ, has_ttl in batch:
            out.types[typ] += 1
            if has_ttl:
                out.volatile[typ] += 1
            seen += 1
            if len(out.sample) < sample_size:
                out.sample.append((key, typ))
            else:
                j = rng.randrange(seen)
                if j < sample_size:
                    out.sample[j] = (key, typ)
    return out


def survey_server(
    conn: RedisConnInfo, dbs: Iterable[int], scan_count: int = 1000
) -> dict[int, Counter[str]]:
    """Type counts per database of a (restored) server."""
    out: dict[int, Counter[str]] = {}
    for db in dbs:
        client = conn.client(db)
        try:
            counts: Counter[str] = Counter()
            for batch in scan_types(client, scan_count):
                counts.update(t for _k, t, _ttl in batch)
            out[db] = counts
        finally:
            client.close()
    return out


def allowed_ranges(
    survey: DbSurvey,
    before: dict[str, int],
    after: dict[str, int],
    writes: int,
) -> dict[str, Any]:
    """The range a restored database's key count (and each type's count) may fall in.

    ``writes``: how many keys the server may have changed between the survey and the
    end of the RDB. Keys with a TTL may be gone by the time of a restore, so the lower
    bounds also give way by their number (per type, as the survey counted them). SCAN
    may return a key twice (a rehash during the scan) or skip keys already expired
    that INFO still counts: that difference widens both sides too.
    """
    counts = [before.get("keys", 0), after.get("keys", 0), survey.scanned]
    slack = abs(survey.scanned - before.get("keys", survey.scanned))
    volatile = max(before.get("expires", 0), after.get("expires", 0), survey.volatile.total())
    keys = [max(0, min(counts) - writes - volatile - slack), max(counts) + writes + slack]
    types = {
        t: [max(0, n - writes - survey.volatile[t] - slack), n + writes + slack]
        for t, n in sorted(survey.types.items())
    }
    return {"keys": keys, "types": types, "other_types": writes + slack}


def check_counts(db: int, expected: dict[str, Any], keys: int, types: dict[str, int]) -> list[str]:
    """Mismatches of a restored database's counts against the manifest's ranges."""
    problems = []
    lo, hi = expected["check"]["keys"]
    if not lo <= keys <= hi:
        exact = f"{lo}" if lo == hi else f"{lo}..{hi}"
        problems.append(f"db {db}: {keys} keys restored, expected {exact}")
    ranges = expected["check"]["types"]
    for t in sorted(set(ranges) | set(types)):
        n = types.get(t, 0)
        lo, hi = ranges.get(t, [0, expected["check"]["other_types"]])
        if not lo <= n <= hi:
            exact = f"{lo}" if lo == hi else f"{lo}..{hi}"
            problems.append(f"db {db}: {n} keys of type {t} restored, expected {exact}")
    return problems
