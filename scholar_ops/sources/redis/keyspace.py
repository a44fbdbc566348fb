"""What a Redis backup should contain, and checking that a restored server holds it.

Survey (bounded memory): per database, ``SCAN`` with ``COUNT`` and a pipelined
``TYPE`` over each batch count the keys of each type, and reservoir sampling over
the same scan picks a uniform sample of N keys (default 200).

Value digests are canonical, so they compare across servers: the encoding a
value gets (listpack or hashtable, intset...) and the order of a hashtable
(its hash seed is random per process) do not matter. Strings hash their bytes;
lists and streams their elements in order; hashes, sets and sorted sets their
members sorted (sorted sets with their scores); streams add their last id, their
consumer groups, consumers and pending entries. Each digest is read inside
MULTI/EXEC, so it is one state of the key. Keys larger than the limits (10,000
elements, 16 MiB strings) or beyond a pass's byte budget are checked by type,
size and TTL only.

Consistency. The server keeps changing while it is backed up; the RDB is an image
at the moment of the fork, somewhere between the survey and the end of the
transfer. So:

- counts: the survey runs just before the RDB, INFO keyspace is read right
  before and right after it, and the number of writes the server made meanwhile
  is taken from its dirty counter (``rdb_changes_since_last_save``; approximate
  when a save resets it: the disk-based transfer's own BGSAVE). Each database
  records an allowed range for its key count and for each type's count: exact on
  a quiet server, widened by the writes seen and, downwards, by the keys with a
  TTL (they may have expired by the time of the restore);
- sample: each sampled key is digested right before the RDB and again right
  after it. Only keys whose digest did not change are marked ``stable`` and
  verified after a restore (a value changed and changed back in between would go
  unnoticed: the check is a sample, not a proof). A sampled key that had a TTL
  and is missing after a restore expired; it is not an error.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.vault.errors import SourceError

TYPES = ("string", "list", "set", "zset", "hash", "stream")
_FETCH_RAW = ("XRANGE", "XPENDING", "HGETALL", "ZRANGE", "SMEMBERS", "LRANGE")


@dataclass(frozen=True)
class SampleLimits:
    max_elements: int = 10_000  # larger collections: type, size and TTL only
    max_string: int = 16 << 20
    budget_bytes: int = 64 << 20  # per database and pass: then type, size and TTL only


@contextmanager
def redis_errors(conn: RedisConnInfo, what: str) -> Iterator[None]:
    """redis-py errors as SourceError: unreachable or dropped is transient, refused is not."""
    where = conn.describe()
    try:
        yield
    except (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError) as e:
        raise SourceError(f"Redis at {where} refused the credentials ({what}): {e}") from None
    except redis.BusyLoadingError as e:
        raise SourceError(f"Redis at {where} is loading its data ({what}): {e}", True) from None
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise SourceError(f"cannot reach Redis at {where} ({what}): {e}", transient=True) from None
    except redis.ResponseError as e:
        msg = str(e)
        if msg.startswith(("NOAUTH", "WRONGPASS")):
            raise SourceError(f"Redis at {where} refused the credentials ({what}): {e}") from None
        if msg.startswith("NOPERM"):
            raise SourceError(
                f"Redis at {where}: the user lacks a permission ({what}): {e}"
            ) from None
        raise SourceError(f"{what} on Redis at {where} failed: {e}") from None


def ping(conn: RedisConnInfo) -> None:
    """Fail at once (no retries) on a wrong address or password: SourceError."""
    client = conn.client(retries=0)
    try:
        with redis_errors(conn, "connecting"):
            client.ping()
    finally:
        client.close()


def raw_client(client: redis.Redis) -> redis.Redis:
    """The client with redis-py's reply parsing switched off where it loses information
    (stream entries as dicts drop repeated field names)."""
    for name in _FETCH_RAW:
        client.set_response_callback(name, lambda r, **_: r)
    return client


def key_to_json(key: bytes) -> str:
    return base64.b64encode(key).decode()


def key_from_json(text: str) -> bytes:
    return base64.b64decode(text)


# -- INFO ----------------------------------------------------------------------------


def keyspace(client: redis.Redis) -> dict[int, dict[str, int]]:
    """{db: {"keys": n, "expires": n}} for every database that holds keys."""
    info = client.info("keyspace")
    out: dict[int, dict[str, int]] = {}
    for name, v in info.items():
        if str(name).startswith("db") and isinstance(v, dict):
            out[int(str(name)[2:])] = {"keys": int(v["keys"]), "expires": int(v["expires"])}
    return out


def server_info(client: redis.Redis) -> dict[str, Any]:
    info = client.info()
    return {
        "redis_version": str(info.get("redis_version", "")),
        "role": str(info.get("role", "")),
        "used_memory": int(info.get("used_memory", 0)),
        "used_memory_human": str(info.get("used_memory_human", "")),
        "maxmemory_policy": str(info.get("maxmemory_policy", "")),
        "run_id": str(info.get("run_id", "")),
    }


def function_names(client: redis.Redis) -> list[str] | None:
    """Names of the server's function libraries (Redis 7.0+; none before); None when the
    user may not list them."""
    try:
        libraries = client.execute_command("FUNCTION", "LIST")
    except redis.ResponseError as e:
        return None if str(e).startswith("NOPERM") else []  # else: an older server
    names = []
    for lib in libraries:
        info = _pairs(lib)
        name = info.get("library_name", b"")
        names.append(name.decode(errors="replace") if isinstance(name, bytes) else str(name))
    return sorted(names)


def dirty_counter(client: redis.Redis) -> tuple[int, int]:
    """(writes since the last save, time of the last save): the server's write counter."""
    info = client.info("persistence")
    return int(info.get("rdb_changes_since_last_save", 0)), int(info.get("rdb_last_save_time", 0))


