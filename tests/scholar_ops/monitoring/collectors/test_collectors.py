"""Collectors against real services: PostgreSQL, Redis, an embedded Chroma store, an HTTP
endpoint, the host, and a vault repository; the runner's isolation and timeouts."""

from __future__ import annotations

import http.server
import io
import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from scholar_ops.monitoring import names
from scholar_ops.monitoring.backup_status import backup_status_groups
from scholar_ops.monitoring.collectors import Collector, run_collectors
from scholar_ops.monitoring.collectors.app import collect_app
from scholar_ops.monitoring.collectors.backups import collect_backups
from scholar_ops.monitoring.collectors.chroma import collect_chroma
from scholar_ops.monitoring.collectors.postgres import collect_postgres
from scholar_ops.monitoring.collectors.redis import collect_redis
from scholar_ops.monitoring.collectors.system import collect_system, real_mountpoints
from scholar_ops.monitoring.push import push_add
from scholar_ops.monitoring.samples import Sample, gauge
from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.postgres.cluster import throwaway_cluster
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.process import free_port
from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage
from scholar_ops.vault.summary import BackupSummary


def _by_name(samples: list[Sample]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in samples:
        out.setdefault(s.name, []).append(s)
    return out


def _one(samples: list[Sample], name: str, **labels: str) -> float:
    hits = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def test_postgres(pg_server, pg_db):
    dbname = pg_db.rsplit("/", 1)[1]
    conninfo = PgConnInfo(
        host=pg_server.host, port=pg_server.port, dbname=dbname, user=pg_server.user
    )
    labels = {"component": "postgres", "target": "app"}
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
    with psycopg.connect(pg_db) as open_tx:
        open_tx.execute("SELECT count(*) FROM t").fetchone()  # a transaction stays open
        time.sleep(0.3)
        samples = collect_postgres(conninfo, labels, timeout=5)
    assert all(s.labels["target"] == "app" for s in samples)
    assert _one(samples, names.DATABASE_UP) == 1
    assert _one(samples, names.PG_LONGEST_TX) >= 0.3
    assert _one(samples, names.PG_CONNECTIONS, state="idle in transaction") == 1
    assert _one(samples, names.PG_CONNECTIONS, state="active") == 0  # itself left out
    assert _one(samples, names.PG_DATABASE_SIZE) > 1_000_000
    assert names.PG_REPLICATION_LAG not in _by_name(samples)  # no replicas here
    assert names.PG_WAL_ARCHIVED not in _by_name(samples)  # archive_mode is off here
    # Without the open transaction: 0, not missing.
    assert _one(collect_postgres(conninfo, labels, timeout=5), names.PG_LONGEST_TX) == 0


def _wait(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_postgres_wal_archiving_figures_and_the_recovery_point_age():
    """Where archive_mode is on: the archiver's successes and failures, how many finished
    segments wait, and the recovery point age, as Prometheus sees them."""
    with throwaway_cluster(
        settings={"wal_level": "replica", "archive_mode": "on", "archive_command": "true"}
    ) as server:
        conninfo = PgConnInfo(host=server.host, port=server.port, user=server.user)
        labels = {"component": "postgres", "target": "app"}
        with psycopg.connect(server.dsn(), autocommit=True) as c:
            c.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
            c.execute("SELECT pg_switch_wal()")

            def archived() -> bool:
                return _one(collect_postgres(conninfo, labels, 5), names.PG_WAL_ARCHIVED) >= 1

            _wait(archived, "the first archived segment")
            samples = collect_postgres(conninfo, labels, timeout=5)
            assert _one(samples, names.PG_WAL_ARCHIVE_FAILED) == 0
            assert _one(samples, names.PG_WAL_PENDING) == 0
            assert 0 <= _one(samples, names.PG_RECOVERY_POINT_AGE) < 30
            assert abs(_one(samples, names.PG_WAL_LAST_ARCHIVED) - time.time()) < 30

            # The archive_command starts failing: failures counted, segments wait.
            c.execute("ALTER SYSTEM SET archive_command = 'false'")
            c.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)
            for _ in range(2):
                c.execute("INSERT INTO t SELECT g FROM generate_series(1, 100) g")
                c.execute("SELECT pg_switch_wal()")

            def failing() -> bool:
                got = collect_postgres(conninfo, labels, 5)
                return _one(got, names.PG_WAL_ARCHIVE_FAILED) >= 1

            _wait(failing, "a failed archive attempt")
            samples = collect_postgres(conninfo, labels, timeout=5)
            assert _one(samples, names.PG_WAL_PENDING) >= 1
            assert _one(samples, names.PG_WAL_LAST_FAILED) > _one(
                samples, names.PG_WAL_LAST_ARCHIVED
            )


def test_postgres_unreachable_raises_quickly():
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        collect_postgres(PgConnInfo(port=free_port()), {"component": "postgres", "target": "x"}, 2)
    assert time.monotonic() - started < 5


def test_redis(redis_server, redis_client):
    redis_client.set("a", "1")
    redis_client.set("b", "2")
    redis_server.client(db=3).set("c", "3")
    samples = collect_redis(
        RedisConnInfo(host=redis_server.host, port=redis_server.port),
        {"component": "redis", "target": "cache"},
        timeout=5,
    )
    assert _one(samples, names.DATABASE_UP) == 1
    assert _one(samples, names.REDIS_KEYS, db="0") == 2
    assert _one(samples, names.REDIS_KEYS, db="3") == 1
    assert _one(samples, names.REDIS_MEMORY) > 0
    assert _one(samples, names.REDIS_CLIENTS) >= 1
    assert _one(samples, names.REDIS_COMMANDS) > 3
    assert [s.kind for s in samples if s.name == names.REDIS_COMMANDS] == ["counter"]
    assert _one(samples, names.REDIS_LAST_SAVE) > 1_600_000_000


def test_chroma_embedded(chroma_dir):
    source = ChromaSource.embedded(chroma_dir)
    client = source.client()
    rng = np.random.default_rng(1)
    for name, n in (("papers", 7), ("chunks", 3)):
        col = client.create_collection(name, embedding_function=None)
        col.add(
            ids=[f"{name}{i}" for i in range(n)],
            embeddings=rng.standard_normal((n, 8)).astype(np.float32),
        )
    client.create_collection("empty", embedding_function=None)
    samples = collect_chroma(source, {"component": "chroma", "target": "vectors"})
    assert _one(samples, names.CHROMA_COLLECTIONS) == 3
    assert _one(samples, names.CHROMA_RECORDS, collection="papers") == 7
    assert _one(samples, names.CHROMA_RECORDS, collection="chunks") == 3
    assert _one(samples, names.CHROMA_RECORDS, collection="empty") == 0


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(2)
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_app_endpoints(http_endpoint):
    samples = collect_app(
        {
            "backend": f"{http_endpoint}/health",
            "broken": f"{http_endpoint}/fail",
            "slow": f"{http_endpoint}/slow",
            "gone": f"http://127.0.0.1:{free_port()}/",
        },
        timeout=0.5,
    )
    assert _one(samples, names.APP_UP, endpoint="backend") == 1
    assert 0 < _one(samples, names.APP_RESPONSE, endpoint="backend") < 0.5
    assert _one(samples, names.APP_UP, endpoint="broken") == 0
    assert _one(samples, names.APP_UP, endpoint="gone") == 0
    assert _one(samples, names.APP_UP, endpoint="slow") == 0
    assert 0.5 <= _one(samples, names.APP_RESPONSE, endpoint="slow") < 1.5
    assert all("http" not in v for s in samples for v in s.labels.values())


def test_system():
    samples = collect_system(cpu_interval=0.1)
    assert 0 <= _one(samples, names.SYSTEM_CPU) <= 1
    assert _one(samples, names.SYSTEM_MEMORY_TOTAL) >= _one(samples, names.SYSTEM_MEMORY_USED) > 0
    mounts = real_mountpoints()
    assert mounts and not any(m.startswith(("/proc", "/sys", "/dev")) for m in mounts)
    disks = {s.labels["mountpoint"] for s in samples if s.name == names.SYSTEM_DISK_TOTAL}
    assert disks == set(mounts)
    nics = {s.labels["interface"] for s in samples if s.name == names.SYSTEM_NET_RECEIVED}
    assert "lo" not in nics
    assert all(s.kind == "counter" for s in samples if s.name.endswith("_total"))


def test_backups_match_what_a_run_pushes(tmp_path):
    repo = Repository.init(LocalStorage(tmp_path / "repo"), MasterKey.from_string("k" * 32))
    snaps = [
        backup_stream(repo, io.BytesIO(b"a" * 5000), component="postgres", target="app"),
        backup_stream(repo, io.BytesIO(b"b" * 7000), component="postgres", target="app"),
        backup_stream(repo, io.BytesIO(b"c" * 3000), component="redis", target="cache"),
    ]
    now = time.time() + 10
    samples = collect_backups(repo, now=now)
    app = {"component": "postgres", "target": "app"}
    assert _one(samples, names.BACKUP_SNAPSHOTS, **app) == 2
    assert _one(samples, names.BACKUP_SNAPSHOTS, target="cache") == 1
    assert 10 <= _one(samples, names.BACKUP_NEWEST_AGE, **app) < 20
    # The same figures a successful run pushes for its snapshot (backup_status).
    (group,) = backup_status_groups([BackupSummary.of(snaps[1])], {}, now=now)
    pushed = {s.name: s.value for s in group.samples}
    for name in (
        names.BACKUP_LAST_SUCCESS,
        names.BACKUP_DURATION,
        names.BACKUP_SIZE,
        names.BACKUP_NEW,
        names.BACKUP_STORED,
        names.BACKUP_DEDUP,
    ):
        assert _one(samples, name, **app) == pushed[name], name


def test_runner_isolates_failures_and_timeouts():
    release = threading.Event()

    def hang() -> list[Sample]:
        release.wait(10)
        return []

    def boom() -> list[Sample]:
        raise ConnectionError("refused")

    def split() -> list[Sample]:
        return [
            gauge(names.BACKUP_SNAPSHOTS, n, {"component": "files", "target": t})
            for t, n in (("a", 1), ("b", 2))
        ]

    started = time.monotonic()
    collected = run_collectors(
        [
            Collector(
                "ok", names.JOB_SYSTEM, {"instance": "h"}, lambda: [gauge(names.SYSTEM_LOAD1, 1)]
            ),
            Collector(
                "db",
                names.JOB_DATABASES,
                {"component": "redis", "target": "r"},
                boom,
                on_failure=[gauge(names.DATABASE_UP, 0)],
            ),
            Collector("hang", names.JOB_APP, {"endpoint": "x"}, hang, timeout=0.3),
            Collector("backups", names.JOB_BACKUP, {}, split, split_by=("component", "target")),
        ],
        timeout=5,
    )
    release.set()
    assert time.monotonic() - started < 2
    assert {o.name: o.ok for o in collected.outcomes} == {
        "ok": True,
        "db": False,
        "hang": False,
        "backups": True,
    }
    assert collected.errors == {"db": "ConnectionError: refused", "hang": "timed out after 0.3 s"}
    up = {s.labels["collector"]: s.value for s in collected.collector_up()}
    assert up == {"ok": 1, "db": 0, "hang": 0, "backups": 1}
    groups = {g.describe(): [(s.name, s.value) for s in g.samples] for g in collected.groups}
    assert groups == {
        "scholar-ops-system{instance=h}": [(names.SYSTEM_LOAD1, 1)],
        "scholar-ops-databases{component=redis,target=r}": [(names.DATABASE_UP, 0)],
        "scholar-ops-backup{component=files,target=a}": [(names.BACKUP_SNAPSHOTS, 1)],
        "scholar-ops-backup{component=files,target=b}": [(names.BACKUP_SNAPSHOTS, 2)],
    }


def test_collector_output_in_the_gateway_has_the_contract_types(
    pushgateway, redis_server, redis_client
):
    """Every family the collectors push is exposed under its contract name and type."""
    target = f"cache-{uuid.uuid4().hex[:6]}"
    key = {"component": "redis", "target": target}
    redis_samples = collect_redis(
        RedisConnInfo(host=redis_server.host, port=redis_server.port), key, 5
    )
    push_add(pushgateway.url, names.JOB_DATABASES, key, redis_samples)
    push_add(pushgateway.url, names.JOB_SYSTEM, {"instance": target}, collect_system(0.05))
    fams = pushgateway.families()
    contract = {
        v for v in vars(names).values() if isinstance(v, str) and v.startswith(names.PREFIX)
    }
    for s in [*redis_samples, *collect_system(0.05)]:
        assert s.name in contract
        assert fams[s.name].type == ("counter" if s.name.endswith("_total") else "gauge"), s.name
