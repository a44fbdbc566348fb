"""The AI Scholar application's data besides PostgreSQL, for the demo and its test.

- **Redis** (`load_redis`): database 0 holds login sessions (hashes with TTLs), a
  cache of query answers (JSON strings), of query embeddings (binary float32) and of
  rendered pages (half binary), rate-limit counters (integer strings with TTLs), the
  popular documents and queries (sorted sets) and feature flags; database 1 the
  background jobs: queues (lists), job records (hashes, finished ones with a TTL), an
  event stream with two consumer groups (some entries pending) and the active
  workers (a set).
- **Chroma** (`load_chroma`): ``documents``, chunks of the uploaded papers with
  384-dimension float32 embeddings drawn around topic centres (cosine space, set
  through the collection metadata ``hnsw:space``), and ``queries``, past questions
  (Chroma's default l2 space). Always ``embedding_function=None`` and explicit
  embeddings: nothing is downloaded.
- **uploads** (`make_uploads`): PDF-like files per user (4 KiB to 3 MiB, random
  bytes between text objects), a unicode file name, an empty file, an empty
  directory, a relative and a dangling symlink, and a configuration directory with
  its own permissions; every mtime is set (nanoseconds included).

Everything is deterministic for a ``seed``; ``scale`` multiplies the sizes (1.0:
about 3,500 Redis keys, 2,200 Chroma records, 16 MB of uploads). Each part has a
"day of churn" (``churn_*``), and a comparison returning the differences between a
source and a restored copy (empty when identical), read with plain redis-py,
chromadb and os calls rather than the backup code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import stat
import struct
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scholar_ops.testbed.sample import redisvalues
from scholar_ops.testbed.sample.aischolar import GLUE, WORDS

if TYPE_CHECKING:
    import redis
    from chromadb.api import ClientAPI

    from scholar_ops.sources.redis.server import RedisServer

#: the instant the generated history ends (the PostgreSQL sample's HISTORY_END)
HISTORY_END = datetime(2025, 1, 1, tzinfo=UTC)
EMBEDDING_DIMS = 384
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
FIELDS = ("nlp", "information retrieval", "vision", "biology", "physics", "economics",
          "medicine", "robotics", "climate", "théorie")  # fmt: skip
REDIS_DBS = (0, 1)
CHROMA_COLLECTIONS = ("documents", "queries")

# The AI Scholar vocabulary, shared with the PostgreSQL sample.
_WORDS = WORDS
_GLUE = GLUE


def _n(base: int, scale: float, minimum: int = 3) -> int:
    return max(minimum, round(base * scale))


def _text(rng: random.Random, words: int) -> str:
    vocab = _GLUE + _WORDS
    return " ".join(rng.choice(vocab) for _ in range(words)).capitalize() + "."


def _question(rng: random.Random) -> str:
    start = rng.choice(("What is", "How does", "Compare", "Summarize", "Why does", "Explain"))
    return f"{start} {' '.join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8)))}?"


# ---------------------------------------------------------------------------- Redis


def load_redis(server: RedisServer, *, scale: float = 1.0, seed: int = 2026) -> dict[str, int]:
    """Fill databases 0 and 1 of ``server`` (assumed empty); returns keys per database."""
    rng = random.Random(seed)
    pool = redisvalues.text_pool(rng, 1 << 18)
    users = _n(300, scale)
    docs = _n(6000, scale)
    now = int(HISTORY_END.timestamp())
    c0, c1 = server.client(0), server.client(1)
    try:
        p = c0.pipeline(transaction=False)
        for _ in range(_n(800, scale)):
            _session(p, rng, users, now)
        for _ in range(_n(1200, scale)):
            q = _question(rng)
            key = f"cache:answer:{hashlib.sha1(q.encode()).hexdigest()}"
            answer = {
                "query": q,
                "answer": _text(rng, rng.randint(40, 400)),
                "sources": [rng.randrange(1, docs) for _ in range(rng.randint(1, 8))],
                "model": "llama3-8b",
                "latency_ms": round(rng.uniform(80, 3000), 1),
            }
            p.set(key, json.dumps(answer).encode(), ex=rng.randrange(3600, 6 * 3600))
        for _ in range(_n(600, scale)):
            key = f"cache:embedding:{rng.randbytes(10).hex()}"
            vec = struct.pack(
                f"<{EMBEDDING_DIMS}f", *(rng.gauss(0, 0.05) for _ in range(EMBEDDING_DIMS))
            )
            p.set(key.encode(), vec, ex=rng.randrange(2 * 3600, 24 * 3600))
        for i in range(_n(300, scale)):
            key = f"cache:render:{rng.randrange(1, docs)}:{i}"
            page = redisvalues.value(rng, rng.randrange(200, 20_000), pool)
            p.set(key, page, ex=rng.randrange(3600, 12 * 3600) if i % 3 else None)
        for i in range(_n(500, scale)):
            key = f"ratelimit:user:{i % users + 1}:{now // 3600 - i // users}"
            p.incrby(key, rng.randrange(1, 120))
            p.expire(key, rng.randrange(3600, 2 * 3600))
        p.zadd(
            "popular:documents",
            {
                f"doc:{d}": rng.paretovariate(1.2)
                for d in rng.sample(range(1, docs), _n(1000, scale))
            },
        )
        p.zadd(
            "popular:queries",
            {_question(rng): rng.randrange(1, 500) for _ in range(_n(200, scale))},
        )
        p.hset(
            "feature-flags", mapping={"hybrid-search": "on", "reranker": "bge-v2", "max-top-k": 20}
        )
        p.hset(
            f"stats:{HISTORY_END:%Y-%m-%d}",
            mapping={"queries": 10_431, "uploads": 212, "users": users},
        )
        p.execute()

        p = c1.pipeline(transaction=False)
        jobs = _n(400, scale)
        for j in range(jobs):
            status = "done" if j < jobs * 3 // 4 else rng.choice(("queued", "running", "failed"))
            job: Any = {
                "kind": rng.choice(("ingest", "embed", "reindex")),
                "document_id": rng.randrange(1, docs),
                "status": status,
                "attempts": rng.randint(1, 3),
                "created_at": now - rng.randrange(86_400),
            }
            p.hset(f"job:{j}", mapping=job)
            if status == "done":
                p.expire(f"job:{j}", rng.randrange(6 * 3600, 48 * 3600))
            if status == "queued":
                p.rpush(f"queue:{job['kind']}", json.dumps({"job": j, **job}))
        p.rpush("queue:dead", *[json.dumps({"job": j, "error": "timeout"}) for j in range(3)])
        p.sadd("workers:active", *[f"worker-{w}@node-{w % 3}" for w in range(8)])
        p.execute()
        p = c1.pipeline(transaction=False)
        for _ in range(_n(2000, scale)):
            p.xadd(
                "events",
                {
                    "type": rng.choice(("upload", "query", "login", "feedback")),
                    "user": rng.randrange(1, users + 1),
                    "doc": rng.randrange(1, docs),
                },
            )
        p.execute()
        c1.xgroup_create("events", "indexer", id="0")
        c1.xgroup_create("events", "notifier", id="0")
        c1.xreadgroup("indexer", "indexer-1", {"events": ">"}, count=_n(2000, scale) - 5)
        c1.xreadgroup("notifier", "notifier-1", {"events": ">"}, count=20)
        first: Any = c1.xrange("events", count=10)
        acked = [m[0] for m in first]
        c1.xack("events", "indexer", *acked)
        return {f"db{db}": int(c.dbsize()) for db, c in ((0, c0), (1, c1))}
    finally:
        c0.close()
        c1.close()


def _session(p: Any, rng: random.Random, users: int, now: int) -> None:
    token = rng.randbytes(16).hex()
    uid = rng.randrange(1, users + 1)
    p.hset(
        f"session:{token}",
        mapping={
            "user_id": uid,
            "email": f"user{uid}@example.org",
            "created_at": now - rng.randrange(86_400),
            "last_seen": now - rng.randrange(3600),
            "csrf": rng.randbytes(12).hex(),
            "prefs": json.dumps({"theme": rng.choice(("dark", "light")), "top_k": 10}),
        },
    )
    p.expire(f"session:{token}", rng.randrange(3600, 24 * 3600))


def churn_redis(server: RedisServer, *, seed: int = 7) -> dict[str, int]:
    """A few changes: sessions come and go, answers are cached, counters and the
    popularity move, jobs are queued and taken, events arrive."""
    rng = random.Random(seed)
    c0, c1 = server.client(0), server.client(1)
    try:
        sessions = sorted(c0.scan_iter(match="session:*", count=1000))
        ended = rng.sample(sessions, min(10, len(sessions)))
        touched = rng.sample(
            [s for s in sessions if s not in ended], min(20, len(sessions) - len(ended))
        )
        now = int(HISTORY_END.timestamp()) + 86_400
        p = c0.pipeline(transaction=False)
        for _ in range(15):
            _session(p, rng, 300, now)
        p.delete(*ended)
        for key in touched:
            p.hset(key, "last_seen", now)
            p.expire(key, 24 * 3600)
        for _ in range(25):
            q = _question(rng)
            answer = json.dumps({"query": q, "answer": _text(rng, 120)}).encode()
            p.set(f"cache:answer:{hashlib.sha1(q.encode()).hexdigest()}", answer, ex=4 * 3600)
        for u in range(1, 41):
            p.incrby(f"ratelimit:user:{u}:{now // 3600}", rng.randrange(1, 30))
            p.expire(f"ratelimit:user:{u}:{now // 3600}", 3600)
        for d in rng.sample(range(1, 200), 50):
            p.zincrby("popular:documents", 1.0, f"doc:{d}")
        p.set(b"cache:embedding:churn", rng.randbytes(EMBEDDING_DIMS * 4), ex=3600)
        p.execute()
        p = c1.pipeline(transaction=False)
        for j in range(10):
            p.rpush("queue:ingest", json.dumps({"job": 10_000 + j, "kind": "ingest"}))
        p.lpop("queue:ingest", 5)
        for _ in range(25):
            p.xadd(
                "events",
                {"type": "query", "user": rng.randrange(1, 300), "doc": rng.randrange(1, 6000)},
            )
        p.execute()
        return {
            "sessions new": 15,
            "ended": len(ended),
            "touched": len(touched),
            "answers cached": 25,
            "counters": 40,
            "jobs queued": 10,
            "events": 25,
        }
    finally:
        c0.close()
        c1.close()


#: (type, value, absolute expiry in ms or None) per key
RedisKey = tuple[str, Any, int | None]


def redis_contents(
    server: RedisServer, dbs: Iterable[int] = range(16)
) -> dict[int, dict[bytes, RedisKey]]:
    """Every key of every non-empty database: its type, its value read type by type
    (streams with their groups and pending entries) and its absolute expiry."""
    out: dict[int, dict[bytes, RedisKey]] = {}
    for db in dbs:
        c = server.client(db)
        try:
            keys: list[bytes] = sorted(c.scan_iter(count=1000))
            if not keys:
                continue
            p = c.pipeline(transaction=False)
            for k in keys:
                p.type(k)
                p.pttl(k)
            meta = p.execute()
            now_ms = int(time.time() * 1000)
            types = [t.decode() for t in meta[0::2]]
            expiries = [now_ms + int(t) if int(t) >= 0 else None for t in meta[1::2]]
            p = c.pipeline(transaction=False)
            for k, typ in zip(keys, types, strict=True):
                _read_value(p, k, typ)
            values = p.execute()
            db_out: dict[bytes, RedisKey] = {}
            for k, typ, value, exp in zip(keys, types, values, expiries, strict=True):
                if typ == "set":
                    value = sorted(value)
                elif typ == "stream":
                    value = (value, _stream_extra(c, k))
                db_out[k] = (typ, value, exp)
            out[db] = db_out
        finally:
            c.close()
    return out


def _read_value(p: Any, key: bytes, typ: str) -> None:
    if typ == "string":
        p.get(key)
    elif typ == "hash":
        p.hgetall(key)
    elif typ == "list":
        p.lrange(key, 0, -1)
    elif typ == "set":
        p.smembers(key)
    elif typ == "zset":
        p.zrange(key, 0, -1, withscores=True)
    elif typ == "stream":
        p.xrange(key, "-", "+")
    else:
        raise ValueError(f"unexpected Redis type {typ} of {key!r}")


def _stream_extra(c: redis.Redis, key: bytes) -> Any:
    info: Any = c.xinfo_stream(key)
    groups: Any = c.xinfo_groups(key)
    out: list[Any] = [info["last-generated-id"], info["length"]]
    for g in sorted(groups, key=lambda g: g["name"]):
        pending: Any = c.xpending_range(key, g["name"], "-", "+", 100_000)
        consumers: Any = c.xinfo_consumers(key, g["name"])
        out.append((
            g["name"], g["last-delivered-id"], g["pending"],
            [(x["message_id"], x["consumer"], x["times_delivered"]) for x in pending],
            sorted((x["name"], x["pending"]) for x in consumers),
        ))  # fmt: skip
    return out


def redis_differences(
    source: dict[int, dict[bytes, RedisKey]],
    restored: dict[int, dict[bytes, RedisKey]],
    *,
    ttl_tolerance_ms: int = 5000,
) -> list[str]:
    """What differs between two ``redis_contents``: keys, types, values, expiries
    (equal within ``ttl_tolerance_ms``: a restore copies the remaining TTL)."""
    diffs: list[str] = []
    for db in sorted(set(source) | set(restored)):
        a, b = source.get(db, {}), restored.get(db, {})
        missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        if missing:
            diffs.append(f"db {db}: {len(missing)} keys missing, e.g. {missing[:3]}")
        if extra:
            diffs.append(f"db {db}: {len(extra)} keys too many, e.g. {extra[:3]}")
        for key in sorted(set(a) & set(b)):
            (ta, va, ea), (tb, vb, eb) = a[key], b[key]
            if ta != tb:
                diffs.append(f"db {db} {key!r}: type {ta} != {tb}")
            elif va != vb:
                diffs.append(f"db {db} {key!r}: {ta} values differ")
            elif (ea is None) != (eb is None):
                diffs.append(
                    f"db {db} {key!r}: TTL {'none' if ea is None else 'set'} != {'none' if eb is None else 'set'}"
                )
            elif ea is not None and eb is not None and abs(ea - eb) > ttl_tolerance_ms:
                diffs.append(f"db {db} {key!r}: expiry differs by {abs(ea - eb)} ms")
    return diffs


def redis_key_count(contents: dict[int, dict[bytes, RedisKey]]) -> int:
    return sum(len(keys) for keys in contents.values())


# ---------------------------------------------------------------------------- Chroma


def _centres(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((32, EMBEDDING_DIMS)).astype(np.float32)


def _embeddings(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), n)]
    return (picks + 0.35 * rng.standard_normal((n, EMBEDDING_DIMS))).astype(np.float32)


def _chunk_records(
    rng: np.random.Generator, prng: random.Random, centres: np.ndarray, doc_ids: Sequence[int]
) -> dict[str, Any]:
    ids: list[str] = []
    documents: list[str] = []
    metadatas: list[dict[str, Any]] = []
    for doc_id in doc_ids:
        year, field = 2000 + doc_id % 25, FIELDS[doc_id % len(FIELDS)]
        for k in range(prng.randint(3, 9)):
            ids.append(f"doc-{doc_id}-chunk-{k}")
            documents.append(_text(prng, prng.randint(60, 110)))
            metadatas.append({"doc_id": doc_id, "year": year, "field": field, "chunk": k})
    return {
        "ids": ids,
        "embeddings": _embeddings(rng, centres, len(ids)),
        "documents": documents,
        "metadatas": metadatas,
    }


def _add(col: Any, records: dict[str, Any], batch: int = 1000) -> None:
    for i in range(0, len(records["ids"]), batch):
        col.add(**{k: v[i : i + batch] for k, v in records.items()})


def load_chroma(client: ClientAPI, *, scale: float = 1.0, seed: int = 2026) -> dict[str, int]:
    """Create and fill the ``documents`` and ``queries`` collections; returns records per collection."""
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    centres = _centres(seed)
    documents = client.create_collection(
        "documents",
        embedding_function=None,
        metadata={"hnsw:space": "cosine", "app": "AI Scholar", "model": EMBEDDING_MODEL},
    )
    chunks = _chunk_records(rng, prng, centres, range(1, _n(300, scale) + 1))
    _add(documents, chunks)
    queries = client.create_collection(
        "queries",
        embedding_function=None,
        metadata={
            "app": "AI Scholar",
            "model": EMBEDDING_MODEL,
            "description": "questions asked — ü",
        },
    )
    n = _n(400, scale)
    _add(
        queries,
        {
            "ids": [f"query-{i}" for i in range(n)],
            "embeddings": _embeddings(rng, centres, n),
            "documents": [_question(prng) for _ in range(n)],
            "metadatas": [
                {
                    "user_id": prng.randrange(1, 300),
                    "top_k": prng.choice((5, 10, 20)),
                    "field": FIELDS[i % len(FIELDS)],
                    "answered": bool(i % 7),
                }
                for i in range(n)
            ],
        },
    )
    return {"documents": documents.count(), "queries": queries.count()}


def churn_chroma(client: ClientAPI, *, seed: int = 7, base_seed: int = 2026) -> dict[str, int]:
    """A new paper's chunks, a few chunks re-embedded after an edit, a deleted paper's
    chunks, new questions."""
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    centres = _centres(base_seed)
    documents = client.get_collection("documents", embedding_function=None)
    queries = client.get_collection("queries", embedding_function=None)
    existing = sorted(documents.get(include=[])["ids"])
    new = _chunk_records(rng, prng, centres, [100_000 + seed])
    documents.add(**new)
    updated = prng.sample(existing, min(10, len(existing)))
    documents.update(
        ids=updated,
        embeddings=_embeddings(rng, centres, len(updated)),
        documents=[_text(prng, 80) + " (revised)" for _ in updated],
        metadatas=[
            {"doc_id": int(u.split("-")[1]), "year": 2025, "field": "nlp", "revised": True}
            for u in updated
        ],
    )
    gone = sorted(set(existing) - set(updated))[:4]
    documents.delete(ids=gone)
    q0 = queries.count()
    queries.add(
        ids=[f"query-{q0 + i}" for i in range(15)],
        embeddings=_embeddings(rng, centres, 15),
        documents=[_question(prng) for _ in range(15)],
        metadatas=[{"user_id": prng.randrange(1, 300), "top_k": 10} for _ in range(15)],
    )
    return {
        "chunks added": len(new["ids"]),
        "re-embedded": len(updated),
        "deleted": len(gone),
        "queries added": 15,
    }


def chroma_records(client: ClientAPI, name: str) -> dict[str, tuple[Any, Any, np.ndarray]]:
    """id -> (document, metadata, float32 embedding) of every record, paged."""
    col = client.get_collection(name, embedding_function=None)
    out: dict[str, tuple[Any, Any, np.ndarray]] = {}
    offset = 0
    while True:
        r = col.get(limit=1000, offset=offset, include=["embeddings", "documents", "metadatas"])
        if not r["ids"]:
            return out
        emb = np.asarray(r["embeddings"], dtype=np.float32)
        docs, metas = r["documents"] or [], r["metadatas"] or []
        for i, rid in enumerate(r["ids"]):
            out[rid] = (docs[i], metas[i] or None, emb[i])
        offset += len(r["ids"])


def chroma_differences(
    source: ClientAPI, restored: ClientAPI, *, queries: int = 6, seed: int = 11
) -> list[str]:
    """What differs between two stores: collection names, metadata and index space;
    per collection ids, documents, metadatas and embeddings (``allclose`` with
    ``rtol=1e-6``: a cosine index may store a value 1 ulp apart), and the ids of the
    ten nearest neighbours of a few query vectors."""
    diffs: list[str] = []
    names_a = sorted(c.name for c in source.list_collections())
    names_b = sorted(c.name for c in restored.list_collections())
    if names_a != names_b:
        return [f"collections {names_a} != {names_b}"]
    rng = np.random.default_rng(seed)
    for name in names_a:
        ca = source.get_collection(name, embedding_function=None)
        cb = restored.get_collection(name, embedding_function=None)
        if (ca.metadata or None) != (cb.metadata or None):
            diffs.append(f"{name}: metadata {ca.metadata} != {cb.metadata}")
        space_a, space_b = _space(ca), _space(cb)
        if space_a != space_b:
            diffs.append(f"{name}: space {space_a} != {space_b}")
        a, b = chroma_records(source, name), chroma_records(restored, name)
        if set(a) != set(b):
            diffs.append(
                f"{name}: {len(set(a) - set(b))} ids missing, {len(set(b) - set(a))} too many"
            )
            continue
        ids = sorted(a)
        for field, i in (("documents", 0), ("metadatas", 1)):
            bad = [rid for rid in ids if a[rid][i] != b[rid][i]]
            if bad:
                diffs.append(f"{name}: {len(bad)} {field} differ, e.g. {bad[0]}")
        if ids:
            ea, eb = np.stack([a[r][2] for r in ids]), np.stack([b[r][2] for r in ids])
            if ea.shape != eb.shape or not np.allclose(ea, eb, rtol=1e-6, atol=1e-9):
                diffs.append(f"{name}: embeddings differ")
            picks = ea[rng.choice(len(ids), min(queries // 2, len(ids)), replace=False)]
            probes = np.concatenate(
                [picks, rng.standard_normal((queries - len(picks), EMBEDDING_DIMS))]
            )
            probes = probes.astype(np.float32)
            k = min(10, len(ids))
            qa = ca.query(query_embeddings=probes, n_results=k, include=["distances"])
            qb = cb.query(query_embeddings=probes, n_results=k, include=["distances"])
            if qa["ids"] != qb["ids"]:
                diffs.append(f"{name}: nearest neighbours differ")
            elif not np.allclose(
                np.asarray(qa["distances"]), np.asarray(qb["distances"]), rtol=1e-5, atol=1e-6
            ):
                diffs.append(f"{name}: nearest-neighbour distances differ")
    return diffs


def _space(col: Any) -> Any:
    cfg = getattr(col, "configuration_json", None) or {}
    hnsw = cfg.get("hnsw") or {}
    return hnsw.get("space") or (col.metadata or {}).get("hnsw:space") or "l2"


def chroma_record_count(client: ClientAPI) -> int:
    return sum(client.get_collection(c.name).count() for c in client.list_collections())


# ---------------------------------------------------------------------------- uploads


def _pdf(rng: random.Random, size: int, title: str) -> bytes:
    """A PDF-like blob of about ``size`` bytes: text objects between binary streams."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    out += (
        f"1 0 obj\n<< /Type /Catalog /Title ({title}) /Producer (AI Scholar) >>\nendobj\n".encode()
    )
    obj = 2
    while len(out) < size - 32:
        text = _text(rng, rng.randint(20, 200)).encode()
        blob = rng.randbytes(min(rng.randint(2_000, 200_000), max(size - len(out) - 64, 0)))
        out += f"{obj} 0 obj\n<< /Length {len(blob)} >>\nstream\n".encode() + blob
        out += b"\nendstream\nendobj\n% " + text + b"\n"
        obj += 1
    out += b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return bytes(out)


