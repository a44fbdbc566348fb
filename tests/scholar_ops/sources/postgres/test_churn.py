"""A typical day of churn in the AI Scholar database stores little, and no more than restic."""

from __future__ import annotations

import os
import shutil
import subprocess

import psycopg
import pytest

from scholar_ops.sources.postgres.dump import backup_database
from scholar_ops.testbed.sample import aischolar


def _restic_added(repo_dir, password_env, dump_cmd) -> int:
    before = sum(f.stat().st_size for f in repo_dir.rglob("*") if f.is_file())
    dump = subprocess.Popen(dump_cmd, stdout=subprocess.PIPE)
    subprocess.run(
        ["restic", "-r", str(repo_dir), "backup", "--stdin", "--stdin-filename", "db.sql", "-q"],
        stdin=dump.stdout, env=password_env, check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    assert dump.wait(timeout=60) == 0
    return sum(f.stat().st_size for f in repo_dir.rglob("*") if f.is_file()) - before


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic is installed by `make deps`")
def test_daily_churn_incremental_is_small_and_beats_restic(
    pg_server, source_db, local_repo, tmp_path
):
    with psycopg.connect(**source_db.connect_kwargs(), autocommit=True) as c:
        aischolar.create_schema(c)
        aischolar.load_sample(c, documents=3000, seed=5)
    full = backup_database(local_repo, source_db, backup_type="full")

    env = {**os.environ, "RESTIC_PASSWORD": "x", "RESTIC_CACHE_DIR": str(tmp_path / "restic-cache")}
    restic_repo = tmp_path / "restic"
    subprocess.run(
        ["restic", "-r", str(restic_repo), "init", "-q"], env=env, check=True, timeout=60
    )
    dump_cmd = [pg_server.tool("pg_dump"), "-Fp", pg_server.dsn(source_db.dbname)]
    restic_full = _restic_added(restic_repo, env, dump_cmd)

    with psycopg.connect(**source_db.connect_kwargs(), autocommit=True) as c:
        aischolar.apply_daily_churn(c, seed=9)
        c.execute("VACUUM")
    inc = backup_database(local_repo, source_db)
    restic_inc = _restic_added(restic_repo, env, dump_cmd)

    ours = inc.stats["bytes_stored"]
    assert ours <= 0.10 * full.stats["bytes_stored"], (ours, full.stats["bytes_stored"])
    assert ours <= restic_inc, f"ours {ours} B, restic {restic_inc} B (restic full {restic_full} B)"
