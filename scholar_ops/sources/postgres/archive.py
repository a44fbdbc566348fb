"""The WAL archive seen from the base backups: what `check` and retention do with it.

- ``check_wal_archives``: for every base backup in the repository, the WAL from its
  start to the newest archived segment must be there, segment after segment (across
  timeline switches); a gap is a problem naming the missing segment(s) and the base
  backups that cannot recover past it.
- ``prune_wal_archives``: after retention forgot snapshots, the WAL that no kept base
  backup needs (everything before the oldest kept base backup's start, per cluster) is
  deleted. A cluster without any kept base backup keeps its whole archive.
"""

from __future__ import annotations

from collections import defaultdict

from scholar_ops.sources.postgres import wal
from scholar_ops.sources.postgres.basebackup import base_start, is_base_snapshot
from scholar_ops.sources.postgres.pitr import check_continuity
from scholar_ops.vault.checker import Problem
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot


def _bases(snapshots: list[Snapshot]) -> dict[int, list[Snapshot]]:
    by_cluster: dict[int, list[Snapshot]] = defaultdict(list)
    for snap in snapshots:
        if is_base_snapshot(snap):
            by_cluster[int(snap.details["system_identifier"])].append(snap)
    return by_cluster


def check_wal_archives(repo: Repository, snapshots: list[Snapshot] | None = None) -> list[Problem]:
    """WAL continuity from each base backup's start to the newest archived segment."""
    problems: list[Problem] = []
    for system_id, bases in sorted(
        _bases(repo.snapshots() if snapshots is None else snapshots).items()
    ):
        seen: dict[str, list[str]] = {}
        for snap in sorted(bases, key=lambda s: base_start(s)[1]):
            for line in check_continuity(repo, snap):
                seen.setdefault(line, []).append(snap.backup_id)
        for line, ids in seen.items():
            problems.append(
                Problem(
                    object_name=f"wal/{system_id}",
                    message=f"WAL archive of cluster {system_id}: {line}: point-in-time "
                    "recovery cannot pass it",
                    snapshot_ids=ids,
                )
            )
    return problems


def prune_wal_archives(repo: Repository) -> int:
    """Delete the WAL no kept base backup needs; returns how many objects went."""
    deleted = 0
    for system_id, bases in _bases(repo.snapshots()).items():
        deleted += wal.prune_wal(repo, [base_start(s) for s in bases], system_id=system_id)
    return deleted
