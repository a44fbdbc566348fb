"""A physical copy of an embedded Chroma directory (restorable by the same Chroma version only).

The SQLite database copied with SQLite's online backup API, and every segment
file as its own entry (docs/formats.md, "Chroma, physical"). Chroma writes its
segment files outside SQLite's transactions, so the copy is consistent only
while nothing writes: ``data_version`` and every file's size and mtime are
compared before and after, and a directory that changed fails the backup (a
transient SourceError: retry when the application is idle, or back up logically).

Before the copy, the directory is opened with Chroma (``migrations="validate"``:
a store of another Chroma version is refused, never migrated) and every
collection read once for its digests (``scholar_ops.sources.chroma.verify``), so
that a restore of the copy is checked record for record like a logical one; the
record counts read must equal the copy's.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import tempfile
from pathlib import Path
from typing import Any

from scholar_ops.vault.archiver import BackupWriter
from scholar_ops.vault.errors import SourceError

log = logging.getLogger("scholar_ops.sources.chroma")

PHYSICAL_FORMAT = "scholar-ops-chroma-physical/1"
PHYSICAL_PREFIX = "physical/"
SQLITE_NAME = "chroma.sqlite3"
_SQLITE_SIDE_FILES = {f"{SQLITE_NAME}-journal", f"{SQLITE_NAME}-wal", f"{SQLITE_NAME}-shm"}
PHYSICAL_NOTE = (
    "physical copy of an embedded Chroma directory: it opens only with the same Chroma "
    "version ({version}); use a logical backup to move data between Chroma versions"
)


def require_embedded_dir(path: str | Path) -> Path:
    """The directory, if it holds a Chroma database (never create one by backing it up)."""
    root = Path(path)
    if not (root / SQLITE_NAME).is_file():
        raise SourceError(f"no Chroma database at {root} ({SQLITE_NAME} is missing)")
    return root


def _segment_files(root: Path) -> dict[str, os.stat_result]:
    """Every regular file but the SQLite database and its journals, by relative path."""
    files: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            full = Path(dirpath) / fname
            rel = full.relative_to(root).as_posix()
            if rel == SQLITE_NAME or rel in _SQLITE_SIDE_FILES:
                continue
            st = full.lstat()
            if not stat.S_ISREG(st.st_mode):
                log.warning("skipping %s: not a regular file", full)
                continue
            files[rel] = st
    return files


def _fingerprint(files: dict[str, os.stat_result]) -> dict[str, tuple[int, int]]:
    return {rel: (st.st_size, st.st_mtime_ns) for rel, st in files.items()}


def collection_stats(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Name, id, dimension and record count of every collection in a chroma.sqlite3."""
    try:
        rows = db.execute(
            "SELECT c.name, c.id, c.dimension, "
            "(SELECT count(*) FROM embeddings e JOIN segments s ON s.id = e.segment_id "
            " WHERE s.collection = c.id AND s.scope = 'METADATA') "
            "FROM collections c ORDER BY c.name"
        ).fetchall()
    except sqlite3.Error as e:
        log.warning("cannot read collection statistics: %s", e)
        return []
    return [
        {"name": name, "id": cid, "dimension": dim, "records": int(n)} for name, cid, dim, n in rows
    ]


def _last_migration(db: sqlite3.Connection) -> str | None:
    try:
        row = db.execute(
            "SELECT dir || '/' || filename FROM migrations ORDER BY dir, version DESC LIMIT 1"
        ).fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def read_digests(
    root: Path, batch_size: int = 1000, samples: int = 50
) -> dict[str, dict[str, Any]]:
    """Name -> records, space and digests of every collection of an embedded directory,
    read through Chroma (which must be the version that wrote it: nothing is migrated)."""
    import chromadb
    from chromadb.config import Settings

    from scholar_ops.sources.chroma.conninfo import release_embedded
    from scholar_ops.sources.chroma.dump import _call, iter_pages, list_collection_names
    from scholar_ops.sources.chroma.verify import DIGEST_FORMAT, CollectionDigest, RecallProbe

    settings = Settings(anonymized_telemetry=False, migrations="validate")
    opened_here = True
    try:
        client = chromadb.PersistentClient(path=str(root), settings=settings)
    except ValueError as e:
        if "different settings" not in str(e):
            raise SourceError(f"cannot read {root} with Chroma {chromadb.__version__}: {e}") from e
        from scholar_ops.sources.chroma.conninfo import ChromaSource

        client = ChromaSource.embedded(root).client()  # open in this process already
        opened_here = False
    except Exception as e:
        raise SourceError(
            f"cannot read {root} with Chroma {chromadb.__version__} (a store of another "
            f"version is never migrated by a backup): {e}"
        ) from e
    out: dict[str, dict[str, Any]] = {}
    try:
        for name in list_collection_names(client):
            col = _call(client.get_collection, name, embedding_function=None)
            cfg = getattr(col, "configuration_json", None) or {}
            index = cfg.get("hnsw") or cfg.get("spann") or {}
            space = index.get("space") or (col.metadata or {}).get("hnsw:space")
            count = int(_call(col.count))
            probe = (
                RecallProbe(col, count, str(space or "l2"), samples)
                if samples > 0 and count
                else None
            )
            digest = CollectionDigest()
            for ids, emb, docs, metas, uris in iter_pages(col, batch_size):
                f32 = _f32(emb)
                for i, rid in enumerate(ids):
                    digest.add(rid, docs[i], metas[i] or None, uris[i], f32[i].tobytes())
                if probe is not None:
                    probe.add(ids, f32)
            out[name] = {
                "records": digest.records,
                "space": space,
                "digest": DIGEST_FORMAT,
                "digests": digest.hexdigests(),
                "index_recall": probe.figures() if probe is not None else None,
            }
    finally:
        if opened_here:
            release_embedded(root)
    return out


