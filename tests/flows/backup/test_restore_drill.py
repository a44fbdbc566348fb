"""The restore-drill flow under the Prefect test harness with real services: every
component backed up, then drilled (all verified, status pushed, nothing left behind);
then a damaged pack fails that target's drill, named in the run's error, pushed as
status 0 with reason repository_damaged while its last success survives."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from pydantic import SecretStr

from blocks.chroma import ChromaTarget
from blocks.files import FilesTarget
from blocks.monitoring import MonitoringSettings
from blocks.postgres import PostgresTarget
from blocks.redis import RedisTarget
from blocks.repository import BackupRepository
from flows.backup.full_backup import full_backup
from flows.backup.restore_drill import DrillFailed, restore_drill
from scholar_ops.cli import main
from scholar_ops.monitoring import names
from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.drill import DRILL_DB_PREFIX
from scholar_ops.sources.redis.server import throwaway_redis
from scholar_ops.vault.pack import pack_name

DIM = 384


def _fill(tmp_path: Path, pg_server, db: str, redis_client) -> None:
    with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
        c.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
        c.execute("INSERT INTO docs SELECT g, 'doc ' || g FROM generate_series(1, 500) g")
    pipe = redis_client.pipeline()
    for i in range(100):
        pipe.set(f"cache:{i}", os.urandom(40))
    pipe.zadd("popular", {f"doc-{i}": i for i in range(20)})
    pipe.execute()
    col = (
        ChromaSource.embedded(tmp_path / "chroma")
        .client()
        .create_collection("chunks", embedding_function=None)
    )
    rng = np.random.default_rng(3)
    col.add(
        ids=[f"c{i}" for i in range(40)],
        embeddings=rng.standard_normal((40, DIM)).astype(np.float32),
        documents=[f"chunk {i}" for i in range(40)],
    )
    uploads = tmp_path / "uploads"
    (uploads / "papers").mkdir(parents=True)
    (uploads / "papers" / "a.pdf").write_bytes(os.urandom(60_000))
    (uploads / "config.yaml").write_text("retries: 3\n")
    (uploads / "latest.pdf").symlink_to("papers/a.pdf")


@pytest.fixture
def app(prefect_harness, pg_server, pushgateway, tmp_path):
    sfx = uuid.uuid4().hex[:8]
    Secret(value=SecretStr("drill-flow-key-" + sfx)).save(f"key-{sfx}")
    BackupRepository(local_path=str(tmp_path / "repo"), master_key_secret=f"key-{sfx}").save(
        f"repo-{sfx}"
    )
    MonitoringSettings(pushgateway_url=pushgateway.url).save(f"monitoring-{sfx}")
    db = f"drill_{sfx}"
    pg_server.create_database(db)
    # A source that streams its RDB at once (no 5 s wait for more replicas).
    with throwaway_redis(tmp_path / "redis", config={"repl-diskless-sync-delay": 0}) as redis:
        client = redis.client()
        _fill(tmp_path, pg_server, db, client)
        client.close()
        PostgresTarget(
            host=pg_server.host, port=pg_server.port, database=db, user=pg_server.user
        ).save(f"pg-{sfx}")
        RedisTarget(host=redis.host, port=redis.port, label=f"cache-{sfx}").save(f"redis-{sfx}")
        ChromaTarget(path=str(tmp_path / "chroma"), label=f"vectors-{sfx}").save(f"chroma-{sfx}")
        FilesTarget(path=str(tmp_path / "uploads"), label=f"uploads-{sfx}").save(f"files-{sfx}")
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        yield {
            "sfx": sfx,
            "repo": f"repo-{sfx}",
            "repo_path": tmp_path / "repo",
            "monitoring": f"monitoring-{sfx}",
            "scratch": scratch,
            "targets": {
                "postgres_targets": [f"pg-{sfx}"],
                "redis_targets": [f"redis-{sfx}"],
                "chroma_targets": [f"chroma-{sfx}"],
                "file_targets": [f"files-{sfx}"],
            },
            "labels": {
                "postgres": f"pg-{sfx}",  # an unlabelled target: its block name
                "redis": f"cache-{sfx}",
                "chroma": f"vectors-{sfx}",
                "files": f"uploads-{sfx}",
            },
        }
    pg_server.drop_database(db)


def _drill_groups(pushgateway, targets: set[str]) -> dict[tuple[str, str], dict[str, tuple]]:
    """(component, target) -> metric name -> (value, reason label)."""
    out: dict[tuple[str, str], dict[str, tuple]] = {}
    for name, fam in pushgateway.families().items():
        for s in fam.samples:
            if s.labels.get("job") == names.JOB_DRILL and s.labels.get("target") in targets:
                key = (s.labels["component"], s.labels["target"])
                out.setdefault(key, {})[name] = (s.value, s.labels.get("reason"))
    return out


def _scratch_databases(pg_server) -> list[str]:
    with psycopg.connect(pg_server.dsn()) as c:
        rows = c.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (DRILL_DB_PREFIX + "%",)
        ).fetchall()
    return [r[0] for r in rows]


def _latest_report() -> str:
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["restore-drill-report"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return str(artifact.data)


def test_drills_verify_every_component_then_a_damaged_pack_fails_its_target(
    app, pg_server, pushgateway, capsys
):
    labels = app["labels"]
    backups = full_backup(**app["targets"], repository=app["repo"], monitoring=None)
    assert len(backups) == 4

    outcomes = restore_drill(
        **app["targets"],
        repository=app["repo"],
        monitoring=app["monitoring"],
        scratch_dir=str(app["scratch"]),
    )
    by_component = {o.component: o for o in outcomes}
    assert sorted(by_component) == ["chroma", "files", "postgres", "redis"]
    for component, o in by_component.items():
        r = o.result
        assert o.ok and r is not None and r.mismatches == [], o
        assert o.target == labels[component]
        assert r.snapshot_id in {b.backup_id for b in backups}
        assert 0 <= r.snapshot_age_s < 600 and r.duration_s > 0 and r.checked
    pg_result = by_component["postgres"].result
    assert pg_result is not None and pg_result.checked[0].startswith("1 table, 500 rows")
    assert _scratch_databases(pg_server) == []
    assert list(app["scratch"].iterdir()) == []
    first = _drill_groups(pushgateway, set(labels.values()))
    assert set(first) == {(c, t) for c, t in labels.items()}
    for group in first.values():
        assert group[names.DRILL_LAST_STATUS] == (1.0, None)
        assert group[names.DRILL_LAST_SUCCESS][0] == group[names.DRILL_LAST_RUN][0]
    assert "4 verified, 0 failed." in _latest_report()

    # Damage the files snapshot's packs: that drill fails, the others still verify.
    from tasks.common import load_repository

    repo = load_repository(app["repo"]).open()
    snap = repo.find_snapshot("latest", component="files", target=labels["files"])
    for pack_id in snap.packs:
        path = app["repo_path"] / pack_name(pack_id)
        data = bytearray(path.read_bytes())
        data[20] ^= 0xFF  # inside the first blob (after magic and key id)
        path.write_bytes(bytes(data))
    files_block = app["targets"]["file_targets"][0]
    with pytest.raises(DrillFailed) as exc:
        restore_drill(
            **app["targets"],
            repository=app["repo"],
            monitoring=app["monitoring"],
            scratch_dir=str(app["scratch"]),
        )
    message = str(exc.value)
    assert message.startswith("1 of 4 restore drills failed: ")
    assert f"files/{files_block} (target {labels['files']}), repository_damaged" in message
    failed = [o for o in exc.value.outcomes if not o.ok]
    assert [(o.component, o.reason) for o in failed] == [("files", "repository_damaged")]
    second = _drill_groups(pushgateway, set(labels.values()))
    files = second[("files", labels["files"])]
    assert files[names.DRILL_LAST_STATUS] == (0.0, "repository_damaged")
    assert (
        files[names.DRILL_LAST_RUN][0] > first[("files", labels["files"])][names.DRILL_LAST_RUN][0]
    )
    for name in (names.DRILL_LAST_SUCCESS, names.DRILL_DURATION):
        assert files[name] == first[("files", labels["files"])][name], name
    for component in ("postgres", "redis", "chroma"):
        assert second[(component, labels[component])][names.DRILL_LAST_STATUS] == (1.0, None)
    assert _scratch_databases(pg_server) == []
    assert list(app["scratch"].iterdir()) == []
    assert "3 verified, 1 failed." in _latest_report()

    # The command line: one line per target, exit 1.
    capsys.readouterr()
    rc = main([
        "--repository", app["repo"], "drill", "--postgres", app["targets"]["postgres_targets"][0],
        "--files", files_block, "--monitoring", app["monitoring"],
        "--scratch-dir", str(app["scratch"]),
    ])  # fmt: skip
    assert rc == 1
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"postgres/{labels['postgres']}: ok, snapshot ")
    assert lines[1].startswith(f"files/{labels['files']}: FAILED (repository_damaged): ")
    assert f"1 of 2 restore drills failed: files/{labels['files']}" in out.err