# -- survey --------------------------------------------------------------------------


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


# -- value digests -------------------------------------------------------------------


def _feed(h: Any, parts: Iterable[bytes | str | int | float]) -> None:
    for p in parts:
        if isinstance(p, float):
            b = struct.pack(">d", p)
        elif isinstance(p, int):
            b = str(p).encode()
        elif isinstance(p, str):
            b = p.encode()
        else:
            b = p
        h.update(struct.pack(">Q", len(b)))
        h.update(b)


def _pairs(flat: list[Any] | dict[Any, Any]) -> dict[str, Any]:
    """An XINFO reply as a dict with str keys (redis-py parses some of them already)."""
    if isinstance(flat, dict):
        return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in flat.items()}
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): v
        for k, v in zip(flat[::2], flat[1::2], strict=True)
    }


_SIZE_CMD = {
    "string": "STRLEN",
    "list": "LLEN",
    "set": "SCARD",
    "zset": "ZCARD",
    "hash": "HLEN",
    "stream": "XLEN",
}


def _fetch(pipe: Any, key: bytes, typ: str) -> None:
    if typ == "string":
        pipe.execute_command("GET", key)
    elif typ == "list":
        pipe.execute_command("LRANGE", key, 0, -1)
    elif typ == "set":
        pipe.execute_command("SMEMBERS", key)
    elif typ == "zset":
        pipe.execute_command("ZRANGE", key, 0, -1, "WITHSCORES")
    elif typ == "hash":
        pipe.execute_command("HGETALL", key)
    elif typ == "stream":
        pipe.execute_command("XRANGE", key, "-", "+")
        pipe.execute_command("XINFO", "STREAM", key)
        pipe.execute_command("XINFO", "GROUPS", key)


def _digest(typ: str, replies: list[Any]) -> tuple[str, int]:
    """(hex digest, bytes read) of a value fetched by _fetch."""
    h = hashlib.sha256(typ.encode())
    nbytes = 0
    if typ == "string":
        value = replies[0] or b""
        h.update(value)
        nbytes = len(value)
    elif typ == "list":
        _feed(h, replies[0])
        nbytes = sum(len(x) for x in replies[0])
    elif typ == "set":
        members = sorted(replies[0])
        _feed(h, members)
        nbytes = sum(len(x) for x in members)
    elif typ == "zset":
        flat = replies[0]
        scored: list[tuple[bytes, float]] = sorted(
            zip(flat[::2], (float(s) for s in flat[1::2]), strict=True)
        )
        for m, s in scored:
            _feed(h, (m, s))
        nbytes = sum(len(m) + 8 for m, _ in scored)
    elif typ == "hash":
        flat = replies[0]
        pairs = sorted(zip(flat[::2], flat[1::2], strict=True))
        for f, v in pairs:
            _feed(h, (f, v))
        nbytes = sum(len(f) + len(v) for f, v in pairs)
    elif typ == "stream":
        entries, info, groups = replies
        for eid, fields in entries:
            _feed(h, (eid, len(fields), *fields))
            nbytes += len(eid) + sum(len(x) for x in fields)
        _feed(h, ("last-generated-id", _pairs(info).get("last-generated-id", b"")))
        for g in sorted(_pairs(x)["name"] for x in groups):
            _feed(h, ("group", g))
        for g in groups:
            gi = _pairs(g)
            _feed(h, (gi["name"], gi.get("last-delivered-id", b""), int(gi.get("pending", 0))))
    return h.hexdigest(), nbytes


def _stream_groups_digest(client: redis.Redis, key: bytes, groups: list[Any]) -> str:
    """Consumers and pending entries (id, consumer, delivery count) of every group."""
    h = hashlib.sha256(b"stream-groups")
    for g in sorted(_pairs(x)["name"] for x in groups):
        consumers = client.execute_command("XINFO", "CONSUMERS", key, g)
        _feed(h, sorted(_pairs(c)["name"] for c in consumers))
        pending = client.execute_command("XPENDING", key, g, "-", "+", 1_000_000)
        for eid, consumer, _idle, count in pending:
            _feed(h, (eid, consumer, int(count)))
    return h.hexdigest()


