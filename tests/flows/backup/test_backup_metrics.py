"""The backup flows push each target's status to the Pushgateway at the end of every run
(tasks.metrics.push_backup_status); a push failure is a warning, never the run's failure."""

from __future__ import annotations

import shutil
import uuid

import pytest
from prefect.blocks.system import Secret
from pydantic import SecretStr

import tasks.metrics
from blocks.files import FilesTarget
from blocks.monitoring import PUSHGATEWAY_URL_ENV, MonitoringSettings
from blocks.repository import BackupRepository
from flows.backup.full_backup import full_backup
from flows.backup.group import BackupFailed
from flows.backup.incremental_backup import incremental_backup
from scholar_ops.monitoring import names
from scholar_ops.sources.process import free_port
from tasks.targets import backup_target


@pytest.fixture
def setup(prefect_harness, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    key = f"key-{suffix}"
    Secret(value=SecretStr(f"metrics-master-key-{suffix}")).save(key)
    BackupRepository(local_path=str(tmp_path / "repo"), master_key_secret=key).save(
        f"repo-{suffix}"
    )
    targets = {}
    for name in ("docs", "config"):
        root = tmp_path / name
        root.mkdir()
        (root / "a.txt").write_text(f"{name} " * 1000)
        FilesTarget(path=str(root), label=f"{name}-{suffix}").save(f"files-{name}-{suffix}")
        targets[name] = root
    return {"suffix": suffix, "repo": f"repo-{suffix}", "roots": targets}


def _backup_group(pushgateway, target: str) -> dict[str, float]:
    out = {}
    for name, fam in pushgateway.families().items():
        for s in fam.samples:
            if s.labels.get("job") == names.JOB_BACKUP and s.labels.get("target") == target:
                assert s.labels["component"] == "files"
                out[name] = s.value
    return out


def test_status_pushed_on_success_and_on_failure(setup, pushgateway, monkeypatch):
    sfx = setup["suffix"]
    blocks = [f"files-docs-{sfx}", f"files-config-{sfx}"]
    # No settings block: the environment variable alone is enough.
    monkeypatch.setenv(PUSHGATEWAY_URL_ENV, pushgateway.url)
    results = full_backup(file_targets=blocks, repository=setup["repo"], monitoring=f"none-{sfx}")
    docs = _backup_group(pushgateway, f"docs-{sfx}")
    assert docs[names.BACKUP_LAST_STATUS] == 1
    assert docs[names.BACKUP_EXPECTED_INTERVAL] == 3600
    assert docs[names.BACKUP_SIZE] == next(
        r.size_bytes for r in results if r.target == f"docs-{sfx}"
    )
    config_before = _backup_group(pushgateway, f"config-{sfx}")

    # Then with a settings block (it wins over the variable): the docs tree is gone.
    monkeypatch.delenv(PUSHGATEWAY_URL_ENV)
    MonitoringSettings(pushgateway_url=pushgateway.url, backup_intervals={f"docs-{sfx}": 900}).save(
        f"monitoring-{sfx}"
    )
    shutil.rmtree(setup["roots"]["docs"])
    with pytest.raises(BackupFailed, match=f"files/files-docs-{sfx}"):
        incremental_backup(
            file_targets=[blocks[0]], repository=setup["repo"], monitoring=f"monitoring-{sfx}"
        )
    after = _backup_group(pushgateway, f"docs-{sfx}")  # labelled by target name, not block
    assert after[names.BACKUP_LAST_STATUS] == 0
    assert after[names.BACKUP_LAST_FAILURE] >= docs[names.BACKUP_LAST_RUN]
    assert after[names.BACKUP_EXPECTED_INTERVAL] == 900
    for name in (names.BACKUP_LAST_SUCCESS, names.BACKUP_SIZE, names.BACKUP_STORED):
        assert after[name] == docs[name], name
    assert _backup_group(pushgateway, f"config-{sfx}") == config_before
    assert str(setup["roots"]["docs"]) not in pushgateway.metrics()
    # The failed status names a bounded reason (the missing tree: the source failed).
    reasons = {
        s.labels.get("reason")
        for s in pushgateway.families()[names.BACKUP_LAST_STATUS].samples
        if s.labels.get("target") == f"docs-{sfx}"
    }
    assert reasons == {"source_failed"}


def test_a_push_failure_does_not_fail_the_backup(setup, monkeypatch, caplog):
    sfx = setup["suffix"]
    MonitoringSettings(pushgateway_url=f"http://127.0.0.1:{free_port()}").save(f"down-{sfx}")
    monkeypatch.setattr(tasks.metrics, "BACKUP_STATUS_RETRY_DELAYS", (0.1,))
    state = incremental_backup(
        file_targets=[f"files-config-{sfx}"],
        repository=setup["repo"],
        monitoring=f"down-{sfx}",
        return_state=True,
    )
    assert state.is_completed()
    assert state.result()[0].target == f"config-{sfx}"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("backup status was not pushed" in m for m in warnings), warnings
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_repository_that_does_not_open_is_a_failure_of_every_target(setup, pushgateway):
    sfx = setup["suffix"]
    BackupRepository(local_path="/nonexistent", master_key_secret=f"missing-{sfx}").save(
        f"broken-{sfx}"
    )
    MonitoringSettings(pushgateway_url=pushgateway.url).save(f"monitoring-{sfx}")
    with pytest.raises(Exception, match=f"missing-{sfx}"):
        incremental_backup(
            file_targets=[f"files-config-{sfx}"],
            repository=f"broken-{sfx}",
            monitoring=f"monitoring-{sfx}",
        )
    group = _backup_group(pushgateway, f"config-{sfx}")
    assert group[names.BACKUP_LAST_STATUS] == 0
    assert names.BACKUP_LAST_SUCCESS not in group
    assert (
        "configuration_error" in pushgateway.metrics()
    )  # the master key's Secret block is missing


def test_two_postgres_targets_of_the_same_database_name_stay_apart(
    prefect_harness, pg_server, pushgateway, tmp_path, monkeypatch
):
    """The reported case: a failing target `badpg` whose database is also `aischolar`
    marked the healthy target failed (both were named after the database)."""
    from blocks.postgres import PostgresTarget
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import LocalStorage

    sfx = uuid.uuid4().hex[:8]
    db = f"aischolar_{sfx}"
    pg_server.create_database(db)
    key = f"pg-names-master-key-{sfx}"
    Secret(value=SecretStr(key)).save(f"key-{sfx}")
    BackupRepository(local_path=str(tmp_path / "repo"), master_key_secret=f"key-{sfx}").save(
        f"repo-{sfx}"
    )
    good, bad = f"goodpg-{sfx}", f"badpg-{sfx}"
    PostgresTarget(host=pg_server.host, port=pg_server.port, database=db,
                   user=pg_server.user).save(good)  # fmt: skip
    PostgresTarget(host=pg_server.host, port=1, database=db, user=pg_server.user,
                   connect_timeout=2).save(bad)  # fmt: skip
    monkeypatch.setenv(PUSHGATEWAY_URL_ENV, pushgateway.url)
    monkeypatch.setattr("flows.backup.group.backup_target", backup_target.with_options(retries=0))
    with pytest.raises(BackupFailed, match=f"postgres/{bad}"):
        full_backup(postgres_targets=[good, bad], repository=f"repo-{sfx}", monitoring=None)

    def status(target: str) -> float | None:
        for fam in pushgateway.families().values():
            for s in fam.samples:
                if (s.name == names.BACKUP_LAST_STATUS and s.labels.get("job") == names.JOB_BACKUP
                        and s.labels.get("target") == target):  # fmt: skip
                    return s.value
        return None

    assert (status(good), status(bad), status(db)) == (1, 0, None)
    snaps = Repository.open(LocalStorage(tmp_path / "repo"), MasterKey.from_string(key)).snapshots()
    assert [(s.component, s.target) for s in snaps] == [("postgres", good)]
    pg_server.drop_database(db)
