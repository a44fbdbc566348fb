"""Writing a backup: stream -> chunk -> hash -> compress -> encrypt -> pack -> upload.

Memory is bounded whatever the stream size: at most ``inflight`` chunks are
being compressed/encrypted, one pack is being filled and ``upload_slots`` packs
are being uploaded. Compression and hashing release the GIL, so a worker pool
keeps both cores busy. Commit order is packs, then index, then the snapshot.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import blake3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scholar_ops.vault import audit
from scholar_ops.vault.chunker import Chunker, ChunkerParams, Source
from scholar_ops.vault.compress import Compressor
from scholar_ops.vault.crypto import aead
from scholar_ops.vault.errors import VaultError
from scholar_ops.vault.index import Index
from scholar_ops.vault.lock import Lock
from scholar_ops.vault.pack import BlobEntry, PackBuilder, pack_name
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import (
    BackupStats,
    BackupType,
    Entry,
    Snapshot,
    combined_checksum,
    new_backup_id,
    now_iso,
)
from scholar_ops.vault.space import SpaceCheck

log = logging.getLogger("scholar_ops.vault.archiver")


@dataclass
class Progress:
    """What a progress callback receives, after every pack upload and at the end."""

    bytes_read: int
    bytes_new: int
    bytes_uploaded: int
    elapsed_s: float


class BackupWriter:
    """One backup run. Add entries, then commit() to make the snapshot visible.

    Used as a context manager it holds a shared lock on the repository for its
    whole life, so prune cannot delete chunks this backup relies on.
    """

    audit_operation = "backup"  # what its audit record (vault.audit) calls it

    def __init__(
        self,
        repo: Repository,
        *,
        component: str,
        target: str,
        backup_type: BackupType = "incremental",
        compression: str | None = None,
        compression_level: int | None = None,
        pack_size: int | None = None,
        chunker: ChunkerParams | None = None,
        workers: int = 2,
        inflight: int = 16,
        upload_slots: int = 2,
        progress: Callable[[Progress], None] | None = None,
        lock: bool = True,
    ) -> None:
        if backup_type not in ("full", "incremental"):
            raise VaultError(f"backup type must be 'full' or 'incremental', not {backup_type!r}")
        self.repo = repo
        self.component = component
        self.target = target
        self.backup_type: BackupType = backup_type
        cfg = repo.config
        self.compressor = Compressor(
            compression or cfg.compression,
            compression_level if compression is not None else cfg.compression_level,
        )
        self.pack_size = pack_size or cfg.pack_size
        # Chunk size is per backup: dedup works between backups with the same
        # parameters, and database dumps dedup far better with smaller chunks.
        self.chunker = Chunker(chunker or cfg.chunker, repo.key.cdc_seed)
        self.inflight = max(1, inflight)
        self.progress = progress
        self.stats = BackupStats()
        self.entries: list[Entry] = []
        self._aes = AESGCM(repo.key.enc_key)
        self._id_key = repo.key.id_key
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="vault-seal")
        self._uploads = ThreadPoolExecutor(max(1, upload_slots), thread_name_prefix="vault-put")
        self._upload_sem = threading.Semaphore(max(1, upload_slots))
        self._pending_uploads: list[Future[None]] = []
        self._stats_lock = threading.Lock()
        self._pack: PackBuilder | None = None
        self._written: dict[str, list[BlobEntry]] = {}  # packs this backup wrote or adopted
        self._own: set[bytes] = set()  # chunks stored by this backup (written or adopted)
        self._lock: Lock | None = repo.lock(f"backup {component}/{target}") if lock else None
        self._index: Index | None = None
        self._space: SpaceCheck | None = None  # the repository's size limit (vault.space)
        self._started = time.monotonic()
        self._bytes_read = 0
        self._committed: Snapshot | None = None
        #: Why the audit record (vault.audit) of this backup could not be written, if it
        #: could not: the backup stays committed and good; this only says its record is lost.
        self.audit_error: Exception | None = None

    # -- lifecycle --------------------------------------------------------------

    def __enter__(self) -> BackupWriter:
        try:
            if self._lock is not None:
                self._lock.acquire()
            self._prepare()
        except BaseException as e:
            self._close()
            self._audit_failure(e)
            raise
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._close()
        if exc is not None and self._committed is None:
            self._audit_failure(exc)

    def _audit_details(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "target": self.target,
            "backup_type": self.backup_type,
        }

    def _audit_failure(self, error: BaseException) -> None:
        audit.append_quietly(
            self.repo,
            self.audit_operation,
            outcome="failed",
            error=error,
            details=self._audit_details(),
        )

    def _prepare(self) -> None:
        self._index = self.repo.load_index()
        if self.repo.size_limit is not None:
            what = f"a {self.backup_type} backup of {self.component}/{self.target}"
            self._space = SpaceCheck(self.repo, self.repo.size_limit, what)
        # Packs left by an interrupted run belong to no committed backup: adopt them,
        # so a re-run uploads only what is still missing.
        for pack_id, entries in self.repo.unindexed_packs(self._index):
            self._index.add_pack(pack_id, entries)
            self._written[pack_id] = entries
            self._own.update(e.chunk_id for e in entries)
            self.stats.packs_reused += 1
        if self.stats.packs_reused:
            log.info("reusing %d packs left by an interrupted backup", self.stats.packs_reused)

    def _close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._uploads.shutdown(wait=True, cancel_futures=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- adding data ------------------------------------------------------------

    def add_stream(self, name: str, stream: Source, **meta: Any) -> Entry:
        """Back up one stream as an entry named ``name``; returns the entry."""
        if self._index is None:
            raise VaultError("BackupWriter must be used as a context manager (with ...:)")
        entry = Entry(name=name, kind=meta.pop("kind", "stream"), **meta)
        sha = hashlib.sha256()
        queue: deque[tuple[bytes, int, Future[tuple[bytes, bytes]]]] = deque()
        try:
            for chunk in self.chunker.chunks(stream):
                sha.update(chunk)
                cid = blake3.blake3(chunk, key=self._id_key).digest()
                entry.chunks.append(cid.hex())
                entry.size += len(chunk)
                self._bytes_read += len(chunk)
                self.stats.chunks_total += 1
                if cid in self._own or (self.backup_type == "incremental" and cid in self._index):
                    continue
                self._own.add(cid)
                self.stats.chunks_new += 1
                self.stats.bytes_new += len(chunk)
                queue.append((cid, len(chunk), self._pool.submit(self._seal_blob, cid, chunk)))
                while len(queue) >= self.inflight:
                    self._add_blob(*queue.popleft())
        except BaseException:
            # The stream failed. Chunks already counted as stored must still reach a pack:
            # a caller that goes on (skipping this entry) may add another entry sharing them.
            while queue:
                self._add_blob(*queue.popleft())
            raise
        while queue:
            self._add_blob(*queue.popleft())
        entry.sha256 = sha.hexdigest()
        self.entries.append(entry)
        return entry

    def add_entry(self, entry: Entry) -> None:
        """Record a chunk-less entry (directory, symlink, empty file)."""
        self.entries.append(entry)

    def add_unchanged(self, entry: Entry) -> bool:
        """Reuse an entry of an earlier snapshot (its chunks, size, sha256) without reading it.

        Only an incremental backup may do so, and only when every chunk of the
        entry is in the index (a full backup stores its own copy of everything).
        Returns False, recording nothing, when the caller must read the data
        again. The entry counts toward the snapshot's size and chunk total, not
        toward new bytes.
        """
        if self._index is None:
            raise VaultError("BackupWriter must be used as a context manager (with ...:)")
        if self.backup_type != "incremental":
            return False
        try:
            ids = [bytes.fromhex(c) for c in entry.chunks]
        except ValueError:
            return False
        if not all(cid in self._own or cid in self._index for cid in ids):
            return False
        self.stats.chunks_total += len(ids)
        self.entries.append(entry)
        return True

    def _seal_blob(self, cid: bytes, chunk: memoryview) -> tuple[bytes, bytes]:
        alg, body = self.compressor.compress(chunk)
        return aead.encrypt_blob(self._aes, cid, alg, body)

    def _add_blob(self, cid: bytes, raw_length: int, fut: Future[tuple[bytes, bytes]]) -> None:
        blob = fut.result()
        if self._pack is None:
            self._pack = PackBuilder(self.repo.key.key_id)
        self._pack.add(cid, blob, raw_length)
        if self._pack.size >= self.pack_size:
            self._flush_pack()

    def _flush_pack(self) -> None:
        pack, self._pack = self._pack, None
        if pack is None or not pack.entries:
            return
        self._raise_upload_errors()
        data = pack.finish(self.repo.key.enc_key)
        pack_id = pack.pack_id
        if self._space is not None:
            self._space.reserve(len(data))  # RepositoryFull: stop before passing the limit
        self._upload_sem.acquire()  # bounds packs held in memory for upload
        fut = self._uploads.submit(self._upload, pack_id, data, pack.entries)
        self._pending_uploads.append(fut)

    def _upload(self, pack_id: str, data: bytes, entries: list[BlobEntry]) -> None:
        try:
            self.repo.storage.put(pack_name(pack_id), data)
            with self._stats_lock:
                self._written[pack_id] = entries
                self.stats.packs_written += 1
                self.stats.bytes_stored += len(data)
        finally:
            if self._space is not None:
                self._space.done(len(data))
            self._upload_sem.release()
        if self.progress is not None:
            self.progress(self._progress())

    def _raise_upload_errors(self) -> None:
        still = []
        for fut in self._pending_uploads:
            if fut.done():
                fut.result()  # re-raises an upload failure in the caller's thread
            else:
                still.append(fut)
        self._pending_uploads = still

    def _progress(self) -> Progress:
        return Progress(
            bytes_read=self._bytes_read,
            bytes_new=self.stats.bytes_new,
            bytes_uploaded=self.stats.bytes_stored,
            elapsed_s=time.monotonic() - self._started,
        )

    # -- commit -----------------------------------------------------------------

    def commit(
        self,
        *,
        retention_days: float | None = None,
        group: str | None = None,
        tags: Iterable[str] = (),
        details: dict[str, Any] | None = None,
    ) -> Snapshot:
        """Flush, write the index, then the snapshot (the commit point)."""
        if self._index is None:
            raise VaultError("BackupWriter must be used as a context manager (with ...:)")
        self._flush_pack()
        for fut in self._pending_uploads:
            fut.result()
        self._pending_uploads = []
        if self._written:
            _, size = self.repo.write_index(self._written)
            self.stats.bytes_stored += size
        now = now_iso()
        retention_until = (
            (datetime.now(UTC) + timedelta(days=retention_days)).isoformat()
            if retention_days is not None
            else None
        )
        self.stats.duration_s = round(time.monotonic() - self._started, 3)
        snap = Snapshot(
            backup_id=new_backup_id(),
            backup_type=self.backup_type,
            timestamp=now,
            size_bytes=sum(e.size for e in self.entries),
            checksum=combined_checksum(self.entries),
            encryption_key_id=self.repo.key.key_id_hex,
            storage_location=self.repo.location,
            retention_until=retention_until,
            component=self.component,
            target=self.target,
            group=group,
            host=socket.gethostname(),
            tags=list(tags),
            packs=sorted(self._written),
            stats=asdict(self.stats),
            details=details or {},
            entries=self.entries,
        )
        # The manifest's own size is counted in the writer's running stats (progress),
        # not in the snapshot's: the returned snapshot equals the one in the store.
        size = self.repo.commit_snapshot(snap)
        self._committed = snap
        self.stats.bytes_stored += size
        # The snapshot is committed: a record that cannot be written is a warning
        # (self.audit_error), never a failed backup.
        self.audit_error = audit.append_quietly(
            self.repo,
            self.audit_operation,
            snapshots=[snap.backup_id],
            details=self._audit_details(),
        )
        if self.progress is not None:
            self.progress(self._progress())
        return snap


def backup_stream(
    repo: Repository,
    stream: Source,
    *,
    component: str,
    target: str,
    name: str = "stream",
    backup_type: BackupType = "incremental",
    **kwargs: Any,
) -> Snapshot:
    """Back up a single stream as one snapshot."""
    commit_args = {
        k: kwargs.pop(k) for k in ("retention_days", "group", "tags", "details") if k in kwargs
    }
    with BackupWriter(
        repo, component=component, target=target, backup_type=backup_type, **kwargs
    ) as writer:
        writer.add_stream(name, stream)
        return writer.commit(**commit_args)
