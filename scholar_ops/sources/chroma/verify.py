"""Verifying a restored Chroma collection: its data, exactly, and its index, by recall.

Digests (``CollectionDigest``): per collection, one digest per field (ids,
documents, metadata, uris, embeddings). Each record's field is hashed with its
id (BLAKE2b-256), and the record hashes are added modulo 2**256: the digest does
not depend on the order Chroma returns records in, is computed while streaming
(one 32-byte sum per field) and names no record. A backup records them in the
snapshot's details; the restore computes them again from the restored
collection, read back, and compares them exactly.

The read-back runs beside the backup's own stream, batch by batch (the restored
records fetched by id): every record is compared field by field, so a difference
names its record. Embeddings compare as float32 bytes, bit for bit, except in a
cosine collection: Chroma keeps those normalized with their norm and hands back
norm x unit vector, within a few float32 ulps of what was added (it is not even
stable across round trips), so there each component must be within
``COSINE_ATOL_ULPS`` ulps of the vector's norm (the same direction to float32
precision); the digest of the stream is still compared exactly.

Nearest neighbours: for ``samples`` records spread over the collection, the
restored index's top ``k`` (HNSW: approximate) is compared with the exact top
``k`` computed by brute force (numpy, float64) from the restored embeddings in the
collection's space (l2: squared distance, ip: 1 - dot, cosine: 1 - cosine), in the
same streaming pass (a running top ``k`` per query, bounded memory). An id the index
returns counts as found when its exact distance is at most the exact k-th
distance (ties within float32 resolution, ``TIE_RTOL``, are not misses). The mean
recall must reach ``min_recall`` (``DEFAULT_MIN_RECALL``, 0.9), or, when the
backup measured the source's own index lower (the same probe, run while
exporting: ``index_recall`` in the snapshot's details), that figure minus
``RECALL_MARGIN`` (0.1): an index restored as good as the one backed up passes,
whatever HNSW makes of the data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DIGEST_FORMAT = "blake2b-256-sum/1"
FIELDS = ("ids", "documents", "metadatas", "uris", "embeddings")
SINGULAR = dict(zip(FIELDS, ("id", "document", "metadata", "uri", "embedding"), strict=True))
_MOD = 1 << 256

#: Mean recall@k of the restored index against exact neighbours that passes.
DEFAULT_MIN_RECALL = 0.9
#: When the source's own index did worse at backup time, the restored one may do this
#: much worse than it (two builds of an approximate index differ; 50 samples vary).
RECALL_MARGIN = 0.1
#: Sample queries per collection, and neighbours per query.
DEFAULT_SAMPLES = 50
NEIGHBOURS = 10
#: Exact distances within this relative difference of the k-th are ties (float32 resolution).
TIE_RTOL = 1e-6
#: A cosine collection's embeddings: each component within this many float32 ulps of the norm.
COSINE_ATOL_ULPS = 16
#: At most this many differences are kept (all are counted); a summary names the first few.
KEEP = 20
LISTED = 3


def _canonical_json(value: Any) -> bytes:
    from scholar_ops.sources.chroma.dump import dumps

    return dumps(value).encode()


def _optional_text(value: str | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + value.encode()


def record_hashes(
    rid: str, document: str | None, metadata: Any, uri: str | None, embedding: bytes
) -> tuple[bytes, ...]:
    """One BLAKE2b-256 per field (in ``FIELDS`` order), each bound to the record's id."""
    key = rid.encode()
    prefix = len(key).to_bytes(4, "little") + key
    values = (
        b"",
        _optional_text(document),
        _canonical_json(metadata or None),
        _optional_text(uri),
        embedding,
    )
    return tuple(
        hashlib.blake2b(prefix + v, digest_size=32, person=name.encode()[:16]).digest()
        for name, v in zip(FIELDS, values, strict=True)
    )


class CollectionDigest:
    """Order-independent digests of a collection's records, one per field."""

    def __init__(self) -> None:
        self.records = 0
        self._sums = [0] * len(FIELDS)

    def add_hashes(self, hashes: tuple[bytes, ...]) -> None:
        self.records += 1
        for i, h in enumerate(hashes):
            self._sums[i] = (self._sums[i] + int.from_bytes(h, "little")) % _MOD

    def add(
        self, rid: str, document: str | None, metadata: Any, uri: str | None, embedding: bytes
    ) -> None:
        self.add_hashes(record_hashes(rid, document, metadata, uri, embedding))

    def hexdigests(self) -> dict[str, str]:
        return {
            name: s.to_bytes(32, "little").hex() for name, s in zip(FIELDS, self._sums, strict=True)
        }


