"""Verifying a repository.

Structure: every key, index, tombstone and snapshot object opens under its own
name, and every chunk each snapshot needs is indexed in a pack that exists and
is long enough; snapshots forgotten by a prune but present again, and (with a
known-state file) snapshots seen before that vanished, are reported.
Read data (all packs or a random fraction): download each pack, authenticate
its header (bound to the pack's name) and every blob, decompress, re-hash, and
compare with the index.
Every problem names the damaged object and the snapshots it affects. Stale or
unreadable locks and the temporary files of interrupted uploads are notices:
they do not make the repository damaged (``scholar-ops unlock`` and prune
remove them).
"""

from __future__ import annotations

import random
import struct
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scholar_ops.vault import audit
from scholar_ops.vault.crypto.keys import KeySet
from scholar_ops.vault.errors import (
    IntegrityError,
    MisplacedObject,
    ObjectNotFound,
    VaultError,
    WrongKey,
)
from scholar_ops.vault.index import INDEX_PREFIX, Index, Location
from scholar_ops.vault.known import KnownSnapshots
from scholar_ops.vault.lock import STALE_AFTER
from scholar_ops.vault.pack import pack_key_id, pack_name, parse_header
from scholar_ops.vault.repository import KEYS_PREFIX, Repository
from scholar_ops.vault.restorer import ChunkReader
from scholar_ops.vault.snapshot import SNAPSHOT_PREFIX, Snapshot
from scholar_ops.vault.storage.base import partial_uploads


@dataclass
class Problem:
    object_name: str
    message: str
    snapshot_ids: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        affected = (
            f" (affects snapshots {', '.join(s[:8] for s in self.snapshot_ids)})"
            if self.snapshot_ids
            else ""
        )
        return f"{self.object_name}: {self.message}{affected}"


@dataclass
class CheckReport:
    snapshots: int = 0
    packs: int = 0
    packs_read: int = 0
    chunks_read: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(
    repo: Repository,
    *,
    read_data: float = 0.0,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    known_state: Path | None = None,
    accept_missing: bool = False,
    verify_audit: bool = True,
) -> CheckReport:
    """Check structure, and read ``read_data`` (0..1) of the packs back.

    With ``known_state`` (a directory), snapshots this host saw before that are
    gone without a tombstone are problems; ``accept_missing`` stops reporting them.
    ``verify_audit`` also walks the audit trail's chain (vault.audit; one small read
    per record) and, with ``known_state``, reports a newest record lower than the one
    this host saw before (a rollback). The check itself is recorded in the audit trail.
    """
    if not 0.0 <= read_data <= 1.0:
        raise VaultError(f"read-data fraction must be between 0 and 1, not {read_data}")
    details: dict[str, object] = {"read_data": read_data}
    try:
        report = _check(repo, read_data, seed, progress, known_state, accept_missing, verify_audit)
    except BaseException as e:
        audit.append_quietly(repo, "check", outcome="failed", error=e, details=details)
        raise
    details["problems"] = len(report.problems)
    first = str(report.problems[0]) if report.problems else None
    audit.append_quietly(
        repo,
        "check",
        outcome="ok" if report.ok else "failed",
        error=f"{len(report.problems)} problem(s), first: {first}" if first else None,
        snapshots=sorted({s for p in report.problems for s in p.snapshot_ids}),
        details=details,
    )
    return report


def _check(
    repo: Repository,
    read_data: float,
    seed: int | None,
    progress: Callable[[int, int], None] | None,
    known_state: Path | None,
    accept_missing: bool,
    verify_audit: bool,
) -> CheckReport:
    report = CheckReport()
    _check_locks(repo, report)
    with repo.lock("check"):
        _check_keys(repo, report)
        index = _load_index(repo, report)
        sizes = repo.pack_sizes()
        report.packs = len(sizes)
        snaps = _load_snapshots(repo, report)
        report.snapshots = len(snaps)
        if known_state is not None:
            _check_known(repo, report, known_state, accept_missing)
        users = _check_structure(index, sizes, snaps, report)
        if verify_audit:
            trail = audit.verify(repo)
            problems = list(trail.problems)
            if known_state is not None:
                try:
                    rolled_back = audit.compare_tip_seen(
                        trail, known_state, repo.config.repo_id, accept=accept_missing
                    )
                except OSError as e:
                    report.notices.append(f"could not record the audit trail's tip: {e}")
                else:
                    problems += [rolled_back] if rolled_back is not None else []
            for p in problems:
                report.problems.append(Problem(p.object_name, f"audit trail: {p.message}"))
        if read_data > 0:
            packs = sorted(p for p in index.packs if p in sizes)
            if read_data < 1.0:
                rng = random.Random(seed)
                packs = rng.sample(packs, max(1, round(len(packs) * read_data))) if packs else []
            reader = ChunkReader(repo, index)
            for i, pack_id in enumerate(packs):
                _read_pack(repo, reader, index, pack_id, users.get(pack_id, set()), report)
                if progress is not None:
                    progress(i + 1, len(packs))
    return report


def _check_locks(repo: Repository, report: CheckReport) -> None:
    listing = repo.locks()
    for lock in listing.locks:
        reason = lock.stale_reason(STALE_AFTER)
        if reason is not None:
            report.notices.append(
                f"stale {lock.describe()}: {reason}; remove it with `scholar-ops unlock`"
            )
    for name, why in listing.unreadable:
        report.notices.append(
            f"unreadable lock object {name} ({why}); if no scholar-ops process is running, "
            "remove it with `scholar-ops unlock --force`"
        )
    for p in partial_uploads(repo.storage):
        report.notices.append(
            f"temporary file {p.name} ({p.size} bytes, {int(p.age_s // 60)} min old) of an "
            "interrupted upload; the next prune removes it"
        )


