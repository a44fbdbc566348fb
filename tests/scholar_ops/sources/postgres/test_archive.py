"""The WAL archive beside the base backups: `check`'s continuity, retention's WAL pruning,
and the drill of a base backup (restored and recovered to the end of the archive)."""

from __future__ import annotations

import pytest

from scholar_ops.sources.drill import drill_postgres_base
from scholar_ops.sources.postgres import wal
from scholar_ops.sources.postgres.archive import check_wal_archives, prune_wal_archives
from scholar_ops.sources.postgres.basebackup import backup_base, base_start
from scholar_ops.vault.prune import forget_and_prune
from tests.scholar_ops.sources.postgres.archiving import archiving_cluster

pytestmark = pytest.mark.services


def test_check_drill_and_retention_of_the_wal_archive(tmp_path_factory, tmp_path):
    with archiving_cluster(tmp_path_factory.mktemp("archive")) as env:
        with env.connect() as conn:
            conn.execute("CREATE TABLE t (id int)")
        env.switch_and_wait()
        first = backup_base(env.repo, env.conninfo, target="cluster-a")
        with env.connect() as conn:
            conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        env.switch_and_wait()
        second = backup_base(env.repo, env.conninfo, target="cluster-a")
        with env.connect() as conn:
            conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        env.switch_and_wait()
        assert check_wal_archives(env.repo) == []

        # The drill: the newest base backup, recovered through the archive, started.
        result = drill_postgres_base(env.repo, "cluster-a", scratch_dir=tmp_path)
        assert result.ok and result.snapshot_id == second.backup_id
        assert "recovered through" in result.checked[0]
        assert list(tmp_path.iterdir()) == []  # the scratch data directory is gone

        # A segment between the bases goes missing: check names it and both base backups
        # that need it (the older one) or not (the newer one, after it, is fine).
        segments = [
            w
            for w in wal.list_wal(env.repo, details=False)
            if w.kind == "segment"
            and w.start_lsn is not None
            and base_start(first)[1] < w.start_lsn < base_start(second)[1]
        ]
        assert segments
        gone = segments[0]
        data = env.repo.storage.get(gone.object_name)
        env.repo.storage.delete(gone.object_name)
        problems = check_wal_archives(env.repo)
        assert len(problems) == 1
        assert gone.name in problems[0].message
        assert problems[0].snapshot_ids == [first.backup_id]
        env.repo.storage.put(gone.object_name, data)
        assert check_wal_archives(env.repo) == []

        # Retention forgets the first base backup: the WAL only it needed goes, the WAL of
        # the second stays, and the drill of the second still recovers.
        before = {w.name for w in wal.list_wal(env.repo, details=False)}
        forget_and_prune(env.repo, [first.backup_id])
        deleted = prune_wal_archives(env.repo)
        after = {w.name for w in wal.list_wal(env.repo, details=False)}
        assert deleted == len(before - after) > 0
        assert gone.name not in after
        assert check_wal_archives(env.repo) == []
        assert drill_postgres_base(env.repo, "cluster-a", scratch_dir=tmp_path).ok

        # Without any kept base backup nothing of the archive is deleted.
        forget_and_prune(env.repo, [second.backup_id])
        assert prune_wal_archives(env.repo) == 0
        assert {w.name for w in wal.list_wal(env.repo, details=False)} == after
