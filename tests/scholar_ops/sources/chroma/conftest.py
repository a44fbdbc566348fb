"""Fixtures for the Chroma adapter tests: a seeded embedded store and a repository.

Data: 384-dimension embeddings drawn around a few cluster centres (like real text
embeddings) from a fixed numpy seed, unicode documents and metadata, some records
without a document or metadata, one collection per distance function.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage

DIM = 384
# name -> (space, records)
COLLECTIONS = {"papers_cosine": ("cosine", 1200), "chunks_l2": ("l2", 600), "notes_ip": ("ip", 400)}
LANGS = ["en", "fr", "日本語", "ελληνικά"]


def embeddings(rng: np.random.Generator, n: int, centres: int = 24) -> np.ndarray:
    c = rng.standard_normal((centres, DIM)).astype(np.float32)
    return (c[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, DIM))).astype(
        np.float32
    )


def records(rng: np.random.Generator, prefix: str, n: int) -> dict[str, Any]:
    ids = [f"{prefix}-{k:05d}-{rng.integers(1 << 30):08x}" for k in rng.permutation(n)]
    docs: list[str | None] = [
        None if i % 97 == 5 else f"Résumé {i} — naïve café ✓ 論文 {LANGS[i % 4]}" for i in range(n)
    ]
    metas: list[dict[str, Any] | None] = [
        None
        if i % 89 == 7
        else {
            "year": 2000 + i % 25,
            "lang": LANGS[i % 4],
            "score": round(float(rng.random()), 6),
            "title": f"Ünïcödé title {i} 🚀",
            "open_access": bool(i % 3),
        }
        for i in range(n)
    ]
    return {"ids": ids, "embeddings": embeddings(rng, n), "documents": docs, "metadatas": metas}


def seed(source: ChromaSource, seed: int = 7) -> None:
    client = source.client()
    rng = np.random.default_rng(seed)
    for name, (space, n) in COLLECTIONS.items():
        configuration: Any = {"hnsw": {"space": space, "ef_search": 120}}
        col = client.create_collection(
            name,
            embedding_function=None,
            configuration=configuration,
            metadata={"app": "AI Scholar", "description": f"{space} — ü"},
        )
        col.add(**records(rng, name, n))


def dump_collection(client: Any, name: str) -> dict[str, tuple[Any, ...]]:
    """id -> (document, metadata, uri, embedding as float32 bytes), paged."""
    col = client.get_collection(name, embedding_function=None)
    out: dict[str, tuple[Any, ...]] = {}
    offset = 0
    while True:
        r = col.get(
            limit=500,
            offset=offset,
            include=["embeddings", "documents", "metadatas", "uris"],
        )
        if not r["ids"]:
            return out
        emb = np.asarray(r["embeddings"], dtype=np.float32)
        for i, rid in enumerate(r["ids"]):
            out[rid] = (r["documents"][i], r["metadatas"][i] or None, r["uris"][i], emb[i])
        offset += len(r["ids"])


@dataclass
class Seeded:
    source: ChromaSource
    path: Path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """An embedded store with the three collections; tests must not modify it."""
    path = tmp_path_factory.mktemp("chroma-seeded") / "store"
    source = ChromaSource.embedded(path)
    seed(source)
    return Seeded(source, path)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(
        LocalStorage(tmp_path / "repo"), MasterKey.from_string("chroma-tests-master-key-0000")
    )


@pytest.fixture
def server_source(chroma_server: Any) -> Iterator[ChromaSource]:
    chroma_server.reset()
    yield ChromaSource.server(chroma_server.host, chroma_server.port)
    chroma_server.reset()
