"""Restoring Chroma snapshots written by sources.chroma.dump.

``restore_chroma`` (logical snapshots) recreates each collection with its
metadata and configuration (index type, space and HNSW settings; the
embedding-function reference when that function can be built here, else the
collection comes back without one and a warning says so), then adds its
records in batches with their stored embeddings: nothing is embedded again.
``existing`` says what to do with a collection of the same name: ``fail``
refuses before anything is written, ``replace`` deletes and recreates it,
``skip`` leaves it alone. A collection whose restore fails half-way is deleted.

Verification (``verify_collection``, also on its own: ``verify_chroma``) judges
the data, never the approximate index's exact answers: each collection's record
count, configuration and metadata; every record read back and compared with the
backup's stream field by field; the digests recorded at backup time (ids,
documents, metadata, uris, embeddings) against the read-back's; and the restored
index's top 10 for sample records against the exact neighbours computed from the
restored embeddings, by mean recall (``min_recall``, 0.9 by default). Details in
``scholar_ops.sources.chroma.verify``. ``ChromaRestoreResult.summary()`` is one
line: how many differences and the first three.

``restore_chroma_physical`` writes a physical snapshot back as a directory
(same Chroma version only), checks its SQLite database and record counts, then
opens it and checks digests (when the backup recorded them) and recall.
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

from scholar_ops.sources.chroma.conninfo import ChromaSource, release_embedded
from scholar_ops.sources.chroma.dump import (
    COLLECTION_FORMAT,
    EMBEDDING_ENCODING,
    FORMAT,
    INCLUDE,
    _call,
    decode_embedding,
    iter_pages,
    list_collection_names,
    release_batch,
)
from scholar_ops.sources.chroma.physical import (
    PHYSICAL_FORMAT,
    PHYSICAL_PREFIX,
    SQLITE_NAME,
    collection_stats,
)
from scholar_ops.sources.chroma.verify import (
    DEFAULT_MIN_RECALL,
    DEFAULT_SAMPLES,
    FIELDS,
    KEEP,
    SINGULAR,
    CollectionDigest,
    Findings,
    RecallProbe,
    cosine_close,
    iter_batches,
    parse_record,
    record_hashes,
    required_recall,
    short_id,
    summary_line,
)
from scholar_ops.vault import audit
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
    # name -> [sample queries whose index answers hold every exact neighbour, queries]
    samples: dict[str, list[int]] = field(default_factory=dict)
    # name -> {"k", "queries", "mean", "min", "worst", "full", "identical", "required"}:
    # the restored index's recall of the exact nearest neighbours of sample records
    recall: dict[str, dict[str, Any]] = field(default_factory=dict)
    differences: int = 0  # every difference found; ``mismatches`` keeps the first 20
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.differences

    def add_mismatch(self, message: str) -> None:
        self.differences += 1
        if len(self.mismatches) < KEEP:
            self.mismatches.append(message)

    def summary(self) -> str:
        """One line: the number of differences and the first three."""
        count = max(self.differences, len(self.mismatches))
        return summary_line(
            count, self.mismatches, f"restored Chroma data of snapshot {self.snapshot_id[:8]}"
        )


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
) -> dict[str, Any]:
    """Create one collection and load its records. Returns the stream's header."""
    name = info["name"]
    header, lines = _open_stream(restorer, snap, info)
    entry_name = info["entry"]
    cfg = header.get("configuration") or {}
    create_kwargs: dict[str, Any] = {
        "embedding_function": _embedding_function(cfg, name, result.warnings),
        "metadata": header.get("metadata") or None,
    }
    configuration = _create_configuration(cfg)
    if configuration:
        create_kwargs["configuration"] = configuration
    col = _call(client.create_collection, name, **create_kwargs)
    pending = _Pending()
    dimension = header.get("dimension")
    try:
        for raw in lines:
            rec = json.loads(raw)
            vec = decode_embedding(rec["embedding"])
            if dimension is not None and vec.shape[0] != dimension:
                raise IntegrityError(
                    f"snapshot {snap.short_id}: {entry_name}: record {rec['id']!r} has "
                    f"{vec.shape[0]} dimensions, the collection {dimension}",
                    entry_name,
                )
            pending.ids.append(rec["id"])
            pending.embeddings.append(vec)
            pending.documents.append(rec.get("document"))
            pending.metadatas.append(rec.get("metadata") or None)
            pending.uris.append(rec.get("uri"))
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
    return header


