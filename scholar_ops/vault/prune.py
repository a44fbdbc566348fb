"""Retention: choosing snapshots to forget, and pruning data no snapshot needs.

Runs under an exclusive store lock, so no backup is adding references while
packs are deleted. Order: forget snapshots, write a consolidated index, delete
the index objects it replaces, then delete unneeded packs. A crash at any
point leaves extra objects, never a snapshot with missing data.

S3 Object Lock (vault.storage.s3): a snapshot whose object is still under retention is
not forgotten at all (it stays listed and restorable, its packs stay): the report names
it with its retention date (``snapshots_locked``) and a warning says so. Locked packs and
index objects nobody needs any more are left for a later prune (``objects_locked``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scholar_ops.vault import audit
from scholar_ops.vault.errors import DeleteDenied, ObjectLocked, ObjectNotFound, VaultError
from scholar_ops.vault.index import INDEX_PREFIX
from scholar_ops.vault.pack import pack_name
from scholar_ops.vault.repository import FORGOTTEN_PREFIX, Repository
from scholar_ops.vault.snapshot import SNAPSHOT_PREFIX, Snapshot
from scholar_ops.vault.storage.base import Storage, partial_uploads, remove_partial

log = logging.getLogger("scholar_ops.vault.prune")


@dataclass(frozen=True)
class RetentionPolicy:
    """restic-style keep rules, applied per (component, target). Zero means 'rule off'.

    A snapshot whose retention_until lies in the future is always kept; with
    ``expire=True`` one whose retention_until has passed is removed unless a
    keep rule keeps it.
    """

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    def is_empty(self) -> bool:
        return not any(
            (
                self.keep_last,
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
                self.keep_yearly,
            )
        )


#: What the apply-retention flow keeps by default (its deployment takes these too).
DEFAULT_POLICY = RetentionPolicy(keep_last=7, keep_daily=14, keep_weekly=8, keep_monthly=12)

_BUCKETS = {
    "keep_hourly": "%Y-%m-%d %H",
    "keep_daily": "%Y-%m-%d",
    "keep_weekly": "%G-W%V",
    "keep_monthly": "%Y-%m",
    "keep_yearly": "%Y",
}


def apply_policy(
    snapshots: Iterable[Snapshot], policy: RetentionPolicy, now: datetime | None = None
) -> tuple[list[Snapshot], list[Snapshot]]:
    """Split snapshots into (keep, forget)."""
    now = now or datetime.now(UTC)
    groups: dict[tuple[str, str], list[Snapshot]] = {}
    for s in snapshots:
        groups.setdefault((s.component, s.target), []).append(s)
    keep: list[Snapshot] = []
    forget: list[Snapshot] = []
    for snaps in groups.values():
        snaps = sorted(snaps, key=lambda s: s.timestamp, reverse=True)  # newest first
        kept: set[str] = set()
        if policy.keep_last:
            kept.update(s.backup_id for s in snaps[: policy.keep_last])
        for rule, fmt in _BUCKETS.items():
            n = getattr(policy, rule)
            seen: list[str] = []
            for s in snaps:
                if len(seen) >= n:
                    break
                bucket = s.time.strftime(fmt)
                if bucket not in seen:
                    seen.append(bucket)
                    kept.add(s.backup_id)
        for s in snaps:
            held = s.retention_until is not None and datetime.fromisoformat(s.retention_until) > now
            if s.backup_id in kept or held or (policy.is_empty() and s.retention_until is None):
                keep.append(s)
            else:
                forget.append(s)
    return keep, forget


@dataclass
class PruneReport:
    snapshots_forgotten: list[str] = field(default_factory=list)
    packs_deleted: int = 0
    bytes_deleted: int = 0
    packs_kept: int = 0
    bytes_kept: int = 0
    index_objects_replaced: int = 0
    partial_uploads_removed: int = 0
    dry_run: bool = False
    wal_files_deleted: int = 0  # archived WAL no kept base backup needs (sources.postgres)
    #: snapshots retention chose but S3 Object Lock still holds: id -> retained until (kept)
    snapshots_locked: dict[str, str] = field(default_factory=dict)
    objects_locked: int = 0  # unneeded packs / index objects still locked: left for later


def _locked_until(storage: Storage, name: str) -> str | None:
    fn = getattr(storage, "locked_until", None)
    if not callable(fn):
        return None
    try:
        until = fn(name)
    except ObjectNotFound:
        return None
    return None if until is None else until.isoformat()


#: Temporary files of interrupted uploads older than this are removed by prune.
PARTIAL_MAX_AGE_S = 15 * 60.0


def forget_and_prune(
    repo: Repository,
    forget_ids: Iterable[str] = (),
    *,
    dry_run: bool = False,
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> PruneReport:
    """Delete the given snapshots, then every pack no remaining snapshot needs.

    The forgotten ids are recorded (``forgotten/``) before their snapshots are
    deleted, so a snapshot put back later from an older copy is recognised;
    snapshots that were forgotten before and are present again are deleted too.
    Audit records (``audit/``) are never deleted: prune lists only the prefixes it owns.
    A prune that changes something (not a dry run) is recorded in the audit trail.
    """
    report = PruneReport(dry_run=dry_run)
    forget_ids = list(forget_ids)
    if dry_run:
        return _forget_and_prune(repo, forget_ids, report, wait, on_wait)
    with audit.recorded(repo, "prune", snapshots=forget_ids) as rec:
        _forget_and_prune(repo, forget_ids, report, wait, on_wait)
        rec.snapshots = list(report.snapshots_forgotten)
        rec.details.update(packs_deleted=report.packs_deleted, bytes_deleted=report.bytes_deleted)
    return report


def _forget_and_prune(
    repo: Repository,
    forget_ids: list[str],
    report: PruneReport,
    wait: float,
    on_wait: Callable[[str], None] | None,
) -> PruneReport:
    dry_run = report.dry_run
    with repo.lock("prune", exclusive=True, wait=wait, on_wait=on_wait):
        ids = set(repo.snapshot_ids())
        forget_ids = list(forget_ids)
        for sid in forget_ids:
            if sid not in ids:
                raise VaultError(f"cannot forget snapshot {sid}: no such snapshot")
        for sid in list(forget_ids):
            until = _locked_until(repo.storage, SNAPSHOT_PREFIX + sid)
            if until is not None:  # kept whole: never forgotten without saying so
                report.snapshots_locked[sid] = until
                forget_ids.remove(sid)
                log.warning(
                    "snapshot %s is under S3 Object Lock retention until %s: kept, not forgotten",
                    sid,
                    until,
                )
        tombstone_names = [o.name for o in repo.storage.list(FORGOTTEN_PREFIX)]
        forgotten, unreadable = repo.read_forgotten()
        replayed = ids & forgotten.keys()
        forget_set = set(forget_ids) | replayed
        report.snapshots_forgotten = sorted(forget_set)
        if not dry_run and forget_set:
            when = datetime.now(UTC).isoformat()
            before = dict(forgotten)
            forgotten.update({sid: when for sid in forget_ids})
            written = repo.write_forgotten(forgotten)
            for sid in sorted(forget_set):
                try:
                    repo.storage.delete(SNAPSHOT_PREFIX + sid)
                    before[sid] = forgotten[sid]
                except ObjectNotFound:
                    before[sid] = forgotten[sid]
                except ObjectLocked as e:  # a replayed one: forgotten, deleted when unlocked
                    report.snapshots_locked[sid] = e.until
                except DeleteDenied:
                    # Credentials that may write but not delete (a backup host's): take the
                    # new tombstones back (an overwrite, which they may do), so the
                    # snapshots still present are not reported as put back; then fail.
                    _rewrite_forgotten(repo, written, before)
                    raise
            keep_names = {e.object_name for e in unreadable} | {written}
            for name in tombstone_names:
                if name not in keep_names:
                    with contextlib.suppress(ObjectNotFound):
                        repo.storage.delete(name)
        remaining = [repo.load_snapshot(s, forgotten) for s in sorted(ids - forget_set)]
        index = repo.load_index()
        index_names = [o.name for o in repo.storage.list(INDEX_PREFIX)]
        sizes = repo.pack_sizes()

        keep: set[str] = set()
        # Full snapshots first: they pin their own packs, which incrementals may then share.
        for snap in sorted(remaining, key=lambda s: s.backup_type != "full"):
            own = set(snap.packs)
            for cid in snap.chunk_ids():
                locs = [loc.pack_id for loc in index.locations(cid) if loc.pack_id in sizes]
                if not locs:
                    continue  # already missing: check reports it; nothing to keep
                choice = next((p for p in locs if p in own), None)
                if choice is None or snap.backup_type != "full":
                    choice = next((p for p in locs if p in keep), choice or locs[0])
                keep.add(choice)
        delete = [p for p in sizes if p not in keep]
        report.packs_kept = len(keep)
        report.bytes_kept = sum(sizes[p] for p in keep)
        report.packs_deleted = len(delete)
        report.bytes_deleted = sum(sizes[p] for p in delete)
        report.index_objects_replaced = len(index_names)
        partial = [p for p in partial_uploads(repo.storage) if p.age_s > PARTIAL_MAX_AGE_S]
        report.partial_uploads_removed = len(partial)
        if dry_run:
            return report
        if index_names or keep:
            repo.write_index({p: index.packs[p] for p in sorted(keep) if p in index.packs})
        for name in [*index_names, *(pack_name(p) for p in delete)]:
            try:
                repo.storage.delete(name)
            except ObjectNotFound:
                pass
            except ObjectLocked:
                report.objects_locked += 1
        if report.objects_locked:
            log.warning(
                "%d unneeded object(s) are under S3 Object Lock retention: left for a later prune",
                report.objects_locked,
            )
        # Under the exclusive lock no backup is writing: these are left by dead processes.
        for p in partial:
            remove_partial(repo.storage, p.name)
    return report


def _rewrite_forgotten(repo: Repository, name: str, forgotten: dict[str, str]) -> None:
    """Overwrite the tombstone object ``name`` with ``forgotten`` (see write_forgotten)."""
    payload = json.dumps({"forgotten": forgotten}, separators=(",", ":")).encode()
    repo.storage.put(name, repo.seal(name, payload))


def prune_by_policy(
    repo: Repository,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> PruneReport:
    _, forget = apply_policy(repo.snapshots(), policy)
    return forget_and_prune(
        repo, [s.backup_id for s in forget], dry_run=dry_run, wait=wait, on_wait=on_wait
    )
