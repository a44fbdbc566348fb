"""The demo's Redis, Chroma and uploads samples: deterministic, and their comparisons
find every kind of difference (a comparison that always says "equal" proves nothing)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.redis.server import RedisServer, throwaway_redis
from scholar_ops.testbed.sample import appdata

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def two_redis(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RedisServer, RedisServer]]:
    with (
        throwaway_redis(tmp_path_factory.mktemp("redis-a")) as a,
        throwaway_redis(tmp_path_factory.mktemp("redis-b")) as b,
    ):
        yield a, b


def _copy(src: RedisServer, dst: RedisServer) -> None:
    for db in appdata.REDIS_DBS:
        s, d = src.client(db), dst.client(db)
        try:
            d.flushdb()
            for key in s.scan_iter(count=1000):
                ttl = int(s.pttl(key))
                d.restore(key, max(ttl, 0), s.dump(key))  # type: ignore[arg-type]
        finally:
            s.close()
            d.close()


def test_redis_sample_comparison_and_churn(two_redis: tuple[RedisServer, RedisServer]) -> None:
    a, b = two_redis
    for server in (a, b):
        server.client().flushall()
    counts = appdata.load_redis(a, scale=0.1, seed=1)
    assert counts["db0"] > 300 and counts["db1"] > 40
    source = appdata.redis_contents(a)
    types = {t for keys in source.values() for t, _, _ in keys.values()}
    assert types == {"string", "hash", "list", "set", "zset", "stream"}
    assert any(exp is not None for keys in source.values() for _, _, exp in keys.values())

    _copy(a, b)
    assert appdata.redis_differences(source, appdata.redis_contents(b)) == []

    c = b.client(1)
    entries: Any = c.xrange("events", count=20)
    c.xack("events", "indexer", entries[-1][0])
    c.close()
    c = b.client(0)
    c.persist(next(c.scan_iter(match="session:*")))
    c.hset("feature-flags", "reranker", "none")
    c.close()
    diffs = appdata.redis_differences(source, appdata.redis_contents(b))
    assert len(diffs) == 3, diffs
    assert any("events" in d for d in diffs) and any("TTL" in d for d in diffs)

    changes = appdata.churn_redis(a, seed=3)
    assert changes["ended"] == 10
    diffs = appdata.redis_differences(source, appdata.redis_contents(a))
    assert any("keys missing" in d for d in diffs) and any("too many" in d for d in diffs)


def test_chroma_sample_comparison_and_churn(tmp_path: Path) -> None:
    a = ChromaSource.embedded(tmp_path / "a").client()
    b = ChromaSource.embedded(tmp_path / "b").client()
    counts = appdata.load_chroma(a, scale=0.1, seed=5)
    assert appdata.load_chroma(b, scale=0.1, seed=5) == counts
    assert counts["documents"] > 100 and counts["queries"] == 40
    docs = a.get_collection("documents", embedding_function=None)
    assert docs.metadata["hnsw:space"] == "cosine"
    record = docs.get(limit=1, include=["embeddings", "metadatas"])
    assert np.asarray(record["embeddings"]).shape == (1, appdata.EMBEDDING_DIMS)
    assert set(record["metadatas"][0]) >= {"doc_id", "year", "field"}  # type: ignore[index]
    assert appdata.chroma_differences(a, b) == []

    rid = record["ids"][0]
    emb = np.asarray(record["embeddings"], dtype=np.float32)
    b.get_collection("documents", embedding_function=None).update(ids=[rid], embeddings=emb * 1.001)
    assert appdata.chroma_differences(a, b) == ["documents: embeddings differ"]

    changes = appdata.churn_chroma(a, seed=2, base_seed=5)
    assert changes["deleted"] == 4 and changes["queries added"] == 15
    diffs = appdata.chroma_differences(a, b)
    assert any("ids missing" in d for d in diffs), diffs


def test_uploads_sample_comparison_and_churn(tmp_path: Path) -> None:
    src = tmp_path / "uploads"
    counts = appdata.make_uploads(src, scale=0.05, seed=9)
    assert counts["files"] >= 30 and counts["symlinks"] == 2
    assert (src / "users/5/notes/empty.txt").stat().st_size == 0
    assert (src / "config/secrets.env").stat().st_mode & 0o777 == 0o600
    assert any("論文" in p.name for p in src.rglob("*.pdf"))
    assert os.readlink(src / "users/3/old-draft.pdf") == "../../archive/removed.pdf"
    again = tmp_path / "again"
    assert appdata.make_uploads(again, scale=0.05, seed=9) == counts

    copy = tmp_path / "copy"
    shutil.copytree(src, copy, symlinks=True, copy_function=shutil.copy2)
    os.utime(copy, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns))
    for d in [p for p in copy.rglob("*") if p.is_dir()]:
        st = (src / d.relative_to(copy)).stat()
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
    for link in ("latest.pdf", "users/3/old-draft.pdf"):
        st = (src / link).lstat()
        os.utime(copy / link, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    assert appdata.tree_differences(src, copy) == []

    (copy / "config/app.yaml").chmod(0o640)
    first = sorted((copy / "users/1").iterdir())[0]
    data = bytearray(first.read_bytes())
    data[100] ^= 1
    st = first.stat()
    first.write_bytes(bytes(data))
    os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns))
    diffs = appdata.tree_differences(src, copy)
    assert any(d.startswith("config/app.yaml: mode") for d in diffs)
    assert any(d.startswith(f"users/1/{first.name}: content ") for d in diffs), diffs

    appdata.churn_uploads(src, seed=1)
    assert any(d.endswith(": missing") for d in appdata.tree_differences(src, copy))
