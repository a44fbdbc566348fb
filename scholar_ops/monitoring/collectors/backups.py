"""The repository's view of every backed-up target, from snapshot manifests only (no data).

Per component and target: how many snapshots, the newest one's age, and the figures
of the newest snapshot (which is the last successful backup): its time
(``last_success``), duration, size, new, stored bytes and dedup ratio. These are the
same values a backup run pushes on success (scholar_ops.monitoring.backup_status), so both
pushers agree on the group's gauges.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from scholar_ops.monitoring import names
from scholar_ops.monitoring.backup_status import iso_to_unix
from scholar_ops.monitoring.samples import Sample, gauge
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot


def snapshot_figures(snap: Snapshot) -> dict[str, float | None]:
    """Duration, size, new, stored and dedup of a snapshot, as a backup run reports them
    (scholar_ops.vault.summary.BackupSummary's rounding)."""
    stats = snap.stats
    stored = int(stats.get("bytes_stored", 0))
    return {
        "duration_s": round(max(float(stats.get("duration_s", 0.0)), 1e-3), 2),
        "size_bytes": float(snap.size_bytes),
        "new_bytes": float(int(stats.get("bytes_new", 0))),
        "stored_bytes": float(stored),
        "dedup_ratio": round(snap.size_bytes / stored, 2) if stored else None,
    }


def collect_snapshots(snapshots: Iterable[Snapshot], now: float | None = None) -> list[Sample]:
    """Samples labelled component and target, for every target with a snapshot."""
    now = time.time() if now is None else now
    by_target: dict[tuple[str, str], list[Snapshot]] = {}
    for snap in snapshots:
        by_target.setdefault((snap.component, snap.target), []).append(snap)
    samples: list[Sample] = []
    for (component, target), snaps in sorted(by_target.items()):
        labels = {"component": component, "target": target}
        newest = max(snaps, key=lambda s: iso_to_unix(s.timestamp))
        newest_time = iso_to_unix(newest.timestamp)
        fig = snapshot_figures(newest)
        samples += [
            gauge(names.BACKUP_SNAPSHOTS, len(snaps), labels),
            gauge(names.BACKUP_NEWEST_AGE, max(0.0, now - newest_time), labels),
            gauge(names.BACKUP_LAST_SUCCESS, newest_time, labels),
            gauge(names.BACKUP_DURATION, fig["duration_s"] or 0.0, labels),
            gauge(names.BACKUP_SIZE, fig["size_bytes"] or 0.0, labels),
            gauge(names.BACKUP_NEW, fig["new_bytes"] or 0.0, labels),
            gauge(names.BACKUP_STORED, fig["stored_bytes"] or 0.0, labels),
        ]
        if fig["dedup_ratio"] is not None:
            samples.append(gauge(names.BACKUP_DEDUP, fig["dedup_ratio"], labels))
    return samples


def collect_backups(repo: Repository, now: float | None = None) -> list[Sample]:
    """``collect_snapshots`` over every committed snapshot of ``repo``."""
    return collect_snapshots(repo.snapshots(), now)
