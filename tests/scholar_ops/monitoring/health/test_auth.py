"""Access control of the health service (monitoring/health/auth.py): the tokens and roles,
then the real service on a loopback port and a real Prometheus scraping it with the
token file."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from scholar_ops.monitoring.health.auth import (
    ENV_OPERATOR_TOKEN,
    ENV_OPERATOR_TOKEN_FILE,
    ENV_TOKEN,
    ENV_TOKEN_FILE,
    AccessConfigError,
    AccessControl,
    Role,
    bearer_token,
)
from scholar_ops.monitoring.health.config import (
    ENV_BACKEND_URL,
    ENV_POSTGRES_DSN,
    ENV_PREFIX,
    HealthConfig,
    SystemSettings,
)
from scholar_ops.monitoring.health.service import create_app, main
from scholar_ops.sources.postgres.cluster import PgServer
from scholar_ops.sources.process import RunningServer, running_server
from scholar_ops.testbed.alerting import render_prometheus_config
from scholar_ops.testbed.prometheus import ObservabilityServer, ServerLauncher
from tests.scholar_ops.monitoring.health.conftest import HTTP_PASSWORD, PG_PASSWORD, HttpStub

REPO = Path(__file__).resolve().parents[4]
READ = "read-0f1e2d3c4b5a69788796a5b4"
OPERATOR = "oper-9a8b7c6d5e4f30211203f4e5"
WRONG = "read-0f1e2d3c4b5a69788796a5b5"  # one character off


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the model ----------------------------------------------------------------------------


def test_roles_of_tokens() -> None:
    access = AccessControl(read=(READ, "second-read-token-xyz"), operator=(OPERATOR,))
    assert access.role_of(READ) is Role.READ
    assert access.role_of("second-read-token-xyz") is Role.READ
    assert access.role_of(OPERATOR) is Role.OPERATOR
    assert access.role_of(WRONG) is None
    assert access.role_of("") is None
    assert Role.OPERATOR > Role.READ
    assert READ not in repr(access) and OPERATOR not in repr(access)


def test_bad_tokens_are_refused_without_showing_them() -> None:
    with pytest.raises(AccessConfigError, match="at least 16") as e:
        AccessControl(read=("short-secret",))
    assert "short-secret" not in str(e.value)
    with pytest.raises(AccessConfigError, match="same token"):
        AccessControl(read=(READ,), operator=(READ,))


def test_tokens_from_the_environment_and_files(tmp_path: Path) -> None:
    read_file = tmp_path / "read"
    read_file.write_text(READ + "\n")
    access = AccessControl.from_env(
        {ENV_TOKEN_FILE: str(read_file), ENV_OPERATOR_TOKEN: OPERATOR + ",other-operator-tok"}
    )
    assert access.role_of(READ) is Role.READ
    assert access.role_of("other-operator-tok") is Role.OPERATOR
    assert not AccessControl.from_env({}).enabled
    with pytest.raises(AccessConfigError, match=ENV_OPERATOR_TOKEN_FILE):
        AccessControl.from_env({ENV_OPERATOR_TOKEN_FILE: str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(AccessConfigError, match="holds no token"):
        AccessControl.from_env({ENV_TOKEN_FILE: str(tmp_path / "empty")})
    with pytest.raises(AccessConfigError, match=ENV_TOKEN) as e:
        AccessControl.from_env({ENV_TOKEN: "tiny"})
    assert "tiny" not in str(e.value)


def test_bearer_header_parsing() -> None:
    assert bearer_token(f"Bearer {READ}") == READ
    assert bearer_token(f"bearer   {READ} ") == READ
    assert bearer_token(f"Basic {READ}") is None
    assert bearer_token("Bearer") is None
    assert bearer_token(None) is None


def test_operator_endpoints_refuse_the_read_token() -> None:
    """The service has no action endpoint (they are Prefect deployments); the role model
    is what one would use: an operator-only route next to the service's own."""
    access = AccessControl(read=(READ,), operator=(OPERATOR,))
    config = HealthConfig(disk=None, system=SystemSettings())
    app: FastAPI = create_app(config, access)

    @app.post("/actions/example", dependencies=[Depends(access.require(Role.OPERATOR))])
    def example() -> dict[str, str]:
        return {"done": "yes"}

    with TestClient(app) as client:
        refused = client.post("/actions/example", headers=_bearer(READ))
        assert refused.status_code == 403
        assert "operator" in refused.json()["detail"]
        assert client.post("/actions/example", headers=_bearer(OPERATOR)).json() == {"done": "yes"}
        missing = client.post("/actions/example")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        # the operator may read too
        assert client.get("/health/performance", headers=_bearer(OPERATOR)).status_code in (
            200,
            503,
        )


def test_service_refuses_to_start_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in (ENV_TOKEN, ENV_TOKEN_FILE, ENV_OPERATOR_TOKEN, ENV_OPERATOR_TOKEN_FILE):
        monkeypatch.delenv(var, raising=False)
    assert main(["--port", "1"]) == 2
    assert "no access token" in capsys.readouterr().err
    monkeypatch.setenv(ENV_TOKEN, "tiny")
    assert main(["--port", "1"]) == 2
    err = capsys.readouterr().err
    assert ENV_TOKEN in err and "tiny" not in err


# -- the real service -----------------------------------------------------------------------


