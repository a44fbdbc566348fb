"""Canonical value digests of sampled keys, and checking them on a restored server.

Value digests are canonical, so they compare across servers: the encoding a
value gets (listpack or hashtable, intset...) and the order of a hashtable
(its hash seed is random per process) do not matter. Strings hash their bytes;
lists and streams their elements in order; hashes, sets and sorted sets their
members sorted (sorted sets with their scores); streams add their last id, their
consumer groups, consumers and pending entries. Each digest is read inside
MULTI/EXEC, so it is one state of the key. Keys larger than the limits (10,000
elements, 16 MiB strings) or beyond a pass's byte budget are checked by type,
size and TTL only.

Consistency. The server keeps changing while it is backed up (the RDB is an image
at the moment of the fork), so each sampled key is digested right before the RDB
and again right after it. Only keys whose digest did not change are marked
``stable`` and verified after a restore (a value changed and changed back in
between would go unnoticed: the check is a sample, not a proof). A sampled key
that had a TTL and is missing after a restore expired; it is not an error.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from scholar_ops.sources.redis.client import reply_pairs


@dataclass(frozen=True)
class SampleLimits:
    max_elements: int = 10_000  # larger collections: type, size and TTL only
    max_string: int = 16 << 20
    budget_bytes: int = 64 << 20  # per database and pass: then type, size and TTL only


def key_to_json(key: bytes) -> str:
    return base64.b64encode(key).decode()


def key_from_json(text: str) -> bytes:
    return base64.b64decode(text)


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
        _feed(h, ("last-generated-id", reply_pairs(info).get("last-generated-id", b"")))
        for g in sorted(reply_pairs(x)["name"] for x in groups):
            _feed(h, ("group", g))
        for g in groups:
            gi = reply_pairs(g)
            _feed(h, (gi["name"], gi.get("last-delivered-id", b""), int(gi.get("pending", 0))))
    return h.hexdigest(), nbytes


def _stream_groups_digest(client: redis.Redis, key: bytes, groups: list[Any]) -> str:
    """Consumers and pending entries (id, consumer, delivery count) of every group."""
    h = hashlib.sha256(b"stream-groups")
    for g in sorted(reply_pairs(x)["name"] for x in groups):
        consumers = client.execute_command("XINFO", "CONSUMERS", key, g)
        _feed(h, sorted(reply_pairs(c)["name"] for c in consumers))
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
