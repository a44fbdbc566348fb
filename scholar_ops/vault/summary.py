"""What a snapshot holds and how big it is, in words and figures for people.

The store's own summaries: the small, secret-free result a backup returns
(``snapshot_summary``), a catalog row, "12 tables" / "3 collections, 5000
records", "1 database"), and the formats every report uses: bytes, ages, how long
something took and how fast, and a dedup ratio only where it means something.
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


#: Below this much input a dedup ratio tells the store's per-object overhead, not
#: deduplication ("0.01x" for a 4-byte file): reports leave it out.
DEDUP_MIN_BYTES = 1 << 20
#: Shorter than this, a rate is noise ("0.0 MB/s", or absurdly high): reports leave it out.
RATE_MIN_SECONDS = 0.05


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 database", "2 databases", "0 databases" (``many``: an irregular plural)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def human_elapsed(seconds: float) -> str:
    """How long something took: "0.04 s", "0.3 s", "12 s", "4 min 05 s", "2 h 05 min"."""
    s = max(0.0, float(seconds))
    if s < RATE_MIN_SECONDS:
        return f"{s:.2f} s"
    if s < 9.95:
        return f"{s:.1f} s"
    if s < 59.5:
        return f"{s:.0f} s"
    if s < 3599.5:
        m, r = divmod(round(s), 60)
        return f"{m} min {r:02d} s"
    h, m = divmod(round(s / 60), 60)
    return f"{h} h {m:02d} min"


def human_rate(nbytes: float, seconds: float) -> str | None:
    """Bytes per second in decimal units ("45 KB/s", "2.5 MB/s"); None when ``seconds`` is
    too short for the figure to mean anything."""
    if seconds < RATE_MIN_SECONDS:
        return None
    rate = max(0.0, float(nbytes)) / seconds
    unit = "B/s"
    for unit in ("B/s", "KB/s", "MB/s", "GB/s"):
        if rate < 999.5 or unit == "GB/s":
            break
        rate /= 1000
    return f"{rate:.1f} {unit}" if rate < 9.95 and unit != "B/s" else f"{rate:.0f} {unit}"


def human_dedup(size_bytes: float, stored_bytes: float) -> str | None:
    """Bytes read per byte stored ("3.2x"); None when nothing was stored or the input is too
    small for the ratio to say anything (under DEDUP_MIN_BYTES)."""
    if stored_bytes <= 0 or size_bytes < DEDUP_MIN_BYTES:
        return None
    ratio = size_bytes / stored_bytes
    return f"{ratio:.1f}x" if ratio < 9.95 else f"{ratio:.0f}x"


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
    #: the fallback repository block it went to, the primary being unreachable (else None)
    fallback: str | None = None

    @property
    def short_id(self) -> str:
        return self.backup_id[:8]

    @property
    def elapsed(self) -> str:
        """How long the backup took, for people ("0.3 s", "4 min 05 s")."""
        return human_elapsed(self.duration_s)

    @property
    def rate(self) -> str | None:
        """Bytes read per second ("45 MB/s"); None for a backup too short to measure."""
        return human_rate(self.size_bytes, self.duration_s)

    @property
    def dedup(self) -> str | None:
        """Bytes read per byte stored ("3.2x"); None when it would mean nothing."""
        return human_dedup(self.size_bytes, self.stored_bytes)

    def timing(self) -> str:
        """ "12 s at 45 MB/s", or "0.01 s" when too short for a rate."""
        return f"{self.elapsed} at {self.rate}" if self.rate else self.elapsed

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
        return plural(len(d.get("tables", [])), "table")
    if snap.component == "postgres-base":
        return (
            f"cluster base backup, timeline {d.get('timeline')}, WAL "
            f"{d.get('start_lsn')}..{d.get('stop_lsn')}"
        )
    if snap.component == "redis":
        dbs = d.get("databases") or {}
        keys = sum(int(v.get("keys", 0)) for v in dbs.values())
        return f"{plural(keys, 'key')} in {plural(len(dbs), 'database')}"
    if snap.component == "chroma":
        cols = d.get("collections") or []
        kind = (
            " (physical copy)"
            if d.get("kind") == "physical" or "physical" in str(d.get("format", ""))
            else ""
        )
        records = sum(int(c.get("records", 0)) for c in cols)
        return f"{plural(len(cols), 'collection')}, {plural(records, 'record')}{kind}"
    if snap.component == "files":
        c = d.get("counts") or {}
        return (
            f"{plural(int(c.get('files', 0)), 'file')} ({c.get('files_unchanged', 0)} unchanged), "
            f"{plural(int(c.get('dirs', 0)), 'dir')}, {plural(int(c.get('symlinks', 0)), 'symlink')}"
        )
    return plural(len(snap.entries), "entry", "entries")


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
            f"in {human_elapsed(self.duration_s)}; {self.verified}"
        )
