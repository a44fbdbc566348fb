"""Chroma: the collection of chunk vectors (ids ``chunk-<id>``, metadata document_id,
owner_id, ordinal), embedded or on a server. Embeddings are always passed in."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from scholar_ops.aischolar.embedding import DIMENSION


def chunk_id(chunk_pk: int) -> str:
    return f"chunk-{chunk_pk}"


class VectorStore:
    def __init__(self, where: str, collection: str) -> None:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        remote = where.startswith(("http://", "https://"))
        if remote:
            from urllib.parse import urlsplit

            u = urlsplit(where)
            self._client: Any = chromadb.HttpClient(
                host=u.hostname or "127.0.0.1",
                port=u.port or (443 if u.scheme == "https" else 8000),
                ssl=u.scheme == "https",
                settings=settings,
            )
        else:
            self._client = chromadb.PersistentClient(path=where, settings=settings)
        self._collection = self._client.get_or_create_collection(
            collection,
            embedding_function=None,
            metadata={"hnsw:space": "cosine", "dimension": DIMENSION},
        )
        # The embedded client is not safe for parallel writes; a server serialises them
        # itself, and HTTP calls from many threads keep searches concurrent.
        self._lock: AbstractContextManager[Any] = nullcontext() if remote else threading.Lock()

    def add(self, ids: list[str], vectors: list[list[float]], metas: list[dict[str, Any]]) -> None:
        if ids:
            with self._lock:
                self._collection.add(ids=ids, embeddings=vectors, metadatas=metas)

    def delete(self, ids: list[str]) -> None:
        if ids:
            with self._lock:
                self._collection.delete(ids=ids)

    def query(self, vector: list[float], owner_id: int, k: int) -> list[tuple[str, float]]:
        """(id, similarity) of the ``k`` nearest chunks of ``owner_id``."""
        with self._lock:
            res = self._collection.query(
                query_embeddings=[vector],
                n_results=k,
                where={"owner_id": owner_id},
                include=["distances"],
            )
        ids = res["ids"][0] if res["ids"] else []
        dists = (res.get("distances") or [[]])[0] or [0.0] * len(ids)
        return [(i, round(1.0 - float(d), 6)) for i, d in zip(ids, dists, strict=False)]

    def count(self) -> int:
        return int(self._collection.count())