def _check_known(
    repo: Repository, report: CheckReport, state_dir: Path, accept_missing: bool
) -> None:
    known = KnownSnapshots.load(state_dir, repo.config.repo_id)
    present = set(repo.snapshot_ids())
    forgotten = set(repo.forgotten())
    if not accept_missing:
        for v in known.compare(present, forgotten):
            report.problems.append(
                Problem(
                    SNAPSHOT_PREFIX + v.backup_id,
                    f"snapshot seen here since {v.first_seen} is gone and no prune recorded "
                    "forgetting it (deleted outside scholar-ops, or the repository was rolled "
                    "back to an older copy); after investigating, `scholar-ops check "
                    "--accept-missing` stops reporting it",
                    [v.backup_id],
                )
            )
    try:
        known.update(present, forgotten, accept_missing=accept_missing)
    except OSError as e:
        report.notices.append(f"could not record the snapshots seen in {known.path}: {e}")


def _check_keys(repo: Repository, report: CheckReport) -> None:
    for info in repo.storage.list(KEYS_PREFIX):
        try:
            KeySet.unwrap(repo.storage.get(info.name), repo.master, info.name)
        except (IntegrityError, ObjectNotFound, WrongKey) as e:
            report.problems.append(Problem(info.name, _msg(e, info.name)))


def _load_index(repo: Repository, report: CheckReport) -> Index:
    index = Index()
    for info in repo.storage.list(INDEX_PREFIX):
        try:
            for pack_id, entries in repo._read_index(info.name).items():
                index.add_pack(pack_id, entries)
        except (IntegrityError, ObjectNotFound) as e:
            report.problems.append(Problem(info.name, _msg(e, info.name)))
    return index


def _load_snapshots(repo: Repository, report: CheckReport) -> list[Snapshot]:
    snaps, errors = repo.scan_snapshots()
    for e in errors:
        ids = [e.snapshot_id] if e.snapshot_id else []
        report.problems.append(Problem(e.object_name, _msg(e, e.object_name), ids))
    return snaps


def _check_structure(
    index: Index, sizes: dict[str, int], snaps: list[Snapshot], report: CheckReport
) -> dict[str, set[str]]:
    """Returns, per pack, the snapshots that read from it."""
    users: dict[str, set[str]] = defaultdict(set)
    for pack_id, entries in index.packs.items():
        if pack_id not in sizes:
            continue
        end = max((e.offset + e.length for e in entries), default=0)
        if end > sizes[pack_id]:
            report.problems.append(
                Problem(
                    pack_name(pack_id),
                    f"pack is {sizes[pack_id]} bytes but the index expects {end}",
                )
            )
    for snap in snaps:
        missing = 0
        first_missing = ""
        for cid in snap.chunk_ids():
            locs = [loc for loc in index.locations(cid) if loc.pack_id in sizes]
            if not locs:
                missing += 1
                gone = [loc.pack_id for loc in index.locations(cid)]
                first_missing = first_missing or (
                    pack_name(gone[0]) if gone else f"chunk {cid.hex()[:16]}…"
                )
                continue
            for loc in locs:
                users[loc.pack_id].add(snap.backup_id)
        if missing:
            report.problems.append(
                Problem(
                    first_missing,
                    f"{missing} chunk(s) needed by snapshot {snap.short_id} are missing from the repository",
                    [snap.backup_id],
                )
            )
    return users


def _read_pack(
    repo: Repository,
    reader: ChunkReader,
    index: Index,
    pack_id: str,
    users: set[str],
    report: CheckReport,
) -> None:
    name = pack_name(pack_id)
    affected = sorted(users)
    try:
        data = repo.storage.get(name)
    except ObjectNotFound:
        report.problems.append(Problem(name, "pack is missing", affected))
        return
    report.packs_read += 1
    report.bytes_read += len(data)
    try:
        kid = pack_key_id(data, name)
        if kid not in repo.keys:
            raise IntegrityError(f"{name}: written with unknown key {kid.hex()}", name)
        (hlen,) = struct.unpack(">I", data[-4:])
        if hlen + 4 > len(data):
            raise IntegrityError(f"{name}: pack header length is corrupt", name)
        header = parse_header(data[-4 - hlen : -4], repo.keys[kid].enc_key, name, len(data))
    except MisplacedObject as e:
        # Every blob would fail too: one problem that names both packs says it all.
        report.problems.append(Problem(name, _msg(e, name), affected))
        return
    except IntegrityError as e:
        report.problems.append(Problem(name, _msg(e, name), affected))
        header = None
    if header is not None and {(b.chunk_id, b.offset, b.length) for b in header} != {
        (b.chunk_id, b.offset, b.length) for b in index.packs[pack_id]
    }:
        report.problems.append(Problem(name, "pack header and index disagree", affected))
    view = memoryview(data)
    bad = 0
    first = ""
    for blob in index.packs[pack_id]:
        loc = Location(pack_id, blob.offset, blob.length, blob.raw_length)
        try:
            reader.verify(blob.chunk_id, view[blob.offset : blob.offset + blob.length], loc, name)
            report.chunks_read += 1
        except IntegrityError as err:
            bad += 1
            first = first or _msg(err, name)
    if bad:
        report.problems.append(Problem(name, f"{bad} damaged blob(s): {first}", affected))


def _msg(e: Exception, name: str) -> str:
    text = str(e)
    return text[len(name) + 2 :] if text.startswith(name + ": ") else text