def key_digest(
    client: redis.Redis,
    key: bytes,
    *,
    limits: SampleLimits,
    budget: list[int] | None = None,
    full: bool | None = None,
) -> dict[str, Any] | None:
    """Type, size, TTL and (within the limits) a canonical digest of one key; None if missing.

    ``budget``: a one-element list of bytes still allowed for full digests (decremented);
    ``full`` forces (True) or forbids (False) the full digest, whatever the limits.
    """
    pipe = client.pipeline(transaction=False)
    pipe.type(key)
    pipe.pttl(key)
    typ_b, pttl = pipe.execute()
    typ = typ_b.decode() if isinstance(typ_b, bytes) else str(typ_b)
    if typ == "none":
        return None
    size_cmd = _SIZE_CMD.get(typ)
    size = int(client.execute_command(size_cmd, key)) if size_cmd else None
    want = full
    if want is None:
        small = size is not None and (
            size <= limits.max_string if typ == "string" else size <= limits.max_elements
        )
        want = small and (budget is None or budget[0] > 0)
    out: dict[str, Any] = {
        "key": key_to_json(key),
        "type": typ,
        "size": size,
        "digest": None,
        "ttl": pttl >= 0,
        "expire_at_ms": int(time.time() * 1000) + pttl if pttl >= 0 else None,
    }
    if not want or size_cmd is None:
        return out
    # One state of the key: type, TTL, size and content inside MULTI/EXEC.
    tx = client.pipeline(transaction=True)
    tx.type(key)
    tx.pttl(key)
    tx.execute_command(size_cmd, key)
    _fetch(tx, key, typ)
    replies = tx.execute()
    typ2 = replies[0].decode() if isinstance(replies[0], bytes) else str(replies[0])
    if typ2 != typ:
        return key_digest(client, key, limits=limits, budget=budget, full=full)
    pttl = int(replies[1])
    out.update(
        ttl=pttl >= 0,
        expire_at_ms=int(time.time() * 1000) + pttl if pttl >= 0 else None,
        size=int(replies[2]),
    )
    digest, nbytes = _digest(typ, replies[3:])
    if typ == "stream":
        groups_digest = _stream_groups_digest(client, key, replies[5])
        digest = hashlib.sha256((digest + groups_digest).encode()).hexdigest()
    if budget is not None:
        budget[0] -= nbytes
    out["digest"] = digest
    return out


def digest_sample(
    client: redis.Redis, keys: list[bytes], limits: SampleLimits
) -> list[dict[str, Any] | None]:
    budget = [limits.budget_bytes]
    return [key_digest(client, k, limits=limits, budget=budget) for k in keys]


def redigest(
    client: redis.Redis, before: list[dict[str, Any]], limits: SampleLimits
) -> list[dict[str, Any] | None]:
    """The same keys again, each digested as fully as it was the first time."""
    return [
        key_digest(client, key_from_json(s["key"]), limits=limits, full=s["digest"] is not None)
        for s in before
    ]


def same_value(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return (
        a["type"] == b["type"]
        and a["size"] == b["size"]
        and a["digest"] == b["digest"]
        and a["ttl"] == b["ttl"]
    )


# -- expected ranges and verification --------------------------------------------------


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


@dataclass
class SampleCheck:
    checked: int = 0
    expired: int = 0
    unverifiable: int = 0  # changed while the backup ran, or skipped by the restore
    mismatches: list[str] = field(default_factory=list)


def check_sample(
    client: redis.Redis,
    db: int,
    sample: list[dict[str, Any]],
    limits: SampleLimits,
    *,
    skip: Callable[[bytes], bool] = lambda _k: False,
    result: SampleCheck | None = None,
) -> SampleCheck:
    """Compare each stable sampled key of ``db`` on a restored server with the manifest."""
    res = result or SampleCheck()
    for s in sample:
        key = key_from_json(s["key"])
        if not s.get("stable") or skip(key):
            res.unverifiable += 1
            continue
        got = key_digest(client, key, limits=limits, full=s["digest"] is not None)
        name = repr(key if len(key) <= 60 else key[:60] + b"...")
        if got is None:
            if s["ttl"]:
                res.expired += 1
            else:
                res.mismatches.append(f"db {db}: key {name} is missing")
            continue
        res.checked += 1
        if got["type"] != s["type"]:
            res.mismatches.append(f"db {db}: key {name} is a {got['type']}, was a {s['type']}")
        elif got["size"] != s["size"] or got["digest"] != s["digest"]:
            res.mismatches.append(f"db {db}: key {name} has a different value")
        elif got["ttl"] != s["ttl"]:
            had = "had" if s["ttl"] else "had no"
            res.mismatches.append(f"db {db}: key {name} {had} a TTL, now the opposite")
    return res


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
