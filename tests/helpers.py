"""Reading back what the tests back up and restore: directory trees, Redis keyspaces,
Chroma collections made with explicit embeddings (no embedding model is downloaded)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, cast

import numpy as np
import redis

DIM = 384


def tree_state(root: Path) -> dict[str, tuple[str, int, str]]:
    """relative path -> (kind, mode, sha256 of a file / target of a link)."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("link", 0, os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777, "")
            else:
                out[rel] = ("file", st.st_mode & 0o7777, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def redis_value(c: redis.Redis, kind: bytes, key: bytes) -> Any:
    """A key's value, compared by content (DUMP payloads depend on insertion order)."""
    if kind == b"string":
        return c.get(key)
    if kind == b"hash":
        return c.hgetall(key)
    if kind == b"list":
        return c.lrange(key, 0, -1)
    if kind == b"set":
        return c.smembers(key)
    if kind == b"zset":
        return c.zrange(key, 0, -1, withscores=True)
    assert kind == b"stream", kind
    return c.xrange(key)


def redis_state(
    host: str, port: int, dbs: tuple[int, ...] = (0, 1)
) -> dict[tuple[int, bytes], tuple[bytes, Any, int]]:
    """(db, key) -> (type, value, TTL in ms or -1)."""
    state: dict[tuple[int, bytes], tuple[bytes, Any, int]] = {}
    for db in dbs:
        c = redis.Redis(host=host, port=port, db=db)
        try:
            for key in c.scan_iter(count=500):
                kind = cast(bytes, c.type(key))
                state[(db, key)] = (kind, redis_value(c, kind, key), int(c.pttl(key)))
        finally:
            c.close()
    return state


def fill_chroma(
    client: Any,
    collections: dict[str, int],
    *,
    seed: int = 7,
    metadata: dict[str, Any] | None = None,
    dim: int = DIM,
) -> None:
    """Collections of ``n`` records: float32 embeddings (384 dimensions by default),
    documents, metadatas."""
    rng = np.random.default_rng(seed)
    for name, n in collections.items():
        col = client.create_collection(name, embedding_function=None, metadata=metadata)
        col.add(
            ids=[f"{name}-{i}" for i in range(n)],
            embeddings=rng.standard_normal((n, dim)).astype(np.float32),
            documents=[f"{name} {i} ✓" for i in range(n)],
            metadatas=[{"year": 2000 + i % 20, "field": ["nlp", "cv"][i % 2]} for i in range(n)],
        )
