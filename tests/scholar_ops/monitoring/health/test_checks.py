"""The checks against real services, and the runner's timeouts and grouping."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from scholar_ops.monitoring.health.checks import (
    Check,
    CheckResult,
    HealthService,
    Status,
    backups_check,
    chroma_check,
    disk_check,
    http_check,
    postgres_check,
    read_backup_status,
    redis_check,
    scrub,
    system_check,
    worst,
)
from scholar_ops.sources.postgres.cluster import PgServer
from scholar_ops.sources.process import free_port
from scholar_ops.sources.redis.server import RedisServer
from tests.fixtures.chroma import ChromaServer
from tests.scholar_ops.monitoring.health.conftest import (
    CHROMA_TOKEN,
    HTTP_PASSWORD,
    PG_PASSWORD,
    REDIS_PASSWORD,
    HttpStub,
    assert_no_secret,
)


def run_one(check: Check) -> CheckResult:
    return HealthService([check]).run()[check.name]


def pg_dsn(pg: PgServer) -> str:
    # trust authentication: the server never asks for the password, it only rides along
    return f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{pg.port}/postgres"


# -- postgres --------------------------------------------------------------------------------


def test_postgres_healthy(pg_server: PgServer) -> None:
    r = run_one(postgres_check(pg_dsn(pg_server)))
    assert r.status is Status.HEALTHY, r.error
    assert r.name == "postgres" and r.error is None and r.latency_ms > 0
    assert r.details["connections"] >= 1
    assert r.details["max_connections"] > r.details["connections"]
    assert r.details["database_size_bytes"] > 1_000_000
    assert r.details["target"] == f"127.0.0.1:{pg_server.port}/postgres"
    assert_no_secret(json.dumps(r.to_dict()))


def test_postgres_connections_threshold_degraded(pg_server: PgServer) -> None:
    r = run_one(postgres_check(pg_dsn(pg_server), connections_degraded_ratio=0.0001))
    assert r.status is Status.DEGRADED
    assert r.error is not None and "connections in use" in r.error


def test_postgres_down_is_unhealthy_without_secret() -> None:
    dsn = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{free_port()}/postgres"
    r = run_one(postgres_check(dsn, timeout=3))
    assert r.status is Status.UNHEALTHY
    assert r.error is not None and "\n" not in r.error
    assert "target" in r.details
    assert_no_secret(json.dumps(r.to_dict()))


# -- redis -----------------------------------------------------------------------------------


def test_redis_healthy(redis_server: RedisServer) -> None:
    r = run_one(redis_check(redis_server.url))
    assert r.status is Status.HEALTHY, r.error
    assert r.details["used_memory_bytes"] > 0
    assert r.details["connected_clients"] >= 1
    assert r.details["target"] == f"127.0.0.1:{redis_server.port}/0"


def test_redis_password_from_url_never_shown(secret_redis: RedisServer) -> None:
    assert REDIS_PASSWORD in secret_redis.url
    good = run_one(redis_check(secret_redis.url))
    assert good.status is Status.HEALTHY, good.error
    bad = run_one(redis_check(secret_redis.url.replace(REDIS_PASSWORD, REDIS_PASSWORD + "x")))
    assert bad.status is Status.UNHEALTHY
    assert bad.error is not None
    assert_no_secret(json.dumps([good.to_dict(), bad.to_dict()]))


def test_redis_memory_threshold_degraded(redis_server: RedisServer) -> None:
    client = redis_server.client()
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used * 4))
    try:
        r = run_one(redis_check(redis_server.url, memory_degraded_ratio=0.01))
    finally:
        client.config_set("maxmemory", "0")
        client.close()
    assert r.status is Status.DEGRADED
    assert r.error is not None and "maxmemory" in r.error


def test_redis_down() -> None:
    r = run_one(redis_check(f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0", timeout=2))
    assert r.status is Status.UNHEALTHY
    assert_no_secret(json.dumps(r.to_dict()))


# -- chroma ----------------------------------------------------------------------------------


def test_chroma_embedded(chroma_store: Path) -> None:
    r = run_one(chroma_check(path=chroma_store, timeout=15))
    assert r.status is Status.HEALTHY, r.error
    assert r.details == {"mode": "embedded", "target": str(chroma_store), "collections": 2}


def test_chroma_embedded_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    r = run_one(chroma_check(path=missing))
    assert r.status is Status.UNHEALTHY
    assert r.error == "the Chroma directory does not exist"
    assert not missing.exists()  # the check never creates a store


def test_chroma_server(chroma_server: ChromaServer) -> None:
    r = run_one(chroma_check(url=chroma_server.url, token=CHROMA_TOKEN))
    assert r.status is Status.HEALTHY, r.error
    assert r.details["mode"] == "server" and isinstance(r.details["collections"], int)
    down = run_one(chroma_check(url=f"http://127.0.0.1:{free_port()}", token=CHROMA_TOKEN))
    assert down.status is Status.UNHEALTHY
    assert_no_secret(json.dumps([r.to_dict(), down.to_dict()]))


# -- HTTP ------------------------------------------------------------------------------------


def test_http_healthy_and_url_redacted(http_stub: HttpStub) -> None:
    r = run_one(http_check("backend", http_stub.url("/health?key=abc", password=HTTP_PASSWORD)))
    assert r.status is Status.HEALTHY, r.error
    assert r.details["status_code"] == 200
    assert r.details["url"] == f"http://127.0.0.1:{http_stub.port}/health"  # no user either
    assert_no_secret(json.dumps(r.to_dict()))


@pytest.mark.parametrize(
    ("path", "threshold_ms", "status", "error"),
    [
        ("/", 30000, Status.HEALTHY, None),
        ("/status/500", 30000, Status.UNHEALTHY, "HTTP 500"),
        ("/status/404", 30000, Status.UNHEALTHY, "HTTP 404"),
        ("/delay/300", 100, Status.DEGRADED, "slow: "),
        ("/degraded", 30000, Status.DEGRADED, "the endpoint reports degraded"),
    ],
)
def test_http_status_and_latency_threshold(
    http_stub: HttpStub, path: str, threshold_ms: float, status: Status, error: str | None
) -> None:
    r = run_one(http_check("frontend", http_stub.url(path), latency_degraded_ms=threshold_ms))
    assert r.status is status, r.error
    if error is None:
        assert r.error is None
    else:
        assert r.error is not None and r.error.startswith(error)


def test_http_closed_port() -> None:
    url = f"http://user:{HTTP_PASSWORD}@127.0.0.1:{free_port()}/health"
    r = run_one(http_check("backend", url, timeout=2))
    assert r.status is Status.UNHEALTHY
    assert r.error is not None and "ConnectError" in r.error
    assert r.details["url"].startswith("http://127.0.0.1:")
    assert_no_secret(json.dumps(r.to_dict()))


# -- disk, system ---------------------------------------------------------------------------------


def test_disk_thresholds(tmp_path: Path) -> None:
    usage = psutil.disk_usage(str(tmp_path))
    ratio = usage.used / (usage.used + usage.free)
    assert 0.0 < ratio < 1.0
    healthy = run_one(disk_check([tmp_path], degraded_ratio=1.0, unhealthy_ratio=1.0))
    assert healthy.status is Status.HEALTHY
    assert healthy.details[str(tmp_path)]["used_ratio"] == pytest.approx(ratio, abs=0.01)
    degraded = run_one(disk_check([tmp_path], degraded_ratio=ratio / 2, unhealthy_ratio=1.0))
    assert degraded.status is Status.DEGRADED
    assert degraded.error is not None and "used (>" in degraded.error
    unhealthy = run_one(disk_check([tmp_path], degraded_ratio=ratio / 3, unhealthy_ratio=ratio / 2))
    assert unhealthy.status is Status.UNHEALTHY
    missing = run_one(disk_check([tmp_path, tmp_path / "missing"]))
    assert missing.status is Status.UNHEALTHY
    assert str(tmp_path / "missing") in (missing.error or "")


def test_system_thresholds() -> None:
    relaxed = run_one(
        system_check(cpu_degraded_ratio=1.0, memory_degraded_ratio=1.0, memory_unhealthy_ratio=1.0)
    )
    assert relaxed.status is Status.HEALTHY
    assert 0.0 <= relaxed.details["cpu_usage_ratio"] <= 1.0
    assert 0.0 < relaxed.details["memory_used_ratio"] < 1.0
    degraded = run_one(
        system_check(cpu_degraded_ratio=1.0, memory_degraded_ratio=1e-6, memory_unhealthy_ratio=1.0)
    )
    assert degraded.status is Status.DEGRADED
    unhealthy = run_one(system_check(memory_degraded_ratio=1e-6, memory_unhealthy_ratio=1e-6))
    assert unhealthy.status is Status.UNHEALTHY


# -- backups ---------------------------------------------------------------------------------


NOW = 1_800_000_000.0


def test_backups_from_function() -> None:
    newest = {"postgres": NOW - 3600, "redis": NOW - 30 * 3600, "chroma": NOW - 60 * 3600}
    check = backups_check(lambda: newest, max_age_seconds=26 * 3600, clock=lambda: NOW)
    r = run_one(check)
    assert r.status is Status.UNHEALTHY  # chroma beyond twice the max age
    assert r.details["postgres"]["age_seconds"] == 3600
    assert r.error is not None and "redis" in r.error and "chroma" in r.error
    assert "postgres" not in r.error
    only = backups_check(
        lambda: newest, components={"postgres": 7200, "redis": 20 * 3600}, clock=lambda: NOW
    )
    assert run_one(only).status is Status.DEGRADED
    fresh = backups_check(lambda: newest, components={"postgres": 7200}, clock=lambda: NOW)
    assert run_one(fresh).status is Status.HEALTHY


def test_backups_from_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    check = backups_check(path, components={"postgres": 3600, "files": 3600}, clock=lambda: NOW)
    missing = run_one(check)
    assert missing.status is Status.UNHEALTHY
    assert missing.error is not None and "does not exist" in missing.error
    path.write_text(
        json.dumps(
            {
                "components": {
                    "postgres": {"newest_snapshot_timestamp": NOW - 60},
                    "files": "2027-01-15T08:00:00Z",
                    "redis": None,
                }
            }
        )
    )
    status = read_backup_status(path)
    assert status["postgres"] == NOW - 60 and status["redis"] is None
    assert status["files"] == datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    r = run_one(check)
    assert r.details["postgres"]["age_seconds"] == 60
    never = run_one(backups_check(path, clock=lambda: NOW))
    assert never.status is Status.UNHEALTHY
    assert never.error is not None and "redis: no snapshot" in never.error


# -- the runner ----------------------------------------------------------------------------------


def _sleeper(name: str, seconds: float, stop: threading.Event, **kw: object) -> Check:
    def fn() -> CheckResult:
        stop.wait(seconds)
        return CheckResult(Status.HEALTHY, {"slept": seconds})

    return Check(name, fn, **kw)  # type: ignore[arg-type]


def test_slow_check_times_out_and_the_report_is_on_time() -> None:
    stop = threading.Event()
    try:
        service = HealthService(
            [
                _sleeper("stuck", 10.0, stop, timeout=1.0),
                _sleeper("quick", 0.05, stop, timeout=5.0),
                _sleeper("medium", 0.5, stop, timeout=5.0),
            ]
        )
        t0 = time.monotonic()
        report = service.report()
        elapsed = time.monotonic() - t0
        assert elapsed < 2.0
        assert report.checks["stuck"].status is Status.UNHEALTHY
        assert report.checks["stuck"].error == "timed out after 1 s"
        assert report.checks["stuck"].latency_ms == 1000.0
        assert report.checks["quick"].status is Status.HEALTHY
        assert report.checks["medium"].status is Status.HEALTHY
        assert report.status is Status.UNHEALTHY and report.http_status == 503

        # The stuck run is joined, not repeated: no pile-up of threads, and no new wait.
        t0 = time.monotonic()
        again = service.run(["stuck"])
        assert time.monotonic() - t0 < 0.5
        assert again["stuck"].error == "timed out after 1 s"
        stuck = [t for t in threading.enumerate() if t.name == "health-check-stuck"]
        assert len(stuck) == 1
    finally:
        stop.set()


def test_checks_run_concurrently() -> None:
    stop = threading.Event()
    service = HealthService([_sleeper(f"c{i}", 0.6, stop, timeout=5.0) for i in range(5)])
    t0 = time.monotonic()
    results = service.run()
    assert time.monotonic() - t0 < 2.0  # 3 s if one after the other
    assert all(r.status is Status.HEALTHY for r in results.values())


def test_a_raising_check_is_unhealthy_with_a_scrubbed_one_line_error() -> None:
    def boom() -> CheckResult:
        raise RuntimeError(
            f"cannot reach postgresql://app:{PG_PASSWORD}@db:5432/x\n"
            f"password={HTTP_PASSWORD} token: {CHROMA_TOKEN}"
        )

    r = run_one(Check("custom", boom, timeout=2, secrets=(CHROMA_TOKEN,)))
    assert r.status is Status.UNHEALTHY
    assert r.error is not None and r.error.startswith("RuntimeError: cannot reach")
    assert "\n" not in r.error
    assert "postgresql://app:***@db:5432/x" in r.error
    assert_no_secret(r.error)

    def wrong() -> CheckResult:
        return "fine"  # type: ignore[return-value]

    assert "not a CheckResult" in (run_one(Check("wrong", wrong)).error or "")


def test_scrub() -> None:
    assert scrub("redis://:pw@h:1/0 and http://u:p@x/") == "redis://:***@h:1/0 and http://u:***@x/"
    assert scrub("PASSWORD='a b' rest") == "PASSWORD=*** rest"
    assert scrub("host=db password=hunter2 user=x") == "host=db password=*** user=x"
    assert scrub("the key is k3y", ["k3y"]) == "the key is ***"


def test_groups_and_performance() -> None:
    def fixed(status: Status, delay: float = 0.0) -> CheckResult:
        time.sleep(delay)
        return CheckResult(status)

    service = HealthService(
        [
            Check("postgres", lambda: fixed(Status.HEALTHY), category="database"),
            Check("redis", lambda: fixed(Status.UNHEALTHY), category="database"),
            Check("backend", lambda: fixed(Status.HEALTHY, 0.3), category="service"),
            Check("frontend", lambda: fixed(Status.DEGRADED), category="service"),
            Check("disk", lambda: fixed(Status.HEALTHY), category="system"),
            Check("backups", lambda: fixed(Status.HEALTHY), category="backup"),
        ],
        performance_latency_degraded_ms=200,
    )
    assert service.names("database") == ["postgres", "redis"]
    assert service.names("services") == ["backend", "frontend"]
    assert service.names("performance") == ["disk"]
    assert len(service.names("comprehensive")) == 6
    assert service.report("database").status is Status.UNHEALTHY
    services = service.report("services")
    assert services.status is Status.DEGRADED and services.http_status == 200
    perf = service.report("performance")
    assert list(perf.checks) == ["disk"]
    assert perf.latency_ms is not None and set(perf.latency_ms) == {
        "postgres",
        "redis",
        "backend",
        "frontend",
        "backups",
    }
    assert perf.latency_ms["backend"] >= 300
    assert perf.status is Status.DEGRADED  # backend slower than 200 ms; redis down does not count
    doc = perf.to_dict()
    assert set(doc) == {"status", "timestamp", "duration_ms", "checks", "latency_ms"}
    assert doc["timestamp"].endswith("+00:00")
    with pytest.raises(ValueError, match="unknown group"):
        service.report("nope")
    with pytest.raises(ValueError, match="two checks"):
        HealthService([Check("a", lambda: fixed(Status.HEALTHY))] * 2)


def test_worst() -> None:
    assert worst([]) is Status.HEALTHY
    assert worst([Status.HEALTHY, Status.DEGRADED]) is Status.DEGRADED
    assert worst([Status.DEGRADED, Status.UNHEALTHY, Status.HEALTHY]) is Status.UNHEALTHY
    assert [s.score for s in Status] == [1.0, 0.5, 0.0]
