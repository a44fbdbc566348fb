"""Backing up a Chroma store: a logical, version-portable export of its collections.

One JSON Lines entry per collection (a header, then one record per line with its
embedding as little-endian float32 in base64), streamed in batches in Chroma's own
stable order, so an unchanged collection exports byte-identical. Order-independent
digests of each collection's ids, documents, metadata, uris and embeddings, computed
while streaming, go in the manifest for the restore's verification
(``scholar_ops.sources.chroma.verify``; docs/formats.md, "Chroma, logical"). ``physical=True`` copies an embedded
directory instead (``scholar_ops.sources.chroma.physical``).
"""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.chroma.verify import (
    DIGEST_FORMAT,
    CollectionDigest,
    RecallProbe,
)
from scholar_ops.vault.archiver import BackupWriter, Progress
from scholar_ops.vault.chunker import ChunkerParams
from scholar_ops.vault.errors import ConfigError, SourceError, VaultError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import BackupType, Snapshot

log = logging.getLogger("scholar_ops.sources.chroma")

COMPONENT = "chroma"
FORMAT = "scholar-ops-chroma/1"
COLLECTION_FORMAT = "scholar-ops-chroma-collection/1"
EMBEDDING_ENCODING = "base64-float32-le"
COLLECTION_PREFIX = "collections/"
CHROMA_CHUNKER = ChunkerParams(avg_size=64 << 10, min_size=16 << 10, max_size=256 << 10)
INCLUDE: list[Any] = ["embeddings", "documents", "metadatas", "uris"]
SAMPLES = 50  # sample records whose neighbours measure the source's index (0: none)


def collection_entry(name: str) -> str:
    return f"{COLLECTION_PREFIX}{name}.jsonl"


def _json_default(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)  # chromadb SparseVector
    if callable(to_dict):
        return to_dict()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} in a Chroma backup")


def dumps(value: Any) -> str:
    """Deterministic compact JSON (sorted keys, unicode kept as is)."""
    return json.dumps(
        value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_json_default
    )