def _distances(space: str, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Exact distances (float64), queries x vectors, as hnswlib defines them."""
    q = queries.astype(np.float64)
    v = vectors.astype(np.float64)
    dots = q @ v.T
    if space == "ip":
        return 1.0 - dots
    if space == "cosine":
        qn = np.linalg.norm(q, axis=1)[:, None]
        vn = np.linalg.norm(v, axis=1)[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where((qn > 0) & (vn > 0), dots / (qn * vn), 0.0)
        return 1.0 - cos
    sq = (q * q).sum(axis=1)[:, None] + (v * v).sum(axis=1)[None, :] - 2.0 * dots
    return np.maximum(sq, 0.0)


class ExactNeighbours:
    """Running exact top-k of a few queries over batches of (ids, vectors)."""

    def __init__(self, space: str, queries: np.ndarray, k: int, wanted: list[list[str]]) -> None:
        self.space = space
        self.queries = queries
        self.k = k
        n = len(queries)
        self.best_d = np.full((n, 0), np.inf)
        self.best_ids: list[list[str]] = [[] for _ in range(n)]
        # Exact distances of the ids the index returned, found as the batches go by.
        self.wanted = [dict.fromkeys(w, np.inf) for w in wanted]
        self._lookup: dict[str, list[int]] = {}
        for qi, w in enumerate(wanted):
            for rid in w:
                self._lookup.setdefault(rid, []).append(qi)

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        if not len(ids) or not len(self.queries):
            return
        d = _distances(self.space, self.queries, vectors)
        for j, rid in enumerate(ids):
            for qi in self._lookup.get(rid, ()):
                self.wanted[qi][rid] = float(d[qi, j])
        all_d = np.concatenate([self.best_d, d], axis=1)
        keep = min(self.k, all_d.shape[1])
        idx = np.argpartition(all_d, keep - 1, axis=1)[:, :keep]
        old = self.best_d.shape[1]
        new_ids: list[list[str]] = []
        for qi in range(len(self.queries)):
            new_ids.append([self.best_ids[qi][c] if c < old else ids[c - old] for c in idx[qi]])
        self.best_d = np.take_along_axis(all_d, idx, axis=1)
        self.best_ids = new_ids

    def recall(self, qi: int) -> float:
        """Share of the index's answers that are exact top-k neighbours (ties included)."""
        if self.k == 0:
            return 1.0
        kth = float(np.max(self.best_d[qi])) if self.best_d.shape[1] else np.inf
        limit = kth + TIE_RTOL * max(1.0, abs(kth))
        found = sum(1 for d in self.wanted[qi].values() if d <= limit)
        return min(found, self.k) / self.k

    def exact_ids(self, qi: int) -> list[str]:
        order = np.argsort(self.best_d[qi], kind="stable")
        return [self.best_ids[qi][i] for i in order]


@dataclass
class Findings:
    """Differences found while verifying: all counted, the first ``KEEP`` kept."""

    count: int = 0
    items: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.items) < KEEP:
            self.items.append(message)


def short_id(rid: str, limit: int = 60) -> str:
    text = repr(rid)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def summary_line(count: int, items: list[str], what: str) -> str:
    """One readable line: how many differences, then the first ``LISTED``."""
    if count == 0:
        return f"{what}: verified"
    first = "; ".join(items[:LISTED])
    more = f" (and {count - min(LISTED, len(items))} more)" if count > LISTED else ""
    return f"{what}: {count} difference{'s' if count != 1 else ''}: {first}{more}"


def cosine_close(restored: np.ndarray, stream: np.ndarray) -> bool:
    """A cosine collection's embedding read back: the same to float32 precision."""
    norm = float(np.linalg.norm(stream.astype(np.float64)))
    atol = COSINE_ATOL_ULPS * float(np.finfo(np.float32).eps) * max(norm, 1e-30)
    return bool(np.max(np.abs(restored.astype(np.float64) - stream.astype(np.float64))) <= atol)


def iter_batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def parse_record(raw: bytes) -> dict[str, Any]:
    rec: dict[str, Any] = json.loads(raw)
    return rec


def sample_positions(count: int, k: int) -> list[int]:
    """K positions spread evenly over a collection (deterministic)."""
    if count <= 0 or k <= 0:
        return []
    return sorted({min(count - 1, int((j + 0.5) * count / k)) for j in range(k)})


class RecallProbe:
    """The index's top k for sample records against the exact top k, streamed.

    Created on a collection (its index is queried at once for records spread over it),
    fed every record's embedding batch by batch (``add``), then read (``figures``)."""

    def __init__(self, col: Any, count: int, space: str, samples: int) -> None:
        from scholar_ops.sources.chroma.dump import _call

        vectors: list[np.ndarray] = []
        self.ids: list[str] = []
        for pos in sample_positions(count, samples):
            got = _call(col.get, limit=1, offset=pos, include=["embeddings"])
            if got["ids"]:
                self.ids.append(got["ids"][0])
                vectors.append(np.asarray(got["embeddings"][0], dtype=np.float32))
        self.k = min(NEIGHBOURS, count)
        self.answers: list[list[str]] = []
        queries = np.stack(vectors) if vectors else np.empty((0, 0), dtype=np.float32)
        if self.ids and self.k:
            res = _call(col.query, query_embeddings=queries, n_results=self.k, include=[])
            self.answers = [list(r) for r in res["ids"]]
        else:
            self.ids = []
        self.exact = ExactNeighbours(space, queries, self.k, self.answers)

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        if self.ids:
            self.exact.add(ids, vectors)

    def figures(self) -> dict[str, Any] | None:
        """k, queries, mean and min recall, worst sample, and how many answers were exact."""
        if not self.ids:
            return None
        recalls = [self.exact.recall(qi) for qi in range(len(self.ids))]
        worst = int(np.argmin(recalls))
        return {
            "k": self.k,
            "queries": len(recalls),
            "mean": round(float(np.mean(recalls)), 4),
            "min": round(recalls[worst], 4),
            "worst": self.ids[worst],
            "full": sum(1 for r in recalls if r >= 1.0),
            "identical": sum(
                1
                for qi, got in enumerate(self.answers)
                if set(got) == set(self.exact.exact_ids(qi))
            ),
        }


def required_recall(min_recall: float, source: dict[str, Any] | None) -> float:
    """The recall a restored index must reach: ``min_recall``, or the source's minus the
    margin when the source's own index did worse at backup time."""
    if not source or "mean" not in source:
        return min_recall
    return max(0.0, min(min_recall, float(source["mean"]) - RECALL_MARGIN))