def _mtime_ns(rng: random.Random, days: float = 365) -> int:
    when = HISTORY_END - timedelta(seconds=rng.uniform(0, days * 86_400))
    return int(when.timestamp()) * 1_000_000_000 + rng.randrange(1_000_000_000)


def _write(path: Path, data: bytes, mode: int, mtime_ns: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def make_uploads(root: Path, *, scale: float = 1.0, seed: int = 2026) -> dict[str, int]:
    """Create the uploads tree in ``root`` (missing or empty); returns its counts and bytes."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    lo, hi = math.log(4096), math.log(3 << 20)
    first: Path | None = None
    for uid in range(1, 7):
        for k in range(5 + uid % 2):
            size = (
                int(math.exp(rng.uniform(lo, hi)) * scale)
                if (uid, k) != (1, 0)
                else int((3 << 20) * scale)
            )
            path = (
                root
                / "users"
                / str(uid)
                / f"{1000 * uid + k}-{rng.choice(_WORDS)}-{rng.choice(_WORDS)}.pdf"
            )
            _write(path, _pdf(rng, max(size, 512), path.stem), 0o644, _mtime_ns(rng))
            first = first or path
    assert first is not None
    _write(root / "users/4/Über Ähnlichkeitssuche – 論文 (v2) 🚀.pdf",
           _pdf(rng, int(250_000 * scale) + 512, "unicode"), 0o644, _mtime_ns(rng))  # fmt: skip
    _write(root / "users/5/notes/empty.txt", b"", 0o644, _mtime_ns(rng))
    _write(root / "config/app.yaml",
           b"embedding_model: all-MiniLM-L6-v2\nchunk_size: 550\ntop_k: 10\n", 0o644, _mtime_ns(rng))  # fmt: skip
    _write(
        root / "config/secrets.env",
        b"OPENAI_API_KEY=sk-demo-not-a-real-key\n",
        0o600,
        _mtime_ns(rng),
    )
    _write(
        root / "config/prompts/system.txt", _text(rng, 80).encode() + b"\n", 0o644, _mtime_ns(rng)
    )
    _write(root / "config/hooks/post-upload.sh", b"#!/bin/sh\nexec true\n", 0o755, _mtime_ns(rng))
    (root / "tmp").mkdir()
    os.symlink(first.relative_to(root), root / "latest.pdf")
    os.symlink("../../archive/removed.pdf", root / "users/3/old-draft.pdf")  # dangling
    os.utime(root / "latest.pdf", ns=(_mtime_ns(rng),) * 2, follow_symlinks=False)
    (root / "config").chmod(0o750)
    dirs = sorted(
        (p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()),
        key=lambda p: -len(p.parts),
    )
    for d in [*dirs, root]:
        t = _mtime_ns(rng, 30)
        os.utime(d, ns=(t, t))
    return tree_counts(root)


def churn_uploads(root: Path, *, seed: int = 7) -> dict[str, int]:
    """One new upload."""
    rng = random.Random(seed)
    data = _pdf(rng, 180_000, "new upload")
    path = root / "users/2" / f"2999-new-{rng.randrange(1000)}.pdf"
    path.write_bytes(data)
    return {"new files": 1, "bytes": len(data)}


def _tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """relative path -> (kind, mode, mtime_ns, sha256 / link target / None, size)."""
    out: dict[str, tuple[Any, ...]] = {}

    def walk(d: Path, rel: str) -> None:
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            name = f"{rel}{entry.name}"
            if stat.S_ISLNK(st.st_mode):
                out[name] = ("symlink", None, st.st_mtime_ns, os.readlink(entry.path), None)
            elif stat.S_ISDIR(st.st_mode):
                out[name] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, None, None)
                walk(Path(entry.path), name + "/")
            else:
                digest = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
                out[name] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, digest, st.st_size)

    st = root.stat()
    out["."] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, None, None)
    walk(root, "")
    return out


def tree_counts(root: Path) -> dict[str, int]:
    t = _tree(root)
    kinds = [v[0] for v in t.values()]
    return {
        "files": kinds.count("file"),
        "dirs": kinds.count("dir") - 1,
        "symlinks": kinds.count("symlink"),
        "bytes": sum(v[4] for v in t.values() if v[0] == "file"),
    }


def tree_differences(source: Path, restored: Path) -> list[str]:
    """What differs between two trees: paths, kinds, contents (sha256), permissions,
    mtimes (to the nanosecond) and symlink targets."""
    a, b = _tree(source), _tree(restored)
    diffs = [f"{p}: missing" for p in sorted(set(a) - set(b))]
    diffs += [f"{p}: not in the source" for p in sorted(set(b) - set(a))]
    labels = ("kind", "mode", "mtime", "content", "size")
    for p in sorted(set(a) & set(b)):
        for label, x, y in zip(labels, a[p], b[p], strict=True):
            if x != y:
                shown = (
                    (oct(x), oct(y))
                    if label == "mode" and x is not None and y is not None
                    else (x, y)
                )
                diffs.append(f"{p}: {label} {shown[0]} != {shown[1]}")
    return diffs
