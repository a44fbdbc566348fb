"""Copying snapshots from one repository to another (a second copy: 3-2-1).

Both repositories are opened with their own master keys and have their own key
sets, so a chunk cannot be copied as stored: chunk ids are keyed hashes
(``id_key``) and blobs are sealed with ``enc_key``. Each chunk the destination
may lack is read from the source (authenticated and re-hashed there), given the
id it has under the destination's keys, then compressed, encrypted and packed by
the destination's BackupWriter machinery. The source's chunk boundaries are
kept, so copies of later backups deduplicate against earlier copies.

Incremental by chunk: a chunk whose destination id is already indexed there is
referenced, not uploaded. The correspondence of source and destination ids is
learnt from the snapshots copied before (same boundaries, same order), so a
chunk known to be in the destination is not even downloaded from the source.

The destination snapshot keeps the backup's identity (component, target, group,
timestamp, backup type, checksum, entries with their sizes and SHA-256, details)
and records where it came from in ``details["copied_from"]``. Its id is derived
from the source's (a keyed hash under the destination's ``id_key``), so a re-run
copies nothing twice, and a copy the destination's own retention forgot is not
copied again. Retention is per repository: nothing is forgotten or pruned here.

Verified on arrival, before the commit point. ``verify="full"`` (the default):
the new snapshot's entries are read back from the destination (every blob
authenticated and re-hashed, streaming) and their size and SHA-256 compared with
the source's. ``verify="new"``: only the packs this copy uploaded are read back
(one get per pack, every blob authenticated and re-hashed against its id), for
large repositories where reading back every copy whole costs too much; chunks
the destination had already are trusted (its own ``check --read-data`` verifies
them). ``"none"``: no read-back (each chunk's destination id is still computed
from data authenticated at the source). A failure (a damaged source chunk, an upload that does not read
back) leaves no snapshot in the destination: the packs already uploaded are
garbage the next prune removes, or a re-run adopts.

Locks: a shared lock on the source for the whole run; each snapshot written
holds the BackupWriter's shared lock on the destination.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import blake3

from scholar_ops.vault import audit
from scholar_ops.vault.archiver import BackupWriter
from scholar_ops.vault.errors import (
    ConfigError,
    IntegrityError,
    ObjectNotFound,
    SnapshotNotFound,
    VaultError,
)
from scholar_ops.vault.index import Index
from scholar_ops.vault.pack import pack_name
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer
from scholar_ops.vault.snapshot import Entry, Snapshot, now_iso

log = logging.getLogger("scholar_ops.vault.copy")

#: The key of ``Snapshot.details`` a copy records its origin under.
COPIED_FROM = "copied_from"

Status = Literal["copied", "skipped", "would copy", "failed"]
Verify = Literal["full", "new", "none"]
VERIFY_MODES: tuple[Verify, ...] = ("full", "new", "none")


@dataclass
class SnapshotCopy:
    """What happened to one source snapshot."""

    source_id: str
    component: str
    target: str
    timestamp: str
    backup_type: str
    size_bytes: int
    status: Status
    reason: str = ""
    destination_id: str | None = None
    chunks_total: int = 0
    chunks_read: int = 0  # downloaded from the source
    chunks_new: int = 0  # uploaded to the destination
    bytes_new: int = 0  # plaintext bytes of the uploaded chunks
    bytes_transferred: int = 0  # bytes uploaded (packs, index, manifest)
    duration_s: float = 0.0

    @property
    def short_id(self) -> str:
        return self.source_id[:8]

    def line(self) -> str:
        """One line for people: what, and what it cost."""
        what = f"{self.short_id} {self.component}/{self.target} {self.timestamp[:19]}"
        if self.status == "copied":
            assert self.destination_id is not None
            return (
                f"copied   {what} -> {self.destination_id[:8]}: {self.chunks_new}/"
                f"{self.chunks_total} chunks new, {_size(self.bytes_transferred)} transferred"
            )
        if self.status == "would copy":
            return f"would copy {what} ({_size(self.size_bytes)})"
        return f"{self.status:<8} {what}: {self.reason}"


@dataclass
class CopyReport:
    source: str
    destination: str
    source_repo_id: str
    destination_repo_id: str
    dry_run: bool = False
    verify: Verify = "full"
    snapshots: list[SnapshotCopy] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per failure
    wal_copied: int = 0  # WAL files copied beside (filled by the caller: sources.postgres.wal)
    wal_bytes: int = 0
    duration_s: float = 0.0
    _exceptions: list[VaultError] = field(default_factory=list, repr=False)

    @property
    def copied(self) -> int:
        return sum(1 for s in self.snapshots if s.status == "copied")

    @property
    def skipped(self) -> int:
        return sum(1 for s in self.snapshots if s.status == "skipped")

    @property
    def failed(self) -> int:
        return sum(1 for s in self.snapshots if s.status == "failed")

    @property
    def bytes_transferred(self) -> int:
        return sum(s.bytes_transferred for s in self.snapshots) + self.wal_bytes

    @property
    def ok(self) -> bool:
        return not self.errors

    def total_line(self) -> str:
        verb = "would copy" if self.dry_run else "copied"
        n = (
            sum(1 for s in self.snapshots if s.status == "would copy")
            if self.dry_run
            else self.copied
        )
        failed = f", {self.failed} failed" if self.failed else ""
        wal = f" and {self.wal_copied} WAL file(s)" if self.wal_copied else ""
        return (
            f"{verb} {n} snapshot(s){wal}, skipped {self.skipped}{failed}; "
            f"{_size(self.bytes_transferred)} transferred to {self.destination} "
            f"in {self.duration_s:.1f} s"
        )

    def raise_for_errors(self) -> None:
        """Raise the first failure (an IntegrityError stays one: the CLI's exit code 3)."""
        if self._exceptions:
            first = self._exceptions[0]
            if len(self._exceptions) > 1:
                log.error(
                    "%d snapshots failed to copy; the first: %s", len(self._exceptions), first
                )
            raise first

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        d.update(copied=self.copied, skipped=self.skipped, failed=self.failed)
        d["bytes_transferred"] = self.bytes_transferred
        return d


def copy_id(destination: Repository, source_repo_id: str, source_backup_id: str) -> str:
    """The destination id of a copy: keyed by the destination, so names link nothing."""
    msg = f"scholar-ops copy\0{source_repo_id}\0{source_backup_id}".encode()
    return blake3.blake3(msg, key=destination.key.id_key).hexdigest()


def select_snapshots(
    snapshots: Iterable[Snapshot],
    *,
    ids: Sequence[str] = (),
    component: str | None = None,
    target: str | None = None,
    group: str | None = None,
) -> list[Snapshot]:
    """Snapshots by id prefix (each must match exactly one), then by component/target/group."""
    snaps = list(snapshots)
    if ids:
        chosen: dict[str, Snapshot] = {}
        for prefix in ids:
            matches = [s for s in snaps if s.backup_id.startswith(prefix)]
            if not matches:
                raise SnapshotNotFound(f"no snapshot {prefix!r} in the source repository")
            if len(matches) > 1:
                raise SnapshotNotFound(
                    f"snapshot id prefix {prefix!r} is ambiguous: give more digits"
                )
            chosen[matches[0].backup_id] = matches[0]
        snaps = list(chosen.values())
    return sorted(
        (
            s
            for s in snaps
            if (component is None or s.component == component)
            and (target is None or s.target == target)
            and (group is None or s.group == group)
        ),
        key=lambda s: s.timestamp,
    )


def copy_snapshots(
    source: Repository,
    destination: Repository,
    *,
    ids: Sequence[str] = (),
    component: str | None = None,
    target: str | None = None,
    group: str | None = None,
    dry_run: bool = False,
    verify: Verify = "full",
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    on_snapshot: Callable[[SnapshotCopy], None] | None = None,
) -> CopyReport:
    """Copy the chosen source snapshots (default: all) that the destination lacks.

    A snapshot that fails (damaged source data, an upload that does not read back)
    is reported and the others are still copied; ``CopyReport.raise_for_errors``
    raises the first failure. ``on_snapshot`` hears each snapshot's outcome.
    """
    t0 = time.monotonic()
    src_id, dst_id = source.config.repo_id, destination.config.repo_id
    if src_id == dst_id:
        raise ConfigError(
            f"{source.location} and {destination.location} are the same repository "
            f"({src_id[:12]}…): copy to another one"
        )
    if verify not in VERIFY_MODES:
        raise ConfigError(f"verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")
    report = CopyReport(source.location, destination.location, src_id, dst_id, dry_run, verify)
    with (
        audit.recorded(
            source, "copy", details={"destination": destination.location, "dry_run": dry_run}
        ) as audited,
        source.lock(f"copy to {destination.location}", wait=wait, on_wait=on_wait),
    ):
        readable, errors = source.scan_snapshots()
        for prefix in ids:  # a snapshot asked for by id that cannot be read: say so
            for e in errors:
                if e.snapshot_id and e.snapshot_id.startswith(prefix):
                    raise e
        for e in errors if not ids else ():
            log.warning("skipping an unreadable source snapshot: %s", e)
            report.errors.append(str(e))
            report._exceptions.append(e)
        chosen = select_snapshots(
            readable, ids=ids, component=component, target=target, group=group
        )
        dst_snaps, dst_errors = destination.scan_snapshots()
        for e in dst_errors:
            log.warning("destination snapshot unreadable (check it): %s", e)
        present = set(destination.snapshot_ids())
        forgotten = destination.forgotten()
        copied = {
            str(origin.get("backup_id"))
            for s in dst_snaps
            if isinstance(origin := s.details.get(COPIED_FROM), dict)
            and origin.get("repo_id") == src_id
        }
        mapping = _known_ids(readable, dst_snaps, src_id)
        reader: Restorer | None = None  # the source's index, loaded once when needed
        for snap in chosen:
            item = SnapshotCopy(
                source_id=snap.backup_id,
                component=snap.component,
                target=snap.target,
                timestamp=snap.timestamp,
                backup_type=snap.backup_type,
                size_bytes=snap.size_bytes,
                status="skipped",
                destination_id=copy_id(destination, src_id, snap.backup_id),
            )
            origin = snap.details.get(COPIED_FROM)
            if snap.backup_id in copied or item.destination_id in present:
                item.reason = "already in the destination"
            elif item.destination_id in forgotten:
                item.reason = "forgotten by the destination's retention"
            elif (
                isinstance(origin, dict)
                and origin.get("repo_id") == dst_id
                and (origin.get("backup_id") in present or origin.get("backup_id") in forgotten)
            ):
                # A copy of one of the destination's own snapshots, which it still has or
                # which its retention forgot: not copied back. (One it lost is copied back.)
                item.destination_id = str(origin["backup_id"])
                item.reason = (
                    "a copy of a snapshot of the destination"
                    if item.destination_id in present
                    else "a copy of a snapshot the destination's retention forgot"
                )
            elif dry_run:
                item.status = "would copy"
                item.destination_id = None
            else:
                try:
                    reader = reader or Restorer(source)
                    _copy_one(reader, destination, snap, item, mapping, verify)
                    item.status = "copied"
                except (IntegrityError, SnapshotNotFound) as e:
                    item.status = "failed"
                    item.reason = str(e)
                    item.destination_id = None
                    report.errors.append(f"{snap.short_id}: {e}")
                    report._exceptions.append(e)
            report.snapshots.append(item)
            if item.status == "copied":
                audited.snapshots.append(snap.backup_id)
            if on_snapshot is not None:
                on_snapshot(item)
        audited.details.update(copied=report.copied, failed=report.failed)
    report.duration_s = round(time.monotonic() - t0, 3)
    return report


def _known_ids(
    source_snaps: list[Snapshot], dest_snaps: list[Snapshot], source_repo_id: str
) -> dict[bytes, bytes]:
    """Source chunk id -> destination chunk id, from the pairs of snapshots copied before."""
    by_id = {s.backup_id: s for s in source_snaps}
    out: dict[bytes, bytes] = {}
    for d in dest_snaps:
        origin = d.details.get(COPIED_FROM)
        if not isinstance(origin, dict) or origin.get("repo_id") != source_repo_id:
            continue
        s = by_id.get(str(origin.get("backup_id")))
        if s is None or len(s.entries) != len(d.entries):
            continue
        for se, de in zip(s.entries, d.entries, strict=True):
            if se.name != de.name or len(se.chunks) != len(de.chunks):
                continue
            for sc, dc in zip(se.chunks, de.chunks, strict=True):
                out[bytes.fromhex(sc)] = bytes.fromhex(dc)
    return out


class _CopyWriter(BackupWriter):
    """A BackupWriter fed with chunks already cut (the source's), not with a stream."""

    audit_operation = "copy"  # the destination's audit trail says where the snapshot came from

    def add_chunk(self, data: bytes) -> tuple[bytes, bool]:
        """Store one chunk unless the destination has it; (its id here, whether it is new)."""
        assert self._index is not None
        cid = blake3.blake3(data, key=self._id_key).digest()
        if cid in self._own or cid in self._index:
            return cid, False
        self._own.add(cid)
        self.stats.chunks_new += 1
        self.stats.bytes_new += len(data)
        self._add_blob(cid, len(data), self._pool.submit(self._seal_blob, cid, memoryview(data)))
        return cid, True

    def __enter__(self) -> _CopyWriter:
        super().__enter__()
        self._adopted = set(self._written)
        return self

    def discard_uploads(self) -> None:
        """Delete the packs this run uploaded (not those it adopted): they did not read back."""
        for pack_id in self.uploaded():
            with contextlib.suppress(ObjectNotFound):
                self.repo.storage.delete(pack_name(pack_id))
            del self._written[pack_id]

    def uploaded(self) -> list[str]:
        """The packs this run uploaded (not those it adopted)."""
        return sorted(set(self._written) - self._adopted)

    def has(self, cid: bytes) -> bool:
        assert self._index is not None
        return cid in self._own or cid in self._index

    def flush(self) -> Index:
        """Upload everything pending; the index a reader of the new data needs."""
        assert self._index is not None
        self._flush_pack()
        for fut in self._pending_uploads:
            fut.result()
        self._pending_uploads = []
        index = Index()
        index.merge(self._index)
        for pack_id, entries in self._written.items():
            index.add_pack(pack_id, entries)
        return index

    def commit_copy(self, snap: Snapshot, details: dict[str, Any]) -> Snapshot:
        """Write the index, then the snapshot under the source's identity (the commit point)."""
        self.flush()
        if self._written:
            _, size = self.repo.write_index(self._written)
            self.stats.bytes_stored += size
        self.stats.duration_s = round(time.monotonic() - self._started, 3)
        out = Snapshot(
            backup_id=copy_id(self.repo, details[COPIED_FROM]["repo_id"], snap.backup_id),
            backup_type=snap.backup_type,
            timestamp=snap.timestamp,
            size_bytes=snap.size_bytes,
            checksum=snap.checksum,
            encryption_key_id=self.repo.key.key_id_hex,
            storage_location=self.repo.location,
            retention_until=snap.retention_until,
            component=snap.component,
            target=snap.target,
            group=snap.group,
            host=snap.host,
            tags=list(snap.tags),
            packs=sorted(self._written),
            stats=asdict(self.stats),
            details=details,
            entries=self.entries,
        )
        self.stats.bytes_stored += self.repo.commit_snapshot(out)
        self._committed = out
        # As after a backup's commit: a record that cannot be written is a warning.
        self.audit_error = audit.append_quietly(
            self.repo,
            self.audit_operation,
            snapshots=[out.backup_id],
            details={**self._audit_details(), "source_backup_id": snap.backup_id},
        )
        return out


def _copy_one(
    reader: Restorer,
    destination: Repository,
    snap: Snapshot,
    item: SnapshotCopy,
    mapping: dict[bytes, bytes],
    verify: Verify,
) -> None:
    t0 = time.monotonic()
    source = reader.repo
    with _CopyWriter(
        destination, component=snap.component, target=snap.target, backup_type="incremental"
    ) as writer:
        for entry in snap.entries:
            ids = [bytes.fromhex(c) for c in entry.chunks]
            item.chunks_total += len(ids)
            # Only chunks the destination may lack are read from the source (each once).
            wanted: dict[bytes, None] = {}
            for cid in ids:
                known = mapping.get(cid)
                if (known is None or not writer.has(known)) and cid not in wanted:
                    wanted[cid] = None
            if wanted:
                fetch = Entry(name=entry.name, chunks=[c.hex() for c in wanted])
                for cid, data in zip(wanted, reader.iter_entry(snap, fetch), strict=True):
                    item.chunks_read += 1
                    mapping[cid], _ = writer.add_chunk(data)
            copy = Entry(
                name=entry.name,
                kind=entry.kind,
                size=entry.size,
                sha256=entry.sha256,
                chunks=[mapping[c].hex() for c in ids],
                mode=entry.mode,
                mtime_ns=entry.mtime_ns,
                target=entry.target,
            )
            writer.entries.append(copy)
            writer.stats.chunks_total += len(ids)
        index = writer.flush()
        if verify != "none":
            try:
                if verify == "full":
                    _verify(destination, index, snap, writer.entries)
                else:
                    _verify_packs(destination, index, writer.uploaded())
            except IntegrityError:
                # Left in place, a re-run would adopt these packs and fail the same way.
                writer.discard_uploads()
                raise
        details = dict(snap.details)
        details[COPIED_FROM] = {
            "repo_id": source.config.repo_id,
            "backup_id": snap.backup_id,
            "location": source.location,
            "copied": now_iso(),
        }
        out = writer.commit_copy(snap, details)
    item.destination_id = out.backup_id
    item.chunks_new = writer.stats.chunks_new
    item.bytes_new = writer.stats.bytes_new
    item.bytes_transferred = writer.stats.bytes_stored
    item.duration_s = round(time.monotonic() - t0, 3)


def _verify(destination: Repository, index: Index, snap: Snapshot, entries: list[Entry]) -> None:
    """Read the copy back from the destination: each entry's size and SHA-256 as the source's."""
    import hashlib

    restorer = Restorer(destination, index)
    pending = Snapshot(**{**asdict(snap), "entries": entries, "packs": []})
    for entry in entries:
        if not entry.chunks:
            continue
        sha, size = hashlib.sha256(), 0
        check = Entry(name=entry.name, chunks=entry.chunks)  # no sha256: compared below
        for data in restorer.iter_entry(pending, check):
            sha.update(data)
            size += len(data)
        if size != entry.size or (entry.sha256 and sha.hexdigest() != entry.sha256):
            raise IntegrityError(
                f"copy of snapshot {snap.short_id} to {destination.location}: entry "
                f"{entry.name!r} reads back as {size} bytes, sha256 {sha.hexdigest()[:12]}…, "
                f"not {entry.size} bytes, {entry.sha256[:12]}… as in the source: nothing committed",
                entry.name,
                snap.backup_id,
            )


def _verify_packs(destination: Repository, index: Index, pack_ids: list[str]) -> None:
    """Read back the packs this copy uploaded: every blob authenticated and re-hashed."""
    from scholar_ops.vault.index import Location
    from scholar_ops.vault.restorer import ChunkReader

    reader = ChunkReader(destination, index)
    for pack_id in pack_ids:
        name = pack_name(pack_id)
        data = memoryview(destination.storage.get(name))
        for e in index.packs[pack_id]:
            blob = data[e.offset : e.offset + e.length]
            if len(blob) != e.length:
                raise IntegrityError(f"{name}: truncated (blob at {e.offset} is cut short)", name)
            reader.verify(
                e.chunk_id, blob, Location(pack_id, e.offset, e.length, e.raw_length), name
            )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover
