"""Space management: a repository's size limit.

A repository may carry a size limit (the ``BackupRepository`` block's ``size_limit``,
``"500 GB"``; ``Repository.size_limit`` in bytes once opened). Before a backup writes
anything, ``ensure_space`` estimates where it would leave the repository:

    current size + expected new bytes  <=  limit ?

- **current size**: the sum of the sizes of every object a storage listing returns
  (packs, index, snapshots, keys, locks, WAL): what the bucket or directory bills for
  (a local repository's ``.tmp-*`` files are not objects and not counted).
- **expected new bytes**: what the target's previous snapshot of the same backup type
  added (the larger of its ``stats.bytes_new``, the new chunks before compression, and
  ``stats.bytes_stored``, what it uploaded); without one, the source's size
  (``TargetBlock.estimate_bytes``) as an upper bound, since a backup never stores more
  than it reads plus a small per-object overhead; without either, 0 (then only the
  check during the backup applies).

When the estimate passes the limit, ``make_room`` runs first: the retention policy
(``prune.apply_policy``) forgets what it does not keep, except the newest snapshot of
every component/target (``protect_newest``: the last good snapshot of a target is never
deleted to make room, whatever the policy says), then prune deletes the data nobody
needs. If the repository is still too full, ``RepositoryFull`` names the repository,
its size, the limit, the estimate and what to do; nothing of the backup was written.

During the backup, ``BackupWriter`` counts each pack before its upload
(``SpaceCheck``) and lists the repository again whenever the backup has added half the
room left at the last listing (other backups and prunes change it meanwhile); when the
listed size plus the packs still uploading plus the next pack would pass the limit, the
backup stops with ``RepositoryFull`` before that pack: no snapshot is committed; the packs already
uploaded are adopted by the next run or removed by the next prune, like those of any
interrupted backup.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scholar_ops.vault.errors import ConfigError, RepositoryFull
from scholar_ops.vault.prune import PruneReport, RetentionPolicy, apply_policy, forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot
from scholar_ops.vault.storage.base import Storage
from scholar_ops.vault.summary import human_bytes

log = logging.getLogger("scholar_ops.vault.space")

#: Units of ``parse_size``: SI (powers of 1000) and IEC (powers of 1024), case-insensitive.
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "p": 10**15,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")

#: What to tell the operator when the repository is full.
WHAT_TO_DO = (
    "raise the repository block's size_limit (and the space behind it), or free space: "
    "run apply-retention with a shorter policy (snapshots whose retention_until lies ahead "
    "are kept until then), or back this target up into another repository"
)


def parse_size(text: str | int) -> int:
    """``"500 GB"`` -> 500_000_000_000; ``"1.5 TiB"``, ``"750G"``, ``1024`` (bytes) too.

    SI units (kB, MB, GB, TB, PB; K, M, G, T, P) are powers of 1000, IEC units (KiB,
    MiB, GiB, TiB, PiB) powers of 1024; a bare number is bytes. The size must be > 0."""
    if isinstance(text, bool):
        raise ConfigError(f"size {text!r} is not a size")
    if isinstance(text, int):
        value = text
    else:
        m = _SIZE.fullmatch(str(text))
        unit = m.group(2).lower() if m else ""
        if m is None or unit not in _UNITS:
            raise ConfigError(
                f"size {text!r} is not a size: write a number and a unit, e.g. '500 GB' or "
                "'1.5 TiB' (kB MB GB TB PB are powers of 1000, KiB MiB GiB TiB PiB of 1024)"
            )
        value = int(float(m.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"size {text!r} must be more than 0 bytes")
    return value


def repository_size(storage: Storage) -> int:
    """Bytes of every object in the storage (one listing)."""
    return sum(o.size for o in storage.list(""))


@dataclass(frozen=True)
class SpaceEstimate:
    location: str
    size: int  # the repository now
    expected: int  # what the backup is expected to add
    basis: str  # where ``expected`` comes from, for people
    limit: int

    @property
    def total(self) -> int:
        return self.size + self.expected

    @property
    def fits(self) -> bool:
        return self.total <= self.limit

    def describe(self) -> str:
        return (
            f"{self.location} holds {human_bytes(self.size)} of its "
            f"{human_bytes(self.limit)} size limit ({self.limit} bytes); the backup is expected to add "
            f"{human_bytes(self.expected)} ({self.basis})"
        )


def expected_bytes(
    snapshots: Iterable[Snapshot],
    component: str,
    target: str,
    backup_type: str,
    source_bytes: int = 0,
) -> tuple[int, str]:
    """(bytes, basis): what a backup of ``component/target`` is expected to add."""
    same = [
        s
        for s in snapshots
        if s.component == component and s.target == target and s.backup_type == backup_type
    ]
    if same:
        prev = max(same, key=lambda s: s.timestamp)
        stats = prev.stats or {}
        n = max(int(stats.get("bytes_new", 0) or 0), int(stats.get("bytes_stored", 0) or 0))
        return n, f"what the previous {backup_type} snapshot {prev.backup_id[:8]} added"
    if source_bytes > 0:
        return source_bytes, "the source's size, an upper bound: no earlier snapshot"
    return 0, "unknown: no earlier snapshot and no source size; checked during the backup"


def estimate(
    repo: Repository,
    limit: int,
    *,
    component: str,
    target: str,
    backup_type: str,
    source_bytes: int = 0,
) -> SpaceEstimate:
    snapshots = repo.scan_snapshots()[0]  # a damaged one is check's business, not this one's
    expected, basis = expected_bytes(snapshots, component, target, backup_type, source_bytes)
    return SpaceEstimate(repo.location, repository_size(repo.storage), expected, basis, limit)


def protect_newest(snapshots: Iterable[Snapshot], forget: Iterable[Snapshot]) -> list[Snapshot]:
    """``forget`` without the newest snapshot of each (component, target) of ``snapshots``."""
    newest: dict[tuple[str, str], Snapshot] = {}
    for s in snapshots:
        key = (s.component, s.target)
        if key not in newest or s.timestamp > newest[key].timestamp:
            newest[key] = s
    keep = {s.backup_id for s in newest.values()}
    return [s for s in forget if s.backup_id not in keep]


def make_room(
    repo: Repository,
    policy: RetentionPolicy,
    *,
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> PruneReport:
    """Retention with ``policy``, never forgetting a target's newest snapshot, then prune."""
    snaps = repo.snapshots()
    _, forget = apply_policy(snaps, policy)
    forget = protect_newest(snaps, forget)
    return forget_and_prune(repo, [s.backup_id for s in forget], wait=wait, on_wait=on_wait)


def full_error(est: SpaceEstimate, what: str, freed: str = "") -> RepositoryFull:
    return RepositoryFull(
        f"repository full: {what} does not fit under the repository's size limit: "
        f"{est.describe()}{freed}. Nothing of this backup was committed. To go on: " + WHAT_TO_DO,
        est.location,
        est.size,
        est.limit,
    )


def ensure_space(
    repo: Repository,
    *,
    component: str,
    target: str,
    backup_type: str,
    source_bytes: int = 0,
    limit: int | None = None,
    room: Callable[[], PruneReport] | None = None,
) -> SpaceEstimate | None:
    """Check that a backup of ``component/target`` fits under the limit (``limit``, else
    ``repo.size_limit``; None: no limit, nothing checked); if not, call ``room`` (e.g.
    ``make_room`` with the target's policy) and check again. Raises RepositoryFull."""
    limit = limit if limit is not None else repo.size_limit
    if limit is None:
        return None

    def measure() -> SpaceEstimate:
        assert limit is not None
        return estimate(
            repo,
            limit,
            component=component,
            target=target,
            backup_type=backup_type,
            source_bytes=source_bytes,
        )

    est = measure()
    if est.fits:
        return est
    what = f"a {backup_type} backup of {component}/{target}"
    if room is None:
        raise full_error(est, what)
    log.warning("%s: %s; running retention to make room", what, est.describe())
    report = room()
    est = measure()
    freed = (
        f"; retention ran first and forgot {len(report.snapshots_forgotten)} snapshot(s), "
        f"deleting {human_bytes(report.bytes_deleted)} of packs (a target's newest snapshot "
        "is never deleted to make room)"
    )
    if est.fits:
        log.info("%s: retention made room%s", what, freed)
        return est
    raise full_error(est, what, freed)


class SpaceCheck:
    """The check during a backup: called with each pack's size before it is uploaded."""

    def __init__(self, repo: Repository, limit: int, what: str) -> None:
        self.storage = repo.storage
        self.location = repo.location
        self.limit = limit
        self.what = what
        self.base = repository_size(repo.storage)  # before this backup uploads anything
        self.added = 0  # bytes this backup reserved since ``base`` was measured
        self.inflight = 0  # of those, bytes not uploaded yet (not in a listing)
        self.recheck_after = self._half_room()
        self._lock = threading.Lock()

    def _half_room(self) -> int:
        return max(0, (self.limit - self.base) // 2)

    def reserve(self, n: int) -> None:
        """Count ``n`` more bytes; RepositoryFull (counting nothing) when they do not fit.

        The repository is listed again whenever this backup has added half the room left
        at the last listing (and so before it could pass the limit): other backups and
        prunes change it meanwhile. Two backups at once therefore pass the limit together
        by at most the other's packs still uploading (two); more of them may pass it by
        less than half the room each."""
        with self._lock:
            if self.added + n > self.recheck_after:
                now = repository_size(self.storage) + self.inflight
                if now + n > self.limit:
                    est = SpaceEstimate(self.location, now, n, "the next pack", self.limit)
                    raise full_error(est, self.what + " (stopped during the backup)")
                self.base, self.added = now, 0
                self.recheck_after = max(self._half_room(), n)
            self.added += n
            self.inflight += n

    def done(self, n: int) -> None:
        """``n`` reserved bytes are uploaded (or failed): a listing shows what is there."""
        with self._lock:
            self.inflight -= n
