"""The monitoring service as a real subprocess (python -m scholar_ops.monitoring.health.service)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scholar_ops.monitoring.health.auth import ENV_TOKEN
from scholar_ops.monitoring.health.config import (
    ENV_BACKEND_URL,
    ENV_BACKUP_STATUS_FILE,
    ENV_CHROMA_TOKEN,
    ENV_CHROMA_URL,
    ENV_FRONTEND_URL,
    ENV_POSTGRES_DSN,
    ENV_PREFIX,
    ENV_REDIS_URL,
)
from scholar_ops.monitoring.health.service import main
from scholar_ops.monitoring.names import HEALTH_DURATION, HEALTH_OVERALL, HEALTH_STATUS
from scholar_ops.sources.postgres.cluster import PgServer
from scholar_ops.sources.process import free_port, wait_for_port
from scholar_ops.sources.redis.server import RedisServer
from tests.fixtures.chroma import ChromaServer
from tests.scholar_ops.monitoring.health.conftest import (
    CHROMA_TOKEN,
    HTTP_PASSWORD,
    PG_PASSWORD,
    HttpStub,
    assert_no_secret,
    relaxed_yaml,
)
from tests.scholar_ops.monitoring.health.test_router import parse_metrics

REPO = Path(__file__).resolve().parents[4]
SLOW_TIMEOUT = 1.0
READ_TOKEN = "read-Tk-7Hq2LmV9xZpR4sWc"


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path


@pytest.fixture
def service(
    tmp_path: Path,
    pg_server: PgServer,
    secret_redis: RedisServer,
    chroma_server: ChromaServer,
    http_stub: HttpStub,
) -> Iterator[Service]:
    status_file = tmp_path / "backup-status.json"
    now = time.time()
    status_file.write_text(
        json.dumps(
            {
                "components": {
                    c: {"newest_snapshot_timestamp": now - 600}
                    for c in ("postgres", "redis", "chroma")
                }
            }
        )
    )
    config = tmp_path / "health.yml"
    config.write_text(
        relaxed_yaml(tmp_path)
        + f"endpoints: {{search: {{url: '{http_stub.url('/slow')}', timeout: {SLOW_TIMEOUT}}}}}\n"
        + "backups: {max_age_seconds: 3600}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(
        {
            ENV_POSTGRES_DSN: f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{pg_server.port}/postgres",
            ENV_REDIS_URL: secret_redis.url,
            ENV_CHROMA_URL: chroma_server.url,
            ENV_CHROMA_TOKEN: CHROMA_TOKEN,
            ENV_BACKEND_URL: http_stub.url("/health", password=HTTP_PASSWORD),
            ENV_FRONTEND_URL: http_stub.url("/"),
            ENV_BACKUP_STATUS_FILE: str(status_file),
            ENV_TOKEN: READ_TOKEN,
        }
    )
    log = tmp_path / "service.log"
    for _attempt in range(3):  # a free port can be taken before the service binds it
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "scholar_ops.monitoring.health.service",
                    "--port",
                    str(port),
                    "--config",
                    str(config),
                ],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    wait_for_port(port, timeout=0.5)
                    break
                except TimeoutError:
                    continue
            if proc.poll() is not None:
                continue
            yield Service(proc, f"http://127.0.0.1:{port}", log)
            return
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    raise RuntimeError("the health service did not start:\n" + log.read_text(errors="replace"))


def test_service_subprocess(service: Service) -> None:
    bodies: list[str] = []
    auth = {"Authorization": f"Bearer {READ_TOKEN}"}
    with httpx.Client(base_url=service.base, timeout=30, trust_env=False, headers=auth) as http:
        index = http.get("/")
        bodies.append(index.text)
        assert index.status_code == 200
        assert index.json()["endpoints"] == [
            "/health/comprehensive",
            "/health/database",
            "/health/services",
            "/health/performance",
            "/metrics",
        ]

        database = http.get("/health/database")
        bodies.append(database.text)
        assert database.status_code == 200, database.text
        doc = database.json()
        assert doc["status"] == "healthy"
        assert {n: c["status"] for n, c in doc["checks"].items()} == dict.fromkeys(
            ["postgres", "redis", "chroma"], "healthy"
        )
        assert doc["checks"]["chroma"]["details"]["mode"] == "server"

        t0 = time.monotonic()
        comprehensive = http.get("/health/comprehensive")
        elapsed = time.monotonic() - t0
        bodies.append(comprehensive.text)
        assert elapsed < SLOW_TIMEOUT + 1.0, f"answered after {elapsed:.2f} s"
        assert comprehensive.status_code == 503
        doc = comprehensive.json()
        assert doc["checks"]["search"]["error"] == "timed out after 1 s"
        others = {n: c["status"] for n, c in doc["checks"].items() if n != "search"}
        assert others == dict.fromkeys(
            ["postgres", "redis", "chroma", "backend", "frontend", "disk", "system", "backups"],
            "healthy",
        ), doc
        assert doc["checks"]["backups"]["details"]["postgres"]["max_age_seconds"] == 3600

        for group in ("services", "performance"):
            response = http.get(f"/health/{group}")
            bodies.append(response.text)
            assert response.status_code in (200, 503)
            assert set(response.json()) >= {"status", "timestamp", "duration_ms", "checks"}

        metrics = http.get("/metrics")
        bodies.append(metrics.text)
        assert metrics.status_code == 200

    for body in bodies:
        assert_no_secret(body)
    samples = parse_metrics(bodies[-1])
    assert set(samples) == {HEALTH_STATUS, HEALTH_DURATION, HEALTH_OVERALL}
    for name in (HEALTH_STATUS, HEALTH_DURATION):
        assert {tuple(k[0] for k in labels) for labels in samples[name]} == {("service",)}
    status = {dict(k)["service"]: v for k, v in samples[HEALTH_STATUS].items()}
    assert status == {
        "postgres": 1.0,
        "redis": 1.0,
        "chroma": 1.0,
        "backend": 1.0,
        "frontend": 1.0,
        "search": 0.0,
        "disk": 1.0,
        "system": 1.0,
        "backups": 1.0,
    }
    assert samples[HEALTH_OVERALL] == {(): 0.0}

    # SIGTERM: a graceful stop, exit code 0
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(timeout=15) == 0
    output = service.log.read_text(errors="replace")
    assert "Shutting down" in output or "Finished server process" in output
    assert_no_secret(output)
    assert READ_TOKEN not in output


def test_bad_config_exits_2_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "health.yml"
    config.write_text("system: {cpu_degraded_ratio: 3}\n")
    assert main(["--config", str(config), "--port", str(free_port())]) == 2
    assert "system.cpu_degraded_ratio: must be a ratio" in capsys.readouterr().err
