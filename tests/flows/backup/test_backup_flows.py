"""The backup flows end to end under the Prefect test harness, with real blocks and PostgreSQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from pydantic import SecretStr

from blocks.postgres import PostgresTarget
from blocks.repository import BackupRepository
from flows.backup.backup_catalog import backup_catalog
from flows.backup.full_backup import full_backup
from flows.backup.group import BackupFailed
from flows.backup.incremental_backup import incremental_backup
from flows.backup.restore_postgres import restore_postgres
from flows.backup.verify_repository import verify_repository


@pytest.fixture
def blocks(prefect_harness, pg_server, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    key_name = f"master-{suffix}"
    Secret(value=SecretStr("flow-test-master-key-" + suffix)).save(key_name)
    repo_name = f"repo-{suffix}"
    BackupRepository(local_path=str(tmp_path / "repo"), master_key_secret=key_name).save(repo_name)
    db = f"app_{suffix}"
    pg_server.create_database(db)
    with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
        c.execute("CREATE TABLE docs (id bigserial PRIMARY KEY, body text)")
        c.execute(
            "INSERT INTO docs (body) SELECT repeat('text ' || g, 50) FROM generate_series(1, 20000) g"
        )
    target = f"pg-{suffix}"
    PostgresTarget(host=pg_server.host, port=pg_server.port, database=db, user=pg_server.user).save(
        target
    )
    bad = f"pg-bad-{suffix}"
    PostgresTarget(host="127.0.0.1", port=1, database=db, connect_timeout=2).save(bad)
    yield {"repo": repo_name, "target": target, "bad": bad, "db": db}
    pg_server.drop_database(db)


def _artifact_keys() -> set[str]:
    with get_client(sync_client=True) as client:
        return {a.key for a in client.read_artifacts() if a.key}


def test_full_then_incremental_then_restore_and_verify(blocks, pg_server):
    full = full_backup(postgres_targets=[blocks["target"]], repository=blocks["repo"])
    assert full[0].backup_type == "full" and full[0].items == "1 table"
    with psycopg.connect(pg_server.dsn(blocks["db"]), autocommit=True) as c:
        c.execute("INSERT INTO docs (body) VALUES ('one more')")
    inc = incremental_backup(postgres_targets=[blocks["target"]], repository=blocks["repo"])
    assert inc[0].new_bytes < full[0].new_bytes / 4
    assert {"backup-report", "backup-catalog"} <= _artifact_keys()

    catalog = backup_catalog(repository=blocks["repo"], component="postgres")
    assert [s["backup_type"] for s in catalog] == ["full", "incremental"]

    restored = f"restored_{uuid.uuid4().hex[:6]}"
    result = restore_postgres(target=blocks["target"], database=restored, repository=blocks["repo"])
    assert result.figures["row_counts"]["public.docs"] == [20001, 20001]
    with psycopg.connect(pg_server.dsn(restored)) as c:
        assert (
            c.execute("SELECT body FROM docs ORDER BY id DESC LIMIT 1").fetchone()[0] == "one more"  # type: ignore[index]
        )
    pg_server.drop_database(restored)

    report = verify_repository(repository=blocks["repo"], read_data=1.0)
    assert report.ok and report.packs_read > 0
    assert {"restore-report", "check-report"} <= _artifact_keys()


def test_a_failing_target_fails_the_run_but_keeps_the_others(blocks, monkeypatch):
    import flows.backup.group as group
    from tasks.targets import backup_target

    # Connection errors are retried (three times, with backoff): keep the test quick.
    monkeypatch.setattr(group, "backup_target", backup_target.with_options(retry_delay_seconds=0))
    with pytest.raises(BackupFailed, match="postgres/pg-bad"):
        incremental_backup(
            postgres_targets=[blocks["target"], blocks["bad"]], repository=blocks["repo"]
        )
    catalog = backup_catalog(repository=blocks["repo"])
    assert len(catalog) == 1 and catalog[0]["target"] == blocks["target"]  # named after its block
