"""Point-in-time recovery with the README's commands: a base backup through the backup flow
(`scholar-ops backup --postgres-base NAME`), then `scholar-ops restore latest --time T --to
DIR` into a new data directory, started and verified; `check` names a missing segment."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import psycopg
import pytest

from blocks.postgres import PostgresClusterTarget
from scholar_ops.cli import main
from scholar_ops.sources.postgres import wal
from tests.scholar_ops.sources.postgres.archiving import MASTER, archiving_cluster

pytestmark = pytest.mark.services


def test_base_backup_restore_to_a_time_and_check(
    prefect_harness, tmp_path_factory, monkeypatch, capsys
):
    sfx = uuid.uuid4().hex[:6]
    monkeypatch.setenv("SCHOLAR_OPS_REPOSITORY", f"repo-{sfx}")
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", MASTER)
    with archiving_cluster(tmp_path_factory.mktemp("cli-pitr")) as env:
        key_secret = f"key-{sfx}"
        name = f"cluster-{sfx}"
        assert main([
            "setup", "--repo-path", str(env.repo_dir), "--master-key-secret", key_secret,
            "--master-key-file", str(env.key_file), "--pg-cluster", name,
            "--pg-host", env.server.host, "--pg-port", str(env.server.port),
            "--pg-user", env.server.user,
        ]) == 0  # fmt: skip
        block = PostgresClusterTarget.load_sync(name)
        assert (block.port, block.database) == (env.server.port, "postgres")
        with env.connect() as conn:
            conn.execute("CREATE TABLE events (id int PRIMARY KEY)")
        env.switch_and_wait()
        capsys.readouterr()
        assert main(["backup", "--postgres-base", name]) == 0
        out = capsys.readouterr().out
        assert f"postgres-base/{name}" in out and "cluster base backup, timeline 1" in out

        with env.connect() as conn:
            conn.execute("INSERT INTO events VALUES (1), (2), (3)")
            time.sleep(0.05)
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None and isinstance(row[0], datetime)
            noted = row[0]
            time.sleep(0.05)
            conn.execute("INSERT INTO events VALUES (4), (5)")
        env.switch_and_wait()
        assert main(["check"]) == 0

        datadir = env.fresh_dir("restored")
        assert main([
            "restore", "latest", "--time", noted.isoformat(), "--to", str(datadir),
            "--restore-command", env.restore_command(), "--keep-running",
        ]) == 0  # fmt: skip
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith("restored base backup") and f"into {datadir}" in line
        port = int(line.split("running on 127.0.0.1:")[1].split(" ")[0])
        try:
            with psycopg.connect(
                host="127.0.0.1", port=port, user=env.server.user, dbname="postgres"
            ) as conn:
                rows = conn.execute("SELECT id FROM events ORDER BY id").fetchall()
            assert rows == [(1,), (2,), (3,)]
        finally:
            from scholar_ops.sources.postgres.cluster import find_pg_bin_dir, server_os_user
            from scholar_ops.sources.postgres.pitr import _stop

            _stop(server_os_user()[0], find_pg_bin_dir(), datadir)

        # A restore into the same directory: refused, one line, exit 2.
        assert main(["restore", "latest", "--pitr", "--to", str(datadir),
                     "--restore-command", env.restore_command()]) == 2  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(datadir) in err[0]

        # A segment after the base backup goes missing: check names it (exit 3).
        base_seg = max(
            (w for w in wal.list_wal(env.repo, details=False) if w.kind == "segment"),
            key=lambda w: w.start_lsn or 0,
        )
        env.repo.storage.delete(base_seg.object_name)
        with env.connect() as conn:
            conn.execute("INSERT INTO events VALUES (6)")
        env.switch_and_wait()  # a newer one arrives: the deleted one is now a gap
        assert main(["check"]) == 3
        err = capsys.readouterr().err
        assert base_seg.name in err