def encode_embedding(vector: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_embedding(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


def encode_record(
    rid: str, document: str | None, metadata: Any, uri: str | None, embedding_b64: str
) -> str:
    return (
        f'{{"id":{dumps(rid)},"document":{dumps(document)},"metadata":{dumps(metadata)},'
        f'"uri":{dumps(uri)},"embedding":"{embedding_b64}"}}\n'
    )


class BlockStream:
    """A file-like (``readinto``) over an iterator of byte blocks."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._buf = memoryview(b"")
        self._pos = 0
        self.bytes = 0

    def readinto(self, b: memoryview) -> int:
        view = memoryview(b)
        while self._pos >= len(self._buf):
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._buf, self._pos = memoryview(block), 0
        n = min(len(view), len(self._buf) - self._pos)
        view[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        self.bytes += n
        return n


@dataclass
class _CollectionExport:
    name: str
    id: str
    metadata: dict[str, Any] | None
    configuration: dict[str, Any]
    count_before: int
    records: int = 0
    dimension: int | None = None
    digest: CollectionDigest = field(default_factory=CollectionDigest)
    probe: RecallProbe | None = None


def _configuration(col: Any) -> dict[str, Any]:
    cfg = getattr(col, "configuration_json", None)
    if not isinstance(cfg, dict):
        return {}
    return json.loads(dumps(cfg))  # plain JSON values only


def _schema(col: Any) -> dict[str, Any] | None:
    try:
        schema = col.schema
        return json.loads(dumps(schema.serialize_to_json())) if schema is not None else None
    except Exception:  # not every Chroma version or server exposes it
        return None


def _export(col: Any, exp: _CollectionExport, batch_size: int) -> Iterator[bytes]:
    """Header, then the records batch by batch, in Chroma's own (insertion) order."""
    probe = exp.probe
    offset = 0
    header_sent = False
    while True:
        res = _call(col.get, limit=batch_size, offset=offset, include=INCLUDE)
        ids: list[str] = list(res["ids"])
        n = len(ids)
        raw = res.get("embeddings")
        emb = np.asarray(raw if raw is not None and n else np.empty((0, 0)))
        if not header_sent:
            exp.dimension = int(emb.shape[1]) if n and emb.ndim == 2 else None
            header = {
                "format": COLLECTION_FORMAT,
                "name": exp.name,
                "id": exp.id,
                "metadata": exp.metadata,
                "configuration": exp.configuration,
                "schema": _schema(col),
                "dimension": exp.dimension,
                "embedding_encoding": EMBEDDING_ENCODING,
            }
            header_sent = True
            yield (dumps(header) + "\n").encode()
        if n == 0:
            return
        if emb.ndim != 2 or emb.shape[0] != n:
            raise SourceError(f"collection {exp.name}: Chroma returned records without embeddings")
        if exp.dimension is not None and emb.shape[1] != exp.dimension:
            raise SourceError(
                f"collection {exp.name}: embeddings of {emb.shape[1]} and {exp.dimension} dimensions"
            )
        # Exact: in process Chroma hands out float64 copies of its float32 values; over
        # HTTP, their shortest decimal forms, which round back to the same float32.
        f32 = emb.astype("<f4")
        docs = res.get("documents") or [None] * n
        metas = res.get("metadatas") or [None] * n
        uris = res.get("uris") or [None] * n
        lines = []
        for i in range(n):
            meta = metas[i] or None
            vec = f32[i].tobytes()
            exp.digest.add(ids[i], docs[i], meta, uris[i], vec)
            lines.append(
                encode_record(ids[i], docs[i], meta, uris[i], base64.b64encode(vec).decode("ascii"))
            )
        if probe is not None:
            probe.add(ids, f32)
        exp.records += n
        offset += n
        del res, raw, emb, docs, metas, uris
        release_batch(offset // batch_size)
        yield "".join(lines).encode()
        if n < batch_size:
            return


def release_batch(n: int) -> None:
    """Free the previous Chroma batch now rather than at the next full GC.

    chromadb's HTTP client leaves each httpx Request/Response in a reference
    cycle, holding the request or response body (megabytes per batch), which
    only the cyclic GC frees: without this, a backup over HTTP grew by about 3 MB
    per 1000 records of 384 dimensions until a full collection. A young-generation
    collection (a few ms) catches them; a full one runs every 64 batches.
    """
    gc.collect(2 if n % 64 == 0 else 1)


def iter_pages(
    col: Any, batch_size: int
) -> Iterator[tuple[list[str], Any, list[Any], list[Any], list[Any]]]:
    """(ids, embeddings, documents, metadatas, uris) of a collection, a page of
    ``batch_size`` records at a time, in Chroma's own (insertion) order."""
    offset = 0
    while True:
        got = _call(col.get, limit=batch_size, offset=offset, include=INCLUDE)
        ids = list(got["ids"])
        if not ids:
            return
        n = len(ids)
        page = (
            ids,
            got["embeddings"],
            got.get("documents") or [None] * n,
            got.get("metadatas") or [None] * n,
            got.get("uris") or [None] * n,
        )
        del got
        yield page
        offset += n


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A Chroma call; network failures become transient SourceErrors."""
    from scholar_ops.sources.chroma.conninfo import _is_transport_error

    try:
        return fn(*args, **kwargs)
    except VaultError:
        raise
    except Exception as e:
        if _is_transport_error(e):
            raise SourceError(f"Chroma went away: {e}", transient=True) from e
        raise SourceError(f"Chroma failed: {type(e).__name__}: {e}") from e


def list_collection_names(client: Any) -> list[str]:
    return sorted(c if isinstance(c, str) else c.name for c in _call(client.list_collections))


def dump_collections(
    writer: BackupWriter,
    source: ChromaSource,
    *,
    collections: list[str] | None = None,
    batch_size: int = 1000,
    samples: int = SAMPLES,
) -> dict[str, Any]:
    """Stream every (chosen) collection into ``writer``; returns the manifest details.

    ``samples`` records per collection measure the source's index as it is exported:
    its recall of their exact nearest neighbours (``index_recall``), the yardstick of
    a restored index (``scholar_ops.sources.chroma.verify``)."""
    import chromadb

    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, not {batch_size}")
    if source.path is not None:
        from scholar_ops.sources.chroma.physical import require_embedded_dir

        require_embedded_dir(source.path)
    client = source.client()
    batch_size = min(batch_size, int(_call(client.get_max_batch_size)))
    available = list_collection_names(client)
    names = available
    if collections is not None:
        missing = sorted(set(collections) - set(available))
        if missing:
            raise ConfigError(f"{source.describe()} has no collection {', '.join(missing)}")
        names = sorted(set(collections))
    server_version = None
    if not source.is_embedded:
        with contextlib.suppress(SourceError):
            server_version = str(_call(client.get_version))
    warnings: list[str] = []
    details_cols = []
    for name in names:
        col = _call(client.get_collection, name, embedding_function=None)
        exp = _CollectionExport(
            name=name,
            id=str(col.id),
            metadata=json.loads(dumps(col.metadata)) if col.metadata else None,
            configuration=_configuration(col),
            count_before=int(_call(col.count)),
        )
        hnsw = exp.configuration.get("hnsw") or exp.configuration.get("spann") or {}
        space = hnsw.get("space") or (exp.metadata or {}).get("hnsw:space")
        if samples > 0 and exp.count_before > 0:
            exp.probe = RecallProbe(col, exp.count_before, str(space or "l2"), samples)
        stream = BlockStream(_export(col, exp, batch_size))
        entry = writer.add_stream(collection_entry(name), stream)
        count_after = int(_call(col.count))
        if exp.records != exp.count_before or count_after != exp.count_before:
            warnings.append(
                f"collection {name} changed during the backup ({exp.count_before} records "
                f"before, {count_after} after, {exp.records} exported): a logical backup is "
                "not isolated from concurrent writes"
            )
        details_cols.append(
            {
                "name": name,
                "id": exp.id,
                "entry": entry.name,
                "records": exp.records,
                "bytes": stream.bytes,
                "dimension": exp.dimension,
                "space": space,
                "metadata": exp.metadata,
                "configuration": exp.configuration,
                "count_before": exp.count_before,
                "count_after": count_after,
                "digest": DIGEST_FORMAT,
                "digests": exp.digest.hexdigests(),
                "index_recall": exp.probe.figures() if exp.probe is not None else None,
            }
        )
    for w in warnings:
        log.warning("%s: %s", source.describe(), w)
    return {
        "format": FORMAT,
        "kind": "logical",
        "source": source.describe(),
        "tenant": source.tenant,
        "database": source.database,
        "chroma_version": chromadb.__version__,
        "server_version": server_version,
        "collections": details_cols,
        "records": sum(c["records"] for c in details_cols),
        "embedding_encoding": EMBEDDING_ENCODING,
        "warnings": warnings,
    }


def backup_chroma(
    repo: Repository,
    source: ChromaSource,
    *,
    target: str | None = None,
    backup_type: BackupType = "incremental",
    collections: list[str] | None = None,
    batch_size: int = 1000,
    samples: int = SAMPLES,
    physical: bool = False,
    retention_days: float | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> Snapshot:
    """Back a Chroma store up as one snapshot (component ``chroma``).

    Logical by default (every collection, or those named in ``collections``);
    ``physical=True`` copies an embedded directory as it is on disk instead.
    """
    if physical:
        if source.path is None:
            raise ConfigError(
                f"a physical copy needs an embedded directory, not {source.describe()}: "
                "use a logical backup for a server"
            )
        if collections is not None:
            raise ConfigError("a physical copy holds the whole directory: drop `collections`")
    with BackupWriter(
        repo,
        component=COMPONENT,
        target=target or source.label(),
        backup_type=backup_type,
        chunker=CHROMA_CHUNKER,
        progress=progress,
    ) as writer:
        if physical:
            from scholar_ops.sources.chroma.physical import copy_directory

            assert source.path is not None
            details = copy_directory(writer, source.path, samples=samples)
            details["source"] = source.describe()
        else:
            details = dump_collections(
                writer, source, collections=collections, batch_size=batch_size, samples=samples
            )
        return writer.commit(
            retention_days=retention_days, group=group, tags=tags or [], details=details
        )
