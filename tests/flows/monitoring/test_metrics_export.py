"""The metrics-export flow under the Prefect test harness, against real services and a
real Pushgateway: every group pushed, failing collectors reported, no secret pushed."""

from __future__ import annotations

import http.server
import io
import threading
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from prefect.blocks.system import Secret
from pydantic import SecretStr

import flows.monitoring.metrics_export as export_module
from blocks.chroma import ChromaTarget
from blocks.monitoring import MonitoringSettings
from blocks.postgres import PostgresTarget
from blocks.redis import RedisTarget
from blocks.repository import BackupRepository
from flows.monitoring.metrics_export import metrics_export
from scholar_ops.monitoring import names
from scholar_ops.monitoring.push import PushError
from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.process import free_port
from scholar_ops.vault.archiver import backup_stream


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        server.server_close()


def _samples(pushgateway, **labels: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(name, other labels) -> value for every sample carrying ``labels``."""
    out = {}
    for name, fam in pushgateway.families().items():
        for s in fam.samples:
            if s.name != name and not (fam.type == "counter" and s.name == name):
                continue
            if all(s.labels.get(k) == v for k, v in labels.items()):
                # The gateway adds instance="" to groups without one: Prometheus drops it.
                rest = tuple(sorted((k, v) for k, v in s.labels.items() if k not in labels and v))
                out[(name, rest)] = s.value
    return out


def test_metrics_export_pushes_every_group(
    prefect_harness, pushgateway, pg_server, pg_db, redis_server, chroma_dir, endpoint, tmp_path
):
    suffix = uuid.uuid4().hex[:8]
    password = f"pg-password-{suffix}"  # trust auth ignores it; it must be pushed nowhere
    dbname = pg_db.rsplit("/", 1)[1]
    PostgresTarget(
        host=pg_server.host,
        port=pg_server.port,
        database=dbname,
        user=pg_server.user,
        password=SecretStr(password),
        label=f"app-{suffix}",
    ).save(f"pg-{suffix}")
    PostgresTarget(
        port=free_port(), database="gone", connect_timeout=2, label=f"gone-{suffix}"
    ).save(f"pg-gone-{suffix}")
    RedisTarget(host=redis_server.host, port=redis_server.port, label=f"cache-{suffix}").save(
        f"redis-{suffix}"
    )
    client = ChromaSource.embedded(chroma_dir).client()
    col = client.create_collection("papers", embedding_function=None)
    col.add(ids=["a", "b"], embeddings=np.ones((2, 4), dtype=np.float32))
    ChromaTarget(path=str(chroma_dir), label=f"vectors-{suffix}").save(f"chroma-{suffix}")

    key = f"key-{suffix}"
    Secret(value=SecretStr(f"export-master-key-{suffix}")).save(key)
    repo_block = BackupRepository(local_path=str(tmp_path / "repo"), master_key_secret=key)
    repo_block.save(f"repo-{suffix}")
    backup_stream(
        repo_block.open(create=True),
        io.BytesIO(b"x" * 4000),
        component="files",
        target=f"docs-{suffix}",
    )

    instance = f"host-{suffix}"
    MonitoringSettings(
        pushgateway_url=pushgateway.url,
        postgres_targets=[f"pg-{suffix}", f"pg-gone-{suffix}", f"pg-missing-{suffix}"],
        redis_targets=[f"redis-{suffix}"],
        chroma_targets=[f"chroma-{suffix}"],
        app_endpoints={"backend": endpoint, "frontend": f"http://127.0.0.1:{free_port()}/"},
        repository=f"repo-{suffix}",
        collector_timeout_seconds=8,
        instance=instance,
    ).save(f"monitoring-{suffix}")

    result = metrics_export(monitoring=f"monitoring-{suffix}")
    assert result["collectors"] == {
        "system": True,
        f"postgres/app-{suffix}": True,
        f"postgres/gone-{suffix}": False,
        f"postgres/pg-missing-{suffix}": False,  # no such block: named by the block
        f"redis/cache-{suffix}": True,
        f"chroma/vectors-{suffix}": True,
        "app/backend": True,
        "app/frontend": True,  # a refused endpoint is an observation (app_up 0)
        "backups": True,
        "audit": True,
    }

    export = _samples(pushgateway, job=names.JOB_EXPORT, instance=instance)
    up = {dict(rest)["collector"]: v for (n, rest), v in export.items() if n == names.COLLECTOR_UP}
    assert up == {k: float(v) for k, v in result["collectors"].items()}
    assert export[(names.EXPORT_LAST_SUCCESS, ())] > 0
    assert export[(names.EXPORT_DURATION, ())] > 0

    system = _samples(pushgateway, job=names.JOB_SYSTEM, instance=instance)
    assert (names.SYSTEM_CPU, ()) in system
    assert any(n == names.SYSTEM_NET_RECEIVED for n, _ in system)

    def db(target: str) -> dict:
        return _samples(pushgateway, job=names.JOB_DATABASES, target=target)

    assert db(f"app-{suffix}")[(names.DATABASE_UP, (("component", "postgres"),))] == 1
    assert db(f"gone-{suffix}")[(names.DATABASE_UP, (("component", "postgres"),))] == 0
    assert db(f"pg-missing-{suffix}")[(names.DATABASE_UP, (("component", "postgres"),))] == 0
    redis = db(f"cache-{suffix}")
    assert redis[(names.REDIS_COMMANDS, (("component", "redis"),))] > 0
    chroma = db(f"vectors-{suffix}")
    assert chroma[(names.CHROMA_RECORDS, (("collection", "papers"), ("component", "chroma")))] == 2

    app = _samples(pushgateway, job=names.JOB_APP)
    assert app[(names.APP_UP, (("endpoint", "backend"),))] == 1
    assert app[(names.APP_UP, (("endpoint", "frontend"),))] == 0

    backups = _samples(pushgateway, job=names.JOB_BACKUP, target=f"docs-{suffix}")
    assert backups[(names.BACKUP_SNAPSHOTS, (("component", "files"),))] == 1
    assert backups[(names.BACKUP_SIZE, (("component", "files"),))] == 4000
    # The audit trail's tip: init and the backup (vault.audit; the rollback alert's input).
    trail = _samples(pushgateway, job=names.JOB_AUDIT, repository=f"repo-{suffix}")
    rid = (("repo_id", repo_block.open().config.repo_id[:16]),)
    assert trail[(names.AUDIT_TIP_SEQUENCE, rid)] == 2
    (info,) = [dict(rest) for n, rest in trail if n == names.AUDIT_TIP_INFO]
    assert info["repo_id"] == rid[0][1] and len(info["hash"]) == 16

    fams = pushgateway.families()
    for name in (names.REDIS_COMMANDS, names.SYSTEM_NET_SENT):
        assert fams[name].type == "counter"
    for name in (names.COLLECTOR_UP, names.PG_CONNECTIONS, names.BACKUP_SNAPSHOTS):
        assert fams[name].type == "gauge"
    text = pushgateway.metrics()
    assert password not in text and endpoint not in text


def test_an_unreachable_pushgateway_fails_the_export(prefect_harness, monkeypatch):
    suffix = uuid.uuid4().hex[:8]
    url = f"http://127.0.0.1:{free_port()}"
    MonitoringSettings(pushgateway_url=url, repository=None, collector_timeout_seconds=2).save(
        f"monitoring-down-{suffix}"
    )
    monkeypatch.setattr(
        export_module, "push_metrics", export_module.push_metrics.with_options(retries=0)
    )
    state = metrics_export(monitoring=f"monitoring-down-{suffix}", return_state=True)
    assert state.is_failed()
    with pytest.raises(PushError, match=f"cannot reach the Pushgateway at {url}"):
        state.result()