def _space(col: Any, info: dict[str, Any]) -> str:
    cfg = getattr(col, "configuration_json", None) or {}
    for section in ("hnsw", "spann"):
        space = (cfg.get(section) or {}).get("space")
        if space:
            return str(space)
    return str(info.get("space") or (col.metadata or {}).get("hnsw:space") or "l2")


def _check_settings(
    col: Any, info: dict[str, Any], header: dict[str, Any], found: Findings
) -> None:
    name = info["name"]
    src_cfg = header.get("configuration") or info.get("configuration") or {}
    got_cfg = getattr(col, "configuration_json", None) or {}
    for section in ("hnsw", "spann"):
        if src_cfg.get(section) and got_cfg.get(section) != src_cfg.get(section):
            found.add(
                f"collection {name}: {section} configuration {_brief(got_cfg.get(section))} "
                f"differs from the backup's {_brief(src_cfg.get(section))}"
            )
    want_meta = header.get("metadata", info.get("metadata")) or None
    if (col.metadata or None) != want_meta:
        found.add(
            f"collection {name}: metadata {_brief(col.metadata)} differs from the backup's "
            f"{_brief(want_meta)}"
        )


def _brief(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_recall(
    name: str,
    probe: RecallProbe,
    info: dict[str, Any],
    min_recall: float,
    result: ChromaRestoreResult,
    found: Findings,
) -> None:
    figures = probe.figures()
    if figures is None:
        return
    source = info.get("index_recall")
    need = required_recall(min_recall, source)
    figures["required"] = round(need, 4)
    result.recall[name] = figures
    result.samples[name] = [figures["full"], figures["queries"]]
    if figures["mean"] < need:
        measured = (
            f"; the source's index found {source['mean']:.0%} at backup time"
            if source and "mean" in source
            else ""
        )
        found.add(
            f"collection {name}: the restored index finds {figures['mean']:.0%} of the exact "
            f"{figures['k']} nearest neighbours of {figures['queries']} sample records, below "
            f"the {need:.0%} required{measured} (worst {short_id(figures['worst'])}: "
            f"{figures['min']:.0%})"
        )


def _check_digests(
    name: str,
    want: dict[str, str] | None,
    stream: CollectionDigest | None,
    restored: CollectionDigest,
    space: str,
    record_fields: set[str],
    found: Findings,
) -> None:
    """Digests recorded at backup time against the stream's and the read-back's."""
    if not want:
        return  # a snapshot from before digests: the record-by-record comparison stands
    got_restored = restored.hexdigests()
    got_stream = stream.hexdigests() if stream is not None else None
    for f in FIELDS:
        if f not in want:
            continue
        if got_stream is not None and got_stream[f] != want[f]:
            found.add(
                f"collection {name}: the {f} of the backup stream differ from what was read "
                "from the source at backup time"
            )
            continue
        exact = not (f == "embeddings" and space == "cosine" and stream is not None)
        if exact and got_restored[f] != want[f] and f not in record_fields:
            found.add(
                f"collection {name}: the {f} read back from the restored collection differ "
                "from the backup's"
            )


def verify_collection(
    col: Any,
    restorer: Restorer | None,
    snap: Snapshot,
    info: dict[str, Any],
    result: ChromaRestoreResult,
    *,
    batch_size: int = 1000,
    samples: int = DEFAULT_SAMPLES,
    min_recall: float = DEFAULT_MIN_RECALL,
    header: dict[str, Any] | None = None,
) -> None:
    """Compare one restored collection with the snapshot; differences go to ``result``.

    With a ``restorer`` (a logical snapshot): the backup's stream is read again and
    every record compared with the restored one (fetched by id), field by field. Without
    (a physical copy): the restored collection is read in pages. Either way the read-back
    digests are compared with those recorded at backup time, and the index's answers for
    sample records with the exact neighbours.
    """
    name = info["name"]
    found = Findings()
    expected = int(info["records"])
    actual = int(_call(col.count))
    result.counts[name] = [expected, actual]
    if actual != expected:
        found.add(f"collection {name}: {actual} records restored, {expected} in the backup")
    space = _space(col, info)
    probe = RecallProbe(col, actual, space, samples)
    restored_digest = CollectionDigest()
    stream_digest: CollectionDigest | None = None
    record_fields: set[str] = set()
    if restorer is not None:
        stream_digest = CollectionDigest()
        head, lines = _open_stream(restorer, snap, info)
        _check_settings(col, info, head, found)
        for batch in iter_batches(lines, batch_size):
            recs = [parse_record(raw) for raw in batch]
            got = _call(col.get, ids=[r["id"] for r in recs], include=INCLUDE)
            _compare_batch(
                name, space, recs, got, stream_digest, restored_digest, probe, record_fields, found
            )
            del got
            release_batch(1)
        if stream_digest.records != expected:
            found.add(
                f"collection {name}: the backup stream holds {stream_digest.records} records, "
                f"its manifest {expected}"
            )
    else:
        if header is not None:
            _check_settings(col, info, header, found)
        offset = 0
        for ids, raw, docs, metas, uris in iter_pages(col, batch_size):
            emb = np.asarray(raw, dtype=np.float32)
            del raw
            for i, rid in enumerate(ids):
                restored_digest.add(
                    rid, docs[i], metas[i] or None, uris[i], emb[i].astype("<f4").tobytes()
                )
            probe.add(ids, emb)
            offset += len(ids)
            release_batch(offset // batch_size)
    _check_digests(
        name, info.get("digests"), stream_digest, restored_digest, space, record_fields, found
    )
    _check_recall(name, probe, info, min_recall, result, found)
    result.differences += found.count
    result.mismatches.extend(found.items[: max(0, KEEP - len(result.mismatches))])


def _compare_batch(
    name: str,
    space: str,
    recs: list[dict[str, Any]],
    got: dict[str, Any],
    stream_digest: CollectionDigest,
    restored_digest: CollectionDigest,
    probe: RecallProbe,
    record_fields: set[str],
    found: Findings,
) -> None:
    ids = list(got["ids"])
    n = len(ids)
    emb = np.asarray(got["embeddings"] if n else np.empty((0, 0)), dtype=np.float32)
    docs = got.get("documents") or [None] * n
    metas = got.get("metadatas") or [None] * n
    uris = got.get("uris") or [None] * n
    at = {rid: i for i, rid in enumerate(ids)}
    for rec in recs:
        rid = rec["id"]
        vec_b64 = rec["embedding"]
        want_vec = decode_embedding(vec_b64)
        want = record_hashes(
            rid,
            rec.get("document"),
            rec.get("metadata") or None,
            rec.get("uri"),
            want_vec.tobytes(),
        )
        stream_digest.add_hashes(want)
        i = at.get(rid)
        if i is None:
            record_fields.add("ids")
            found.add(f"collection {name}: record {short_id(rid)} is missing")
            continue
        vec = emb[i].astype("<f4")
        have = record_hashes(rid, docs[i], metas[i] or None, uris[i], vec.tobytes())
        restored_digest.add_hashes(have)
        differ = [
            f
            for f, a, b in zip(FIELDS, want, have, strict=True)
            if a != b
            and not (f == "embeddings" and space == "cosine" and cosine_close(vec, want_vec))
        ]
        if differ:
            record_fields.update(differ)
            detail = ""
            if "embeddings" in differ and vec.shape == want_vec.shape:
                delta = float(np.max(np.abs(vec.astype(np.float64) - want_vec)))
                detail = f" (embedding off by up to {delta:.3g})"
            what = ", ".join(SINGULAR[f] for f in differ)
            verb = "differs" if len(differ) == 1 else "differ"
            found.add(
                f"collection {name}: record {short_id(rid)}: {what} {verb} from the backup{detail}"
            )
    if n:
        probe.add(ids, emb)


def _open_stream(
    restorer: Restorer, snap: Snapshot, info: dict[str, Any]
) -> tuple[dict[str, Any], Iterator[bytes]]:
    """A collection's stream in the snapshot: its header, then its record lines."""
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
    return header, lines


def _require_logical(snap: Snapshot) -> None:
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


def _check_verify_options(batch_size: int, samples: int, min_recall: float) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, not {batch_size}")
    if samples < 0:
        raise ConfigError(f"samples must be 0 or more, not {samples}")
    if not 0.0 <= min_recall <= 1.0:
        raise ConfigError(f"min_recall is a share of neighbours found, 0..1, not {min_recall}")


def restore_chroma(
    repo: Repository,
    snap: Snapshot,
    dest: ChromaSource,
    *,
    collections: list[str] | None = None,
    existing: Existing = "fail",
    batch_size: int = 1000,
    verify: bool = True,
    samples: int = DEFAULT_SAMPLES,
    min_recall: float = DEFAULT_MIN_RECALL,
) -> ChromaRestoreResult:
    """Restore a logical Chroma snapshot's collections (all, or ``collections``) into ``dest``.

    ``verify``: compare every restored record with the backup, the digests recorded at
    backup time, and the index's answers for ``samples`` records with the exact
    neighbours (mean recall at least ``min_recall``); differences are in the result
    (``ok``, ``summary()``), not raised."""
    _require_logical(snap)
    if existing not in ("fail", "replace", "skip"):
        raise ConfigError(f"existing must be 'fail', 'replace' or 'skip', not {existing!r}")
    _check_verify_options(batch_size, samples, min_recall)
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
    with audit.restoring(repo, snap):
        restorer = Restorer(repo)
        for info in chosen:
            name = info["name"]
            if name in present:
                if existing == "skip":
                    result.skipped.append(name)
                    continue
                _call(client.delete_collection, name)
                result.replaced.append(name)
            header = _restore_collection(client, restorer, snap, info, batch_size, result)
            result.collections.append(name)
            if verify:
                col = _call(client.get_collection, name, embedding_function=None)
                verify_collection(
                    col,
                    restorer,
                    snap,
                    info,
                    result,
                    batch_size=batch_size,
                    samples=samples,
                    min_recall=min_recall,
                    header=header,
                )
    result.duration_s = round(time.monotonic() - started, 3)
    if not result.ok:
        log.warning("restore of %s into %s: %s", snap.short_id, dest.describe(), result.summary())
    return result


def verify_chroma(
    repo: Repository,
    snap: Snapshot,
    dest: ChromaSource,
    *,
    collections: list[str] | None = None,
    batch_size: int = 1000,
    samples: int = DEFAULT_SAMPLES,
    min_recall: float = DEFAULT_MIN_RECALL,
) -> ChromaRestoreResult:
    """Verify collections already restored from a logical snapshot into ``dest``
    (all of the snapshot's, or ``collections``) without writing anything."""
    _require_logical(snap)
    _check_verify_options(batch_size, samples, min_recall)
    started = time.monotonic()
    result = ChromaRestoreResult(destination=dest.describe(), snapshot_id=snap.backup_id)
    client = dest.client()
    batch_size = min(batch_size, int(_call(client.get_max_batch_size)))
    present = set(list_collection_names(client))
    with audit.restoring(repo, snap, "verify"):
        restorer = Restorer(repo)
        for info in _selected(snap, collections):
            name = info["name"]
            if name not in present:
                result.add_mismatch(f"collection {name} is missing from {dest.describe()}")
                continue
            result.collections.append(name)
            col = _call(client.get_collection, name, embedding_function=None)
            verify_collection(
                col, restorer, snap, info, result,
                batch_size=batch_size, samples=samples, min_recall=min_recall,
            )  # fmt: skip
    result.records = sum(got for _, got in result.counts.values())
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def restore_chroma_physical(
    repo: Repository,
    snap: Snapshot,
    dest_dir: str | Path,
    *,
    allow_version_mismatch: bool = False,
    verify: bool = True,
    samples: int = DEFAULT_SAMPLES,
    min_recall: float = DEFAULT_MIN_RECALL,
) -> ChromaRestoreResult:
    """Write a physical Chroma snapshot back as an embedded directory ``dest_dir``.

    ``dest_dir`` must be missing or empty. The installed chromadb must be the
    version that wrote the copy, unless ``allow_version_mismatch``. ``verify``: SQLite's
    quick_check and record counts, then the directory opened with Chroma: every
    collection's digests (when the backup recorded them), configuration, and the
    index's answers against exact neighbours (as ``restore_chroma``).
    """
    _check_verify_options(1, samples, min_recall)
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
    with audit.restoring(repo, snap):
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
    infos = {c["name"]: c for c in details.get("collections", [])}
    result.collections = sorted(infos)
    result.records = sum(int(c["records"]) for c in infos.values())
    if verify:
        _verify_physical(dest, snap, infos, result, samples=samples, min_recall=min_recall)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _verify_physical(
    dest: Path,
    snap: Snapshot,
    infos: dict[str, dict[str, Any]],
    result: ChromaRestoreResult,
    *,
    samples: int,
    min_recall: float,
) -> None:
    db = sqlite3.connect(dest / SQLITE_NAME)
    try:
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        restored = {c["name"]: int(c["records"]) for c in collection_stats(db)}
    finally:
        db.close()
    if check != "ok":
        result.add_mismatch(f"{SQLITE_NAME} fails quick_check: {check}")
        return
    for name in sorted(set(infos) - set(restored)):
        result.add_mismatch(f"collection {name} is missing from the restored directory")
    for name in sorted(set(restored) - set(infos)):
        result.add_mismatch(f"collection {name} is in the restored directory, not in the backup")
    source = ChromaSource.embedded(dest)
    try:
        client = source.client()
        for name in sorted(set(infos) & set(restored)):
            col = _call(client.get_collection, name, embedding_function=None)
            verify_collection(
                col, None, snap, infos[name], result, samples=samples, min_recall=min_recall
            )
    finally:
        release_embedded(dest)


def verify_chroma_physical(
    snap: Snapshot,
    dest_dir: str | Path,
    *,
    samples: int = DEFAULT_SAMPLES,
    min_recall: float = DEFAULT_MIN_RECALL,
) -> ChromaRestoreResult:
    """Verify a directory written back from a physical snapshot (``restore_chroma_physical``
    does it unless told not to). Chroma opens it, and may write to it (bringing its
    index files up to date with its log)."""
    if snap.details.get("format") != PHYSICAL_FORMAT:
        raise VaultError(f"snapshot {snap.short_id} is not a physical Chroma copy")
    _check_verify_options(1, samples, min_recall)
    started = time.monotonic()
    dest = Path(dest_dir)
    result = ChromaRestoreResult(destination=f"chroma:{dest}", snapshot_id=snap.backup_id)
    infos = {c["name"]: c for c in snap.details.get("collections", [])}
    result.collections = sorted(infos)
    result.records = sum(int(c["records"]) for c in infos.values())
    _verify_physical(dest, snap, infos, result, samples=samples, min_recall=min_recall)
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


__all__ = [
    "ChromaRestoreResult",
    "restore_chroma",
    "restore_chroma_physical",
    "verify_chroma",
    "verify_chroma_physical",
    "verify_collection",
]