def _f32(vector: Any) -> Any:
    import numpy as np

    return np.ascontiguousarray(vector, dtype="<f4")


def copy_directory(writer: BackupWriter, path: str | Path, samples: int = 50) -> dict[str, Any]:
    """Stream a consistent physical copy of an embedded directory into ``writer``."""
    import chromadb

    root = require_embedded_dir(path)
    digests = read_digests(root, samples=samples)
    db_path = root / SQLITE_NAME
    before = _segment_files(root)
    src = sqlite3.connect(db_path, timeout=60)
    try:
        version_before = src.execute("PRAGMA data_version").fetchone()[0]
        with tempfile.TemporaryDirectory(prefix="scholar-ops-chroma-") as tmp:
            copy_path = Path(tmp) / SQLITE_NAME
            dst = sqlite3.connect(copy_path)
            try:
                src.backup(dst)  # one step: the copy is one consistent state
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise SourceError(f"{db_path}: the SQLite copy fails quick_check: {check}")
                collections = collection_stats(dst)
                migration = _last_migration(dst)
            finally:
                dst.close()
            db_stat = db_path.stat()
            total = 0
            with copy_path.open("rb") as f:
                entry = writer.add_stream(
                    PHYSICAL_PREFIX + SQLITE_NAME,
                    f,
                    kind="file",
                    mode=stat.S_IMODE(db_stat.st_mode),
                    mtime_ns=db_stat.st_mtime_ns,
                )
            total += entry.size
        for rel, st in before.items():
            try:
                with (root / rel).open("rb") as f:
                    entry = writer.add_stream(
                        PHYSICAL_PREFIX + rel,
                        f,
                        kind="file",
                        mode=stat.S_IMODE(st.st_mode),
                        mtime_ns=st.st_mtime_ns,
                    )
            except FileNotFoundError:
                raise SourceError(
                    f"{root}: {rel} disappeared during the physical copy: Chroma was writing; "
                    "retry when it is idle, or make a logical backup",
                    transient=True,
                ) from None
            total += entry.size
        version_after = src.execute("PRAGMA data_version").fetchone()[0]
    finally:
        src.close()
    after = _segment_files(root)
    if version_after != version_before or _fingerprint(after) != _fingerprint(before):
        raise SourceError(
            f"{root} changed during the physical copy (Chroma was writing): retry when the "
            "application is idle, or make a logical backup",
            transient=True,
        )
    extra = sorted(set(digests) - {c["name"] for c in collections})
    if extra:
        raise SourceError(
            f"{root} changed during the physical copy (collection {', '.join(extra)} was read "
            "but not copied): retry when the application is idle, or make a logical backup",
            transient=True,
        )
    for c in collections:
        read = digests.get(c["name"])
        if read is None or read["records"] != c["records"]:
            raise SourceError(
                f"{root} changed during the physical copy (collection {c['name']}: "
                f"{None if read is None else read['records']} records read, {c['records']} "
                "copied): retry when the application is idle, or make a logical backup",
                transient=True,
            )
        c.update({k: v for k, v in read.items() if k != "records"})
    return {
        "format": PHYSICAL_FORMAT,
        "kind": "physical",
        "chroma_version": chromadb.__version__,
        "sqlite_migration": migration,
        "note": PHYSICAL_NOTE.format(version=chromadb.__version__),
        "files": len(before) + 1,
        "bytes": total,
        "collections": collections,
        "records": sum(c["records"] for c in collections),
    }
