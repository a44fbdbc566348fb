"""Snapshots: the manifest of one backup, committed last.

A snapshot carries the original design's BackupMetadata (backup_id,
backup_type, timestamp, size_bytes, checksum, encryption_key_id,
storage_location, retention_until) plus the component it covers, the packs
it wrote, statistics, per-component details and its entries. Every entry
lists all the chunk ids that rebuild it: any snapshot restores on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

SNAPSHOT_PREFIX = "snapshots/"
SNAPSHOT_KIND = "snapshot"

BackupType = Literal["full", "incremental"]
EntryKind = Literal["stream", "file", "dir", "symlink"]


@dataclass
class Entry:
    name: str
    kind: EntryKind = "stream"
    size: int = 0
    sha256: str = ""
    chunks: list[str] = field(default_factory=list)
    mode: int | None = None
    mtime_ns: int | None = None
    target: str | None = None  # symlinks

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Entry:
        return cls(**d)


@dataclass
class BackupStats:
    chunks_total: int = 0
    chunks_new: int = 0
    bytes_new: int = 0  # plaintext bytes of chunks written by this backup
    bytes_stored: int = 0  # bytes uploaded (packs + index + manifest)
    packs_written: int = 0
    packs_reused: int = 0  # packs adopted from an interrupted run
    duration_s: float = 0.0


@dataclass
class Snapshot:
    backup_id: str
    backup_type: BackupType
    timestamp: str
    size_bytes: int
    checksum: str
    encryption_key_id: str
    storage_location: str
    retention_until: str | None
    component: str
    target: str
    group: str | None = None
    host: str = ""
    tags: list[str] = field(default_factory=list)
    packs: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.backup_id[:8]

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.timestamp)

    def metadata(self) -> dict[str, Any]:
        """Everything but the entries: what catalogs and artifacts show."""
        d = asdict(self)
        d.pop("entries")
        d.pop("packs")
        d["entry_count"] = len(self.entries)
        return d

    def chunk_ids(self) -> set[bytes]:
        return {bytes.fromhex(c) for e in self.entries for c in e.chunks}

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> Snapshot:
        d = json.loads(payload)
        d["entries"] = [Entry.from_json(e) for e in d.get("entries", [])]
        return cls(**d)


def new_backup_id() -> str:
    return os.urandom(32).hex()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def combined_checksum(entries: list[Entry]) -> str:
    """sha256 of the single entry's content, or of the entries' names and hashes."""
    if len(entries) == 1:
        return "sha256:" + entries[0].sha256
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.name):
        h.update(f"{e.name}\0{e.kind}\0{e.sha256}\n".encode())
    return "sha256:" + h.hexdigest()
