"""What a snapshot holds and how big it is, in words and figures for people.

The store's own summaries: the small, secret-free result a backup returns
(``snapshot_summary``), a catalog row, "12 tables" / "3 collections, 5000
records", and the byte and duration formats every report uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scholar_ops.vault.snapshot import Snapshot


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_duration(seconds: float) -> str:
    """A short age or duration: "42 s", "7 min", "3.5 h", "2.0 d"."""
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


@dataclass(frozen=True)
class BackupSummary:
    """What a backup reports about its snapshot: small and secret-free (never data)."""

    backup_id: str
    component: str
    target: str
    backup_type: str
    timestamp: str
    size_bytes: int
    new_bytes: int
    stored_bytes: int
    dedup_ratio: float | None  # bytes read per byte stored, None when nothing was stored
    duration_s: float
    throughput_mb_s: float
    checksum: str
    retention_until: str | None
    items: str  # what it holds, in a few words ("12 tables")

    @property
    def short_id(self) -> str:
        return self.backup_id[:8]

    @classmethod
    def of(cls, snap: Snapshot) -> BackupSummary:
        stats = snap.stats
        duration = max(float(stats.get("duration_s", 0.0)), 1e-3)
        stored = int(stats.get("bytes_stored", 0))
        return cls(
            backup_id=snap.backup_id,
            component=snap.component,
            target=snap.target,
            backup_type=snap.backup_type,
            timestamp=snap.timestamp,
            size_bytes=snap.size_bytes,
            new_bytes=int(stats.get("bytes_new", 0)),
            stored_bytes=stored,
            dedup_ratio=round(snap.size_bytes / stored, 2) if stored else None,
            duration_s=round(duration, 2),
            throughput_mb_s=round(snap.size_bytes / 1e6 / duration, 1),
            checksum=snap.checksum,
            retention_until=snap.retention_until,
            items=snapshot_items(snap),
        )


def snapshot_items(snap: Snapshot) -> str:
    """What a snapshot holds, in a few words ("12 tables", "3 collections, 5000 records")."""
    d = snap.details
    if snap.component == "postgres":
        return f"{len(d.get('tables', []))} tables"
    if snap.component == "postgres-base":
        return (
            f"cluster base backup, timeline {d.get('timeline')}, WAL "
            f"{d.get('start_lsn')}..{d.get('stop_lsn')}"
        )
    if snap.component == "redis":
        dbs = d.get("databases") or {}
        keys = sum(int(v.get("keys", 0)) for v in dbs.values())
        return f"{keys} keys in {len(dbs)} databases"
    if snap.component == "chroma":
        cols = d.get("collections") or []
        kind = (
            " (physical copy)"
            if d.get("kind") == "physical" or "physical" in str(d.get("format", ""))
            else ""
        )
        return (
            f"{len(cols)} collections, {sum(int(c.get('records', 0)) for c in cols)} records{kind}"
        )
    if snap.component == "files":
        c = d.get("counts") or {}
        return (
            f"{c.get('files', 0)} files ({c.get('files_unchanged', 0)} unchanged), "
            f"{c.get('dirs', 0)} dirs, {c.get('symlinks', 0)} symlinks"
        )
    return f"{len(snap.entries)} entries"


def catalog_row(snap: Snapshot) -> dict[str, Any]:
    return {
        "id": snap.short_id,
        "time": snap.timestamp[:19].replace("T", " "),
        "component": snap.component,
        "target": snap.target,
        "type": snap.backup_type,
        "size": human_bytes(snap.size_bytes),
        "stored": human_bytes(int(snap.stats.get("bytes_stored", 0))),
        "retention_until": (snap.retention_until or "")[:10],
        "group": (snap.group or "")[:8],
    }


@dataclass(frozen=True)
class RestoreSummary:
    """What a restore reports, whatever the component (small and secret-free).

    ``restored`` says what came back in a few words ("12 tables, 5400 rows"),
    ``verified`` what was checked ("row counts match the backup"); ``figures`` holds
    the component's own numbers for the report.
    """

    component: str
    snapshot_id: str
    destination: str
    restored: str
    verified: str
    duration_s: float
    figures: dict[str, Any]
    mismatches: list[str]
    warnings: list[str]

    @property
    def short_id(self) -> str:
        return self.snapshot_id[:8]

    def line(self) -> str:
        """One line for the operator."""
        return (
            f"restored snapshot {self.short_id} into {self.destination}: {self.restored} "
            f"in {self.duration_s} s; {self.verified}"
        )
