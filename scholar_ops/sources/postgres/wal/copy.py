"""Copying the WAL archive to another repository (with the base backups: a second copy).

WAL objects keep their names (PostgreSQL's file names under the cluster's system
identifier and timeline) and are re-sealed with the destination's keys: each is
read whole from the source (a segment is 16 MB by default), authenticated and
checked against its recorded SHA-256, compressed and sealed for the destination,
written, then read back and checked again. An object the destination has already
is not read.

Only the WAL the destination's base backups can use is copied: per cluster,
from the start of the oldest base backup the destination keeps (the rule its own
retention prunes by, ``prune_wal``), so a copy never puts back what the
destination's retention removed. Timeline history files are always copied. A
cluster without a base backup in the destination is left out.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

from scholar_ops.sources.postgres.basebackup import base_start, is_base_snapshot
from scholar_ops.vault.compress import Compressor
from scholar_ops.vault.errors import IntegrityError, ObjectNotFound
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot

from .names import segno_of
from .store import (
    _HEAD,
    BODY_SUFFIX,
    CLUSTERS_PREFIX,
    OBJECT_MAGIC,
    WalMeta,
    _entries,
    _open,
    archived_clusters,
    read_cluster_info,
    wal_segment_size,
)


@dataclass
class WalCopyReport:
    dry_run: bool = False
    copied: int = 0  # or, with dry_run, would be copied
    present: int = 0  # already in the destination
    bytes_transferred: int = 0
    clusters: list[int] = field(default_factory=list)  # clusters whose WAL was considered
    skipped_clusters: list[int] = field(default_factory=list)  # no base backup there

    def line(self) -> str:
        verb = "WAL: would copy" if self.dry_run else "WAL: copied"
        extra = (
            f"; clusters without a base backup in the destination left out: "
            f"{', '.join(map(str, self.skipped_clusters))}"
            if self.skipped_clusters
            else ""
        )
        return (
            f"{verb} {self.copied} file(s), {self.present} already there, "
            f"{self.bytes_transferred} bytes transferred{extra}"
        )


def copy_wal(
    source: Repository, destination: Repository, *, dry_run: bool = False
) -> WalCopyReport:
    """Copy the WAL the destination's base backups need and lack (see the module docstring)."""
    report = WalCopyReport(dry_run=dry_run)
    with (
        source.lock(f"copy WAL to {destination.location}"),
        destination.lock(f"copy WAL from {source.location}"),
    ):
        _copy(source, destination, report)
    return report


def _copy(source: Repository, destination: Repository, report: WalCopyReport) -> None:
    bases: dict[int, list[Snapshot]] = {}
    for snap in destination.snapshots():
        if is_base_snapshot(snap):
            bases.setdefault(int(snap.details["system_identifier"]), []).append(snap)
    for system_id in archived_clusters(source):
        kept = bases.get(system_id)
        if not kept:
            report.skipped_clusters.append(system_id)
            continue
        report.clusters.append(system_id)
        seg_size = wal_segment_size(source, system_id)
        cutoff = min(base_start(s)[1] for s in kept)
        cut_segno = segno_of(cutoff, seg_size)
        present = {info.name for info in destination.storage.list(f"wal/{system_id}/")}
        wanted = []
        for wal, obj, _ in _entries(source, system_id):
            if wal.kind == "backup" and wal.start_lsn(seg_size) < cutoff:
                continue
            if wal.kind in ("segment", "partial") and wal.segno(seg_size) < cut_segno:
                continue
            if obj in present:
                report.present += 1
            else:
                wanted.append(obj)
        if report.dry_run:
            report.copied += len(wanted)
            continue
        if not wanted:
            continue
        _copy_cluster_info(source, destination, system_id)
        for obj in wanted:
            report.bytes_transferred += _copy_object(source, destination, obj)
            report.copied += 1


def _copy_cluster_info(source: Repository, destination: Repository, system_id: int) -> None:
    name = f"{CLUSTERS_PREFIX}{system_id}"
    if read_cluster_info(destination, system_id) is not None:
        return
    info = read_cluster_info(source, system_id)
    if info is not None:
        destination.storage.put(name, destination.seal(name, json.dumps(info).encode()))


def _copy_object(source: Repository, destination: Repository, obj: str) -> int:
    try:
        meta, plain = _open(source, obj, source.storage.get(obj))
    except ObjectNotFound:
        return 0  # pruned from the source meanwhile
    cfg = destination.config
    alg, body = Compressor(cfg.compression, cfg.compression_level).compress(plain)
    sealed_body = destination.seal(obj + BODY_SUFFIX, bytes(body))
    new_meta = WalMeta(
        name=meta.name,
        system_id=meta.system_id,
        size=meta.size,
        sha256=meta.sha256,
        alg=int(alg),
        body_sha256=hashlib.sha256(sealed_body).hexdigest(),
        stored=meta.stored or time.time(),
        segment_size=meta.segment_size,
    )
    sealed_meta = destination.seal(obj, new_meta.to_json())
    blob = b"".join((_HEAD.pack(OBJECT_MAGIC, len(sealed_meta)), sealed_meta, sealed_body))
    destination.storage.put(obj, blob)
    back, data = _open(destination, obj, destination.storage.get(obj))
    if back.sha256 != meta.sha256 or hashlib.sha256(data).hexdigest() != meta.sha256:
        raise IntegrityError(f"{obj}: the copy in {destination.location} does not read back", obj)
    return len(blob)
