"""Restoring Chroma snapshots written by sources.chroma.dump.

``restore_chroma`` (logical snapshots) recreates each collection with its
metadata and configuration (index type, space and HNSW settings; the
embedding-function reference when that function can be built here, else the
collection comes back without one and a warning says so), then adds its
records in batches with their stored embeddings: nothing is embedded again.
``existing`` says what to do with a collection of the same name: ``fail``
refuses before anything is written, ``replace`` deletes and recreates it,
``skip`` leaves it alone. A collection whose restore fails half-way is deleted.

Verification: each collection's record count against the manifest, its
configuration and metadata against the backup's, and for the sample records
chosen at backup time, a query by their embedding (``n_results=10``) whose
nearest-neighbour ids must equal those recorded on the source.

``restore_chroma_physical`` writes a physical snapshot back as a directory
(same Chroma version only) and checks its SQLite database and record counts.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.chroma.dump import (
    COLLECTION_FORMAT,
    EMBEDDING_ENCODING,
    FORMAT,
    _call,
    decode_embedding,
    list_collection_names,
    release_batch,
)
from scholar_ops.sources.chroma.physical import (
    PHYSICAL_FORMAT,
    PHYSICAL_PREFIX,
    SQLITE_NAME,
    collection_stats,
)
from scholar_ops.vault.errors import ConfigError, IntegrityError, TargetNotEmpty, VaultError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer, pick_entry
from scholar_ops.vault.snapshot import Snapshot

log = logging.getLogger("scholar_ops.sources.chroma")

Existing = Literal["fail", "replace", "skip"]


@dataclass
class ChromaRestoreResult:
    destination: str
    snapshot_id: str
    collections: list[str] = field(default_factory=list)  # restored
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    records: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    counts: dict[str, list[int]] = field(default_factory=dict)  # name -> [expected, restored]
    samples: dict[str, list[int]] = field(default_factory=dict)  # name -> [identical, checked]
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _selected(snap: Snapshot, collections: list[str] | None) -> list[dict[str, Any]]:
    cols: list[dict[str, Any]] = snap.details["collections"]
    if collections is None:
        return cols
    known = {c["name"] for c in cols}
    missing = sorted(set(collections) - known)
    if missing:
        raise VaultError(
            f"snapshot {snap.short_id} has no collection {', '.join(missing)} "
            f"(it holds {', '.join(sorted(known)) or 'none'})"
        )
    return [c for c in cols if c["name"] in set(collections)]


def _iter_lines(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    carry = b""
    for data in chunks:
        buf = carry + data if carry else data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            yield buf[start:nl]
            start = nl + 1
        carry = buf[start:]
    if carry.strip():
        raise IntegrityError(f"{name}: the collection stream ends without a newline", name)


def _create_configuration(cfg: dict[str, Any]) -> dict[str, Any]:
    """The create-time part of a stored ``configuration_json``: the index section."""
    from chromadb.api.collection_configuration import (
        CreateHNSWConfiguration,
        CreateSpannConfiguration,
    )

    for key, typed in (("hnsw", CreateHNSWConfiguration), ("spann", CreateSpannConfiguration)):
        section = cfg.get(key)
        if section:
            allowed = set(typed.__annotations__)
            return {key: {k: v for k, v in section.items() if k in allowed and v is not None}}
    return {}


def _embedding_function(cfg: dict[str, Any], name: str, warnings: list[str]) -> Any:
    """The collection's persisted embedding function, when it can be built here.

    It is only recorded in the new collection's configuration (so clients that
    rely on it keep working); it is never called: records carry their embeddings.
    """
    ef = cfg.get("embedding_function")
    if not isinstance(ef, dict) or ef.get("type") != "known":
        return None
    from chromadb.utils.embedding_functions import known_embedding_functions

    ef_name = ef.get("name")
    cls = known_embedding_functions.get(str(ef_name))
    try:
        if cls is None:
            raise LookupError("not registered in this process")
        return cls.build_from_config(ef.get("config") or {})
    except Exception as e:
        warnings.append(
            f"collection {name}: embedding function {ef_name!r} cannot be built here ({e}); "
            "the collection is restored without it: clients must pass theirs explicitly"
        )
        return None


@dataclass
class _Pending:
    ids: list[str] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    documents: list[str | None] = field(default_factory=list)
    metadatas: list[dict[str, Any] | None] = field(default_factory=list)
    uris: list[str | None] = field(default_factory=list)
    batches: int = 0

    def flush(self, col: Any) -> int:
        n = len(self.ids)
        if not n:
            return 0
        kwargs: dict[str, Any] = {"ids": self.ids, "embeddings": np.stack(self.embeddings)}
        if any(d is not None for d in self.documents):
            kwargs["documents"] = self.documents
        if any(m is not None for m in self.metadatas):
            kwargs["metadatas"] = self.metadatas
        if any(u is not None for u in self.uris):
            kwargs["uris"] = self.uris
        _call(col.add, **kwargs)
        for items in (self.ids, self.embeddings, self.documents, self.metadatas, self.uris):
            items.clear()
        del kwargs
        self.batches += 1
        release_batch(self.batches)
        return n


def _restore_collection(
    client: Any,
    restorer: Restorer,
    snap: Snapshot,
    info: dict[str, Any],
    batch_size: int,
    result: ChromaRestoreResult,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Create one collection and load its records. Returns (sample embeddings, header)."""
    name = info["name"]
    entry = pick_entry(snap, info["entry"])
    lines = _iter_lines(restorer.iter_entry(snap, entry), entry.name)
    header = json.loads(next(lines, b"null"))
    if not isinstance(header, dict) or header.get("format") != COLLECTION_FORMAT:
        raise VaultError(
            f"snapshot {snap.short_id}: {entry.name} is not a Chroma collection stream"
        )
    if header.get("embedding_encoding", EMBEDDING_ENCODING) != EMBEDDING_ENCODING:
        raise VaultError(
            f"snapshot {snap.short_id}: {entry.name} uses embedding encoding "
            f"{header.get('embedding_encoding')!r}, which this version cannot read"
        )
    cfg = header.get("configuration") or {}
    create_kwargs: dict[str, Any] = {
        "embedding_function": _embedding_function(cfg, name, result.warnings),
        "metadata": header.get("metadata") or None,
    }
    configuration = _create_configuration(cfg)
    if configuration:
        create_kwargs["configuration"] = configuration
    col = _call(client.create_collection, name, **create_kwargs)
    wanted = {s["id"] for s in info.get("samples", [])}
    sample_vectors: dict[str, np.ndarray] = {}
    pending = _Pending()
    dimension = header.get("dimension")
    try:
        for raw in lines:
            rec = json.loads(raw)
            vec = decode_embedding(rec["embedding"])
            if dimension is not None and vec.shape[0] != dimension:
                raise IntegrityError(
                    f"snapshot {snap.short_id}: {entry.name}: record {rec['id']!r} has "
                    f"{vec.shape[0]} dimensions, the collection {dimension}",
                    entry.name,
                )
            pending.ids.append(rec["id"])
            pending.embeddings.append(vec)
            pending.documents.append(rec.get("document"))
            pending.metadatas.append(rec.get("metadata") or None)
            pending.uris.append(rec.get("uri"))
            if rec["id"] in wanted:
                sample_vectors[rec["id"]] = vec
            result.bytes += len(raw) + 1
            if len(pending.ids) >= batch_size:
                result.records += pending.flush(col)
        result.records += pending.flush(col)
    except BaseException:
        try:  # never leave half a collection behind
            client.delete_collection(name)
        except Exception as e:
            log.warning("could not delete the half-restored collection %s: %s", name, e)
        raise
    return sample_vectors, header


def _verify(
    client: Any,
    info: dict[str, Any],
    header: dict[str, Any],
    sample_vectors: dict[str, np.ndarray],
    result: ChromaRestoreResult,
) -> None:
    name = info["name"]
    col = _call(client.get_collection, name, embedding_function=None)
    expected = int(info["records"])
    actual = int(_call(col.count))
    result.counts[name] = [expected, actual]
    if actual != expected:
        result.mismatches.append(
            f"collection {name}: {actual} records restored, {expected} in the backup"
        )
    src_cfg = header.get("configuration") or {}
    got_cfg = getattr(col, "configuration_json", None) or {}
    for section in ("hnsw", "spann"):
        if src_cfg.get(section) and got_cfg.get(section) != src_cfg.get(section):
            result.mismatches.append(
                f"collection {name}: {section} configuration {got_cfg.get(section)} "
                f"differs from the backup's {src_cfg.get(section)}"
            )
    if (col.metadata or None) != (header.get("metadata") or None):
        result.mismatches.append(
            f"collection {name}: metadata {col.metadata} differs from the backup's "
            f"{header.get('metadata')}"
        )
    same = checked = 0
    for sample in info.get("samples", []):
        vec = sample_vectors.get(sample["id"])
        if vec is None:
            result.mismatches.append(
                f"collection {name}: sample record {sample['id']!r} is not in the backup stream"
            )
            continue
        want = list(sample["neighbours"])
        q = _call(
            col.query,
            query_embeddings=vec.reshape(1, -1),
            n_results=max(1, len(want)),
            include=["distances"],
        )
        got = list(q["ids"][0])
        checked += 1
        if got == want:
            same += 1
        else:
            result.mismatches.append(
                f"collection {name}: nearest neighbours of {sample['id']!r} are {got}, "
                f"{want} on the source at backup time"
            )
    result.samples[name] = [same, checked]


