"""The router mounted in another FastAPI app (as the AI Scholar backend would), served
by a real uvicorn in a thread, against real PostgreSQL, Redis, Chroma and HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from scholar_ops.monitoring.health.checks import Check, CheckResult, HealthService, Status
from scholar_ops.monitoring.health.config import (
    ENV_BACKEND_URL,
    ENV_CHROMA_PATH,
    ENV_FRONTEND_URL,
    ENV_POSTGRES_DSN,
    ENV_REDIS_URL,
    HealthConfig,
)
from scholar_ops.monitoring.health.router import health_router
from scholar_ops.monitoring.names import HEALTH_DURATION, HEALTH_OVERALL, HEALTH_STATUS
from scholar_ops.sources.postgres.cluster import PgServer
from scholar_ops.sources.process import free_port
from scholar_ops.sources.redis.server import RedisServer
from tests.scholar_ops.monitoring.health.conftest import (
    HTTP_PASSWORD,
    PG_PASSWORD,
    HttpStub,
    assert_no_secret,
    relaxed_yaml,
)

SLOW_TIMEOUT = 1.5


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` on a real uvicorn in a thread, on a loopback port bound here (no race)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def parse_metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def full_config(
    tmp_path: Path,
    pg: PgServer,
    redis_srv: RedisServer,
    chroma_store: Path,
    stub: HttpStub,
    extra_yaml: str = "",
) -> HealthConfig:
    path = tmp_path / "health.yml"
    path.write_text(relaxed_yaml(tmp_path) + extra_yaml)
    env = {
        ENV_POSTGRES_DSN: f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{pg.port}/postgres",
        ENV_REDIS_URL: redis_srv.url,
        ENV_CHROMA_PATH: str(chroma_store),
        ENV_BACKEND_URL: stub.url("/health", password=HTTP_PASSWORD),
        ENV_FRONTEND_URL: stub.url("/"),
    }
    return HealthConfig.load(path, env=env)


def test_router_mounted_in_an_app_with_a_slow_dependency(
    tmp_path: Path,
    pg_server: PgServer,
    secret_redis: RedisServer,
    chroma_store: Path,
    http_stub: HttpStub,
) -> None:
    cfg = full_config(
        tmp_path,
        pg_server,
        secret_redis,
        chroma_store,
        http_stub,
        f"endpoints: {{search: {{url: '{http_stub.url('/slow')}', timeout: {SLOW_TIMEOUT}}}}}\n",
    )
    app = FastAPI()

    @app.get("/api/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app.include_router(health_router(cfg))
    bodies: list[str] = []
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/api/ping").json() == {"pong": "yes"}

        database = http.get("/health/database")  # also warms up the client libraries
        bodies.append(database.text)
        assert database.status_code == 200, database.text
        doc = database.json()
        assert set(doc) == {"status", "timestamp", "duration_ms", "checks"}
        assert doc["status"] == "healthy"
        assert list(doc["checks"]) == ["postgres", "redis", "chroma"]
        assert doc["checks"]["chroma"]["details"]["collections"] == 2
        for check in doc["checks"].values():
            assert set(check) == {"status", "latency_ms", "details", "error"}

        t0 = time.monotonic()
        comprehensive = http.get("/health/comprehensive")
        elapsed = time.monotonic() - t0
        bodies.append(comprehensive.text)
        assert elapsed < SLOW_TIMEOUT + 1.0, f"answered after {elapsed:.2f} s"
        assert comprehensive.status_code == 503
        doc = comprehensive.json()
        assert doc["status"] == "unhealthy"
        assert doc["checks"]["search"]["status"] == "unhealthy"
        assert doc["checks"]["search"]["error"] == f"timed out after {SLOW_TIMEOUT:g} s"
        others = {n: c["status"] for n, c in doc["checks"].items() if n != "search"}
        assert others == dict.fromkeys(
            ["postgres", "redis", "chroma", "backend", "frontend", "disk", "system"], "healthy"
        ), doc
        assert doc["checks"]["backend"]["details"]["url"] == (
            f"http://127.0.0.1:{http_stub.port}/health"
        )

        services = http.get("/health/services")
        bodies.append(services.text)
        assert services.status_code == 503
        assert list(services.json()["checks"]) == ["backend", "frontend", "search"]

        performance = http.get("/health/performance")
        bodies.append(performance.text)
        assert performance.status_code == 200
        doc = performance.json()
        assert list(doc["checks"]) == ["disk", "system"]
        assert doc["latency_ms"]["search"] == SLOW_TIMEOUT * 1000
        assert set(doc["latency_ms"]) == {
            "postgres",
            "redis",
            "chroma",
            "backend",
            "frontend",
            "search",
        }

        metrics = http.get("/metrics")
        bodies.append(metrics.text)
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=")
    for body in bodies:
        assert_no_secret(body)

    samples = parse_metrics(bodies[-1])
    assert set(samples) == {HEALTH_STATUS, HEALTH_DURATION, HEALTH_OVERALL}
    status = {dict(k)["service"]: v for k, v in samples[HEALTH_STATUS].items()}
    assert all(len(k) == 1 and k[0][0] == "service" for k in samples[HEALTH_STATUS])
    assert status == {
        "postgres": 1.0,
        "redis": 1.0,
        "chroma": 1.0,
        "backend": 1.0,
        "frontend": 1.0,
        "search": 0.0,
        "disk": 1.0,
        "system": 1.0,
    }
    duration = {dict(k)["service"]: v for k, v in samples[HEALTH_DURATION].items()}
    assert duration["search"] == SLOW_TIMEOUT
    assert set(duration) == set(status)
    assert samples[HEALTH_OVERALL] == {(): 0.0}


def test_a_dependency_down_is_unhealthy_and_503(http_stub: HttpStub) -> None:
    port = free_port()  # nothing listens there
    cfg = HealthConfig.load(
        env={
            ENV_POSTGRES_DSN: f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{port}/postgres",
            ENV_BACKEND_URL: http_stub.url("/health"),
            "SCHOLAR_OPS_HEALTH_POSTGRES_TIMEOUT": "3",
        }
    )
    app = FastAPI()
    app.include_router(health_router(cfg, metrics_path=None))
    with TestClient(app) as client:
        database = client.get("/health/database")
        assert database.status_code == 503
        pg = database.json()["checks"]["postgres"]
        assert pg["status"] == "unhealthy"
        assert "Connection refused" in pg["error"]
        assert_no_secret(database.text)
        services = client.get("/health/services")
        assert services.status_code == 200 and services.json()["status"] == "healthy"
        assert client.get("/metrics").status_code == 404  # metrics_path=None


def test_thresholds_make_it_degraded_not_503(http_stub: HttpStub) -> None:
    def slowish() -> CheckResult:
        time.sleep(0.3)
        return CheckResult(Status.HEALTHY)

    from scholar_ops.monitoring.health.checks import http_check

    service = HealthService(
        [
            http_check("backend", http_stub.url("/delay/300"), latency_degraded_ms=100),
            http_check("frontend", http_stub.url("/")),
            Check("embedder", slowish, timeout=5, category="database"),
        ],
        performance_latency_degraded_ms=200,
    )
    app = FastAPI()
    app.include_router(health_router(service))
    with TestClient(app) as client:
        services = client.get("/health/services")
        assert services.status_code == 200
        doc = services.json()
        assert doc["status"] == "degraded"
        assert doc["checks"]["backend"]["status"] == "degraded"
        assert doc["checks"]["backend"]["error"].startswith("slow: ")
        performance = client.get("/health/performance")
        assert performance.status_code == 200
        assert performance.json()["status"] == "degraded"  # others slower than 200 ms
        samples = parse_metrics(client.get("/metrics").text)
        assert samples[HEALTH_STATUS][(("service", "backend"),)] == 0.5
        assert samples[HEALTH_OVERALL] == {(): 0.5}