@pytest.fixture
def secured(tmp_path: Path, pg_server: PgServer, http_stub: HttpStub) -> Iterator[RunningServer]:
    """The service with a read token (from a file, as the stack and compose give it) and an
    operator token, a PostgreSQL DSN with a user and password, and a backend URL with
    credentials; logging at debug level."""
    token_file = tmp_path / "health-token"
    token_file.write_text(READ + "\n")
    token_file.chmod(0o600)
    config = tmp_path / "health.yml"
    config.write_text(
        f"disk: {{paths: ['{tmp_path}'], degraded_ratio: 1.0, unhealthy_ratio: 1.0}}\n"
        "system: {cpu_degraded_ratio: 1.0, memory_degraded_ratio: 1.0, "
        "memory_unhealthy_ratio: 1.0}\n"
        "postgres: {latency_degraded_ms: 30000}\n"
        "backend: {latency_degraded_ms: 30000}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(
        {
            ENV_TOKEN_FILE: str(token_file),
            ENV_OPERATOR_TOKEN: OPERATOR,
            # the server trusts any password: the DSN carries one, as production's would
            ENV_POSTGRES_DSN: (
                f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{pg_server.port}/postgres"
            ),
            ENV_BACKEND_URL: http_stub.url("/health", password=HTTP_PASSWORD),
        }
    )

    def live(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    with running_server(
        "health",
        lambda port: [
            sys.executable,
            "-m",
            "scholar_ops.monitoring.health.service",
            "--port",
            str(port),
            "--config",
            str(config),
            "--log-level",
            "debug",
        ],
        cwd=REPO,
        log_path=tmp_path / "health.log",
        ready=live,
        timeout=60,
        env=env,
    ) as server:
        yield server


def _no_leak(text: str) -> None:
    for secret in (READ, OPERATOR, PG_PASSWORD, HTTP_PASSWORD):
        assert secret not in text


def test_liveness_without_a_token_reveals_nothing(secured: RunningServer) -> None:
    base = f"http://127.0.0.1:{secured.port}"
    with httpx.Client(base_url=base, timeout=60, trust_env=False) as http:
        live = http.get("/livez")
        assert live.status_code == 200
        assert live.json() == {"status": "ok"}
        summary = http.get("/health")
        assert summary.status_code == 200, summary.text
        assert summary.json() == {"status": "ok"}
        for response in (live, summary):
            body = response.text
            assert body == '{"status":"ok"}'
            for telltale in ("127.0.0.1", "postgres", "version", "http", "uvicorn", "localhost"):
                assert telltale not in body
                assert telltale not in json.dumps(dict(response.headers))
            assert "server" not in response.headers


def test_details_need_the_read_token(secured: RunningServer, pg_server: PgServer) -> None:
    base = f"http://127.0.0.1:{secured.port}"
    with httpx.Client(base_url=base, timeout=60, trust_env=False) as http:
        for path in ("/", "/health/comprehensive", "/health/database", "/metrics"):
            missing = http.get(path)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"] == 'Bearer realm="scholar-ops health"'
            assert "postgres" not in missing.text
            wrong = http.get(path, headers=_bearer(WRONG))
            assert wrong.status_code == 401, path
            assert "invalid_token" in wrong.headers["www-authenticate"]
            basic = http.get(path, auth=("scholar-ops", READ))  # not a bearer token
            assert basic.status_code == 401, path
        for token in (READ, OPERATOR):
            database = http.get("/health/database", headers=_bearer(token))
            assert database.status_code == 200, database.text
            check = database.json()["checks"]["postgres"]
            assert check["status"] == "healthy"
            # shown to readers: where, not who (no user name, no password)
            assert check["details"]["target"] == f"127.0.0.1:{pg_server.port}/postgres"
            _no_leak(database.text)
            services = http.get("/health/services", headers=_bearer(token))
            backend = services.json()["checks"]["backend"]
            assert backend["status"] == "healthy", backend
            assert "@" not in backend["details"]["url"]  # no user, no password
            _no_leak(services.text)
            metrics = http.get("/metrics", headers=_bearer(token))
            assert metrics.status_code == 200
            assert "scholar_ops_health_check_status" in metrics.text
            assert http.get("/", headers=_bearer(token)).json()["service"] == "scholar-ops health"
        assert http.get("/docs").status_code in (401, 404)
        assert http.get("/openapi.json").status_code in (401, 404)
    secured.proc.terminate()
    secured.proc.wait(timeout=15)
    log = secured.log_path.read_text(errors="replace")
    assert "GET /health/database" in log  # the access log is there ...
    _no_leak(log)  # ... and no token in it


def _health_target(prometheus: ObservabilityServer) -> dict[str, object]:
    active = prometheus.api("targets")["activeTargets"]
    found = [t for t in active if t["labels"]["job"] == "scholar-ops-health"]
    return dict(found[0]) if found else {}


def test_prometheus_scrapes_with_the_token_file(
    secured: RunningServer, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    token_file = tmp_path / "scrape-token"
    token_file.write_text(READ + "\n")
    launcher = ServerLauncher("prometheus", lambda kind: tmp_path_factory.mktemp(kind))
    try:
        prometheus = launcher(
            render_prometheus_config(
                "127.0.0.1:1",  # no Pushgateway here: that job is down, unrelated
                "127.0.0.1:2",
                f"127.0.0.1:{secured.port}",
                "1s",
                "1s",
                [],
                health_credentials_file=token_file,
            )
        )
        deadline = time.monotonic() + 60
        target: dict[str, object] = {}
        while time.monotonic() < deadline:
            target = _health_target(prometheus)
            if target.get("health") == "up":
                break
            time.sleep(0.5)
        assert target.get("health") == "up", target
        result = prometheus.api(
            "query", query='scholar_ops_health_check_status{service="postgres"}'
        )["result"]
        assert result and result[0]["value"][1] == "1"

        # the same scrape with a wrong token: 401, the target is down
        token_file.write_text(WRONG + "\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            target = _health_target(prometheus)
            if target.get("health") == "down":
                break
            time.sleep(0.5)
        assert target.get("health") == "down", target
        assert "401" in str(target["lastError"])
    finally:
        launcher.stop_all()
