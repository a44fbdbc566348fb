"""The Chroma collection of chunk vectors (embedded here; the app tests use a server)."""

from __future__ import annotations

from pathlib import Path

from scholar_ops.aischolar.embedding import embed, embed_one
from scholar_ops.aischolar.store import VectorStore, chunk_id


def test_add_query_per_owner_and_delete(tmp_path: Path):
    store = VectorStore(str(tmp_path / "chroma"), "aischolar_chunks")
    texts = ["quokkas are marsupials", "graph neural networks", "quokkas smile a lot"]
    store.add(
        [chunk_id(i) for i in (1, 2, 3)],
        embed(texts),
        [
            {"document_id": 10, "owner_id": 1, "ordinal": 0},
            {"document_id": 10, "owner_id": 1, "ordinal": 1},
            {"document_id": 20, "owner_id": 2, "ordinal": 0},
        ],
    )
    assert store.count() == 3
    hits = store.query(embed_one("quokkas are marsupials"), owner_id=1, k=5)
    assert [i for i, _ in hits] == ["chunk-1", "chunk-2"]  # only owner 1's, nearest first
    assert 0.999 < hits[0][1] <= 1.0001 and hits[0][1] > hits[1][1]  # cosine similarity
    store.delete(["chunk-1"])
    store.add([], [], [])  # nothing to do is fine
    assert [i for i, _ in store.query(embed_one("quokkas"), owner_id=1, k=5)] == ["chunk-2"]
    assert store.query(embed_one("quokkas"), owner_id=99, k=5) == []

    again = VectorStore(str(tmp_path / "chroma"), "aischolar_chunks")  # persisted
    assert again.count() == 2
    meta = again._collection.metadata
    assert meta["hnsw:space"] == "cosine"
