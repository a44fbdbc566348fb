"""Test data for Redis backups and an independent fingerprint of a whole server.

`fill_kitchen_sink` writes every data type into databases 0, 1 and 5: small and
large encodings (listpack/intset and hashtable/skiplist/quicklist), streams with
consumer groups and pending entries, TTLs, binary keys and values (all 256 byte
values), an empty string, a 5 MB string and a function library.

`fingerprint` reads a server back with plain redis-py commands (not the adapter's
digest code), so a restore is compared with its source by other means.
"""

from __future__ import annotations

import random
from typing import Any

import redis

from scholar_ops.sources.redis.server import RedisServer

DBS = (0, 1, 5)
TTL_KEYS = {0: [b"session:1", b"cache:big"], 1: [b"ttl:hash"], 5: [b"ttl:zset"]}
LIBRARY = "#!lua name=scholarlib\nredis.register_function('answer', function() return 42 end)"
ALL_BYTES = bytes(range(256))


def fill_kitchen_sink(server: RedisServer) -> None:
    rng = random.Random(7)
    c0, c1, c5 = (server.client(db) for db in DBS)
    try:
        # db 0: strings and everything binary
        c0.set(b"greeting", b"hello")
        c0.set(b"empty", b"")
        c0.set(ALL_BYTES, ALL_BYTES)  # a key made of every byte value, and such a value
        c0.set(b"\x00", b"\x00\r\n$-1\r\n")
        c0.set(b"big:5mb", rng.randbytes(5 * 1000 * 1000))
        c0.set(b"counter", 12345)  # an integer-encoded string
        c0.set(b"float", b"3.14159")
        c0.set(b"session:1", b"user=42", ex=3600)
        c0.set(b"cache:big", rng.randbytes(100_000), px=7_200_000)
        c0.setbit(b"bitmap", 100_000, 1)
        c0.pfadd(b"hll", *[f"visitor-{i}" for i in range(1000)])
        # db 1: lists and hashes, small (listpack) and large (quicklist/hashtable)
        c1.rpush(b"list:small", b"a", b"", ALL_BYTES, b"a")
        c1.rpush(b"list:big", *[rng.randbytes(rng.randint(1, 300)) for _ in range(5000)])
        c1.hset(b"hash:small", mapping={b"f1": b"v1", b"": b"empty field", ALL_BYTES: b"x"})
        c1.hset(
            b"hash:big", mapping={f"field:{i}".encode(): rng.randbytes(64) for i in range(3000)}
        )
        c1.hset(b"ttl:hash", mapping={b"a": b"1"})
        c1.expire(b"ttl:hash", 1800)
        # db 5: sets, sorted sets, streams
        c5.sadd(b"set:ints", *range(100))  # intset
        c5.sadd(b"set:small", b"x", b"y", ALL_BYTES)
        c5.sadd(b"set:big", *[f"member:{i}" for i in range(2000)])
        c5.zadd(b"zset:small", {b"a": 1.5, b"b": -2, ALL_BYTES: 1e300, b"inf": float("inf")})
        c5.zadd(b"zset:big", {f"paper:{i}".encode(): rng.random() for i in range(2000)})
        c5.zadd(b"ttl:zset", {b"m": 1})
        c5.pexpire(b"ttl:zset", 600_000)
        c5.geoadd(b"geo", (13.361389, 38.115556, b"Palermo"))
        for i in range(50):
            c5.xadd(b"stream:events", {b"type": b"view", b"paper": str(i).encode(), b"n": b"x" * i})
        c5.xadd(b"stream:events", {b"dup": b"1"})
        c5.xgroup_create(b"stream:events", b"indexer", id=b"0")
        c5.xgroup_create(b"stream:events", b"notifier", id=b"$")
        c5.xreadgroup("indexer", "worker-1", {b"stream:events": b">"}, count=10)
        c5.xreadgroup("indexer", "worker-2", {b"stream:events": b">"}, count=5)
        first: Any = c5.xrange(b"stream:events", count=2)
        c5.xack(b"stream:events", b"indexer", first[0][0])
        c5.xgroup_createconsumer(b"stream:events", b"notifier", b"idle-consumer")
        c5.xadd(b"stream:empty", {b"a": b"1"})
        c5.xtrim(b"stream:empty", maxlen=0)
        c0.execute_command("FUNCTION", "LOAD", LIBRARY)
    finally:
        for c in (c0, c1, c5):
            c.close()


def _value(c: redis.Redis, key: bytes, typ: str) -> Any:
    if typ == "string":
        return c.get(key)
    if typ == "list":
        return c.lrange(key, 0, -1)
    if typ == "hash":
        return c.hgetall(key)
    if typ == "set":
        return c.smembers(key)
    if typ == "zset":
        return c.zrange(key, 0, -1, withscores=True)
    if typ == "stream":
        groups = sorted(
            (g["name"], g["consumers"], g["pending"], g["last-delivered-id"])
            for g in c.xinfo_groups(key)
        )
        pending = {
            g[0]: [
                (p["message_id"], p["consumer"], p["times_delivered"])
                for p in c.xpending_range(key, g[0], "-", "+", 1000)
            ]
            for g in groups
        }
        consumers = {
            g[0]: sorted((x["name"], x["pending"]) for x in c.xinfo_consumers(key, g[0]))
            for g in groups
        }
        info = c.xinfo_stream(key)
        return (
            c.execute_command("XRANGE", key, "-", "+"),
            info["last-generated-id"],
            groups,
            pending,
            consumers,
        )
    raise AssertionError(f"unexpected type {typ}")


def fingerprint(server: RedisServer, dbs: tuple[int, ...] = tuple(range(16))) -> dict[int, Any]:
    """{db: {key: (type, value, has a TTL)}} for every non-empty database."""
    out: dict[int, Any] = {}
    for db in dbs:
        c = server.client(db, protocol=2)
        c.set_response_callback("XRANGE", lambda r, **_: r)  # repeated field names too
        try:
            keys = {}
            for key in c.scan_iter(count=1000):
                typ = c.type(key).decode()  # type: ignore[union-attr]
                keys[key] = (typ, _value(c, key, typ), c.pttl(key) >= 0)
            if keys:
                out[db] = keys
        finally:
            c.close()
    return out


def ttls(server: RedisServer) -> dict[tuple[int, bytes], int]:
    out = {}
    for db, keys in TTL_KEYS.items():
        c = server.client(db)
        try:
            for k in keys:
                out[(db, k)] = int(c.pttl(k))
        finally:
            c.close()
    return out


def functions(server: RedisServer) -> list[Any]:
    c = server.client(protocol=2)
    try:
        return [
            dict(zip(lib[::2], lib[1::2], strict=True))[b"library_name"]
            for lib in c.execute_command("FUNCTION", "LIST")
        ]
    finally:
        c.close()