def restore_chroma(
    repo: Repository,
    snap: Snapshot,
    dest: ChromaSource,
    *,
    collections: list[str] | None = None,
    existing: Existing = "fail",
    batch_size: int = 1000,
    verify: bool = True,
) -> ChromaRestoreResult:
    """Restore a logical Chroma snapshot's collections (all, or ``collections``) into ``dest``."""
    if snap.details.get("format") != FORMAT:
        hint = (
            ": it is a physical copy, use restore_chroma_physical"
            if snap.details.get("format") == PHYSICAL_FORMAT
            else ""
        )
        raise VaultError(
            f"snapshot {snap.short_id} is not a logical Chroma backup (component "
            f"{snap.component}){hint}"
        )
    if existing not in ("fail", "replace", "skip"):
        raise ConfigError(f"existing must be 'fail', 'replace' or 'skip', not {existing!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, not {batch_size}")
    started = time.monotonic()
    result = ChromaRestoreResult(destination=dest.describe(), snapshot_id=snap.backup_id)
    chosen = _selected(snap, collections)
    client = dest.client()
    batch_size = min(batch_size, int(_call(client.get_max_batch_size)))
    present = set(list_collection_names(client))
    clash = sorted(c["name"] for c in chosen if c["name"] in present)
    if clash and existing == "fail":
        raise TargetNotEmpty(
            f"{dest.describe()} already has collection {', '.join(clash)}; restore elsewhere, "
            "or pass existing='replace' (delete and recreate) or existing='skip'"
        )
    with repo.lock(f"restore {snap.short_id}"):
        restorer = Restorer(repo)
        for info in chosen:
            name = info["name"]
            if name in present:
                if existing == "skip":
                    result.skipped.append(name)
                    continue
                _call(client.delete_collection, name)
                result.replaced.append(name)
            vectors, header = _restore_collection(client, restorer, snap, info, batch_size, result)
            result.collections.append(name)
            if verify:
                _verify(client, info, header, vectors, result)
    result.duration_s = round(time.monotonic() - started, 3)
    for m in result.mismatches:
        log.warning("restore of %s into %s: %s", snap.short_id, dest.describe(), m)
    return result


def restore_chroma_physical(
    repo: Repository,
    snap: Snapshot,
    dest_dir: str | Path,
    *,
    allow_version_mismatch: bool = False,
    verify: bool = True,
) -> ChromaRestoreResult:
    """Write a physical Chroma snapshot back as an embedded directory ``dest_dir``.

    ``dest_dir`` must be missing or empty. The installed chromadb must be the
    version that wrote the copy, unless ``allow_version_mismatch``.
    """
    import chromadb

    details = snap.details
    if details.get("format") != PHYSICAL_FORMAT:
        raise VaultError(
            f"snapshot {snap.short_id} is not a physical Chroma copy (component {snap.component})"
        )
    written_by = details.get("chroma_version")
    if written_by != chromadb.__version__ and not allow_version_mismatch:
        raise ConfigError(
            f"snapshot {snap.short_id} is a physical copy made with Chroma {written_by}; this is "
            f"Chroma {chromadb.__version__}: restore it with {written_by}, or use a logical backup"
        )
    started = time.monotonic()
    dest = Path(dest_dir)
    result = ChromaRestoreResult(destination=f"chroma:{dest}", snapshot_id=snap.backup_id)
    if written_by != chromadb.__version__:
        result.warnings.append(
            f"physical copy made with Chroma {written_by}, opened with {chromadb.__version__}"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise TargetNotEmpty(f"{dest} is not an empty directory: restore into a new one")
    entries = [e for e in snap.entries if e.name.startswith(PHYSICAL_PREFIX)]
    plan = [(e, _safe_relative(e.name[len(PHYSICAL_PREFIX) :], snap)) for e in entries]
    dest.mkdir(parents=True, exist_ok=True)
    with repo.lock(f"restore {snap.short_id}"):
        restorer = Restorer(repo)
        for entry, rel in plan:
            out = dest.joinpath(*rel.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            part = out.with_name(out.name + ".part")
            with part.open("wb") as f:
                result.bytes += restorer.restore_entry(snap, entry, f)
            if entry.mode is not None:
                os.chmod(part, entry.mode)
            os.replace(part, out)
            if entry.mtime_ns is not None:
                os.utime(out, ns=(entry.mtime_ns, entry.mtime_ns))
    expected = {c["name"]: int(c["records"]) for c in details.get("collections", [])}
    result.collections = sorted(expected)
    result.records = sum(expected.values())
    if verify:
        db = sqlite3.connect(dest / SQLITE_NAME)
        try:
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            restored = {c["name"]: int(c["records"]) for c in collection_stats(db)}
        finally:
            db.close()
        if check != "ok":
            result.mismatches.append(f"{SQLITE_NAME} fails quick_check: {check}")
        for name in sorted(set(expected) | set(restored)):
            want, got = expected.get(name, -1), restored.get(name, -1)
            result.counts[name] = [want, got]
            if want != got:
                result.mismatches.append(
                    f"collection {name}: {got} records restored, {want} in the backup"
                )
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _safe_relative(rel: str, snap: Snapshot) -> PurePosixPath:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or any(part in ("", ".", "..") for part in p.parts):
        raise IntegrityError(
            f"snapshot {snap.short_id}: unsafe path {rel!r} in a physical Chroma copy",
            f"snapshots/{snap.backup_id}",
            snap.backup_id,
        )
    return p


__all__ = ["ChromaRestoreResult", "restore_chroma", "restore_chroma_physical"]
