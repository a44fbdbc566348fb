"""Authentication of the compose stack: docker/make-secrets.py makes the secret files and
the web configs (promtool accepts them), a real Prometheus and AlertManager (Debian's
binaries) started with them refuse anonymous requests, and Prometheus, with the shipped
prometheus.yml's credentials, still scrapes both and sends alerts to AlertManager.
Grafana's settings (no anonymous access, the admin password and the datasource's
password from secret files) are checked in the files."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml

from scholar_ops.sources.process import running_server
from scholar_ops.testbed.prometheus import ALERTMANAGER, PROMETHEUS
from tests.docker.compose import compose_model
from tests.docker.paths import DATASOURCES_YML, DOCKER, PROMETHEUS_YML, PROMTOOL, explain, run

SCRIPT = DOCKER / "make-secrets.py"
USER = "scholar-ops"


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("secrets") / "secrets"
    result = run([sys.executable, str(SCRIPT), "--dir", str(directory)])
    assert result.returncode == 0, explain(result)
    return directory


def test_make_secrets_makes_every_compose_secret_but_the_operators(secrets_dir: Path) -> None:
    compose = compose_model()
    for name, spec in compose["secrets"].items():
        path = secrets_dir / Path(spec["file"]).name
        if name in ("smtp_password", "slack_webhook_url"):
            assert not path.exists()  # the operator's to write
            continue
        assert path.exists(), name
        assert path.stat().st_mode & 0o777 == 0o600, name
    assert secrets_dir.stat().st_mode & 0o777 == 0o700


def test_web_configs_hold_bcrypt_hashes_promtool_accepts(secrets_dir: Path) -> None:
    for config, source in (
        ("prometheus-web.yml", "prometheus_password"),
        ("alertmanager-web.yml", "alertmanager_password"),
    ):
        password = (secrets_dir / source).read_text().strip()
        doc = yaml.safe_load((secrets_dir / config).read_text())
        hashed = doc["basic_auth_users"][USER]
        assert password not in (secrets_dir / config).read_text()
        assert bcrypt.checkpw(password.encode(), hashed.encode())
        result = run([PROMTOOL, "check", "web-config", str(secrets_dir / config)])
        assert result.returncode == 0, explain(result)


def test_make_secrets_keeps_what_exists(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "prometheus_password").write_text("chosen-by-the-operator-0123\n")
    first = subprocess.run(
        [sys.executable, str(SCRIPT), "--dir", str(directory)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    token = (directory / "health_token").read_text()
    second = subprocess.run(
        [sys.executable, str(SCRIPT), "--dir", str(directory)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert (directory / "health_token").read_text() == token
    assert (directory / "prometheus_password").read_text() == "chosen-by-the-operator-0123\n"
    doc = yaml.safe_load((directory / "prometheus-web.yml").read_text())
    assert bcrypt.checkpw(b"chosen-by-the-operator-0123", doc["basic_auth_users"][USER].encode())
    for out in (first.stdout + first.stderr, second.stdout + second.stderr):
        for name in ("prometheus_password", "alertmanager_password", "health_token"):
            assert (directory / name).read_text().strip() not in out
    assert "missing" in first.stdout and "smtp_password" in first.stdout


def _ready_with(auth: tuple[str, str]) -> Callable[[int], bool]:
    def ready(port: int) -> bool:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/-/ready", auth=auth, timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    return ready


def test_prometheus_and_alertmanager_ask_for_basic_auth(secrets_dir: Path, tmp_path: Path) -> None:
    """Both servers with the web configs; Prometheus with the shipped prometheus.yml, only
    its targets pointed at loopback and /run/secrets/ at the secrets made above."""
    am_password = (secrets_dir / "alertmanager_password").read_text().strip()
    prom_password = (secrets_dir / "prometheus_password").read_text().strip()
    with ExitStack() as stack:
        am_dir = tmp_path / "alertmanager"
        am_dir.mkdir()
        am_config = am_dir / "alertmanager.yml"
        am_config.write_text(
            "route: {receiver: none}\nreceivers: [{name: none}]\n", encoding="utf-8"
        )
        am = stack.enter_context(
            running_server(
                "alertmanager",
                lambda port: [
                    ALERTMANAGER,
                    f"--config.file={am_config}",
                    f"--storage.path={am_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                    f"--web.config.file={secrets_dir / 'alertmanager-web.yml'}",
                ],
                cwd=am_dir,
                log_path=am_dir / "alertmanager.log",
                ready=_ready_with((USER, am_password)),
                timeout=60,
            )
        )
        am_url = f"http://127.0.0.1:{am.port}"
        assert httpx.get(f"{am_url}/api/v2/status", timeout=10).status_code == 401
        wrong = httpx.get(f"{am_url}/api/v2/status", auth=(USER, "wrong"), timeout=10)
        assert wrong.status_code == 401

        prom_dir = tmp_path / "prometheus"
        prom_dir.mkdir()
        text = PROMETHEUS_YML.read_text(encoding="utf-8").replace(
            "/run/secrets/", f"{secrets_dir}/"
        )
        config = yaml.safe_load(text)
        config["rule_files"] = []
        config["global"]["scrape_interval"] = config["global"]["scrape_timeout"] = "1s"
        config["global"]["evaluation_interval"] = "1s"
        config["scrape_configs"] = [
            j for j in config["scrape_configs"] if j["job_name"] in ("prometheus", "alertmanager")
        ]
        prom_config = prom_dir / "prometheus.yml"

        def write_config(port: int) -> None:
            for job in config["scrape_configs"]:
                target = port if job["job_name"] == "prometheus" else am.port
                job["static_configs"] = [{"targets": [f"127.0.0.1:{target}"]}]
            config["alerting"]["alertmanagers"][0]["static_configs"] = [
                {"targets": [f"127.0.0.1:{am.port}"]}
            ]
            prom_config.write_text(yaml.safe_dump(config), encoding="utf-8")

        def argv(port: int) -> list[str]:
            write_config(port)
            return [
                PROMETHEUS, f"--config.file={prom_config}",
                f"--storage.tsdb.path={prom_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.config.file={secrets_dir / 'prometheus-web.yml'}",
            ]  # fmt: skip

        prom = stack.enter_context(
            running_server(
                "prometheus",
                argv,
                cwd=prom_dir,
                log_path=prom_dir / "prometheus.log",
                ready=_ready_with((USER, prom_password)),
                timeout=60,
            )
        )
        prom_url = f"http://127.0.0.1:{prom.port}"
        assert httpx.get(f"{prom_url}/api/v1/targets", timeout=10).status_code == 401
        with httpx.Client(base_url=prom_url, auth=(USER, prom_password), timeout=10) as http:
            deadline = time.monotonic() + 60
            health: dict[str, str] = {}
            while time.monotonic() < deadline:
                active = http.get("/api/v1/targets").json()["data"]["activeTargets"]
                health = {t["labels"]["job"]: t["health"] for t in active}
                if health == {"prometheus": "up", "alertmanager": "up"}:
                    break
                time.sleep(0.5)
            assert health == {"prometheus": "up", "alertmanager": "up"}, active
            managers = http.get("/api/v1/alertmanagers").json()["data"]["activeAlertmanagers"]
            assert [m["url"] for m in managers] == [f"{am_url}/api/v2/alerts"]


def test_grafana_has_no_anonymous_access_and_secret_passwords() -> None:
    grafana = compose_model()["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    (source,) = yaml.safe_load(DATASOURCES_YML.read_text())["datasources"]
    assert source["basicAuth"] is True and source["basicAuthUser"] == USER
    password = source["secureJsonData"]["basicAuthPassword"]
    assert password == "$__file{/run/secrets/prometheus_password}"
    mounted = {s if isinstance(s, str) else s["source"] for s in grafana["secrets"]}
    assert "prometheus_password" in mounted


def test_services_mount_the_secrets_their_configs_name() -> None:
    compose = compose_model()
    services = compose["services"]

    def mounted(name: str) -> set[str]:
        return {s if isinstance(s, str) else s["source"] for s in services[name]["secrets"]}

    for name, flag in (("prometheus", "prometheus"), ("alertmanager", "alertmanager")):
        command = services[name]["command"]
        assert f"--web.config.file=/run/secrets/{flag}_web_config" in command
        assert f"{flag}_web_config" in mounted(name)
    text = PROMETHEUS_YML.read_text()
    for secret in sorted(set(re.findall(r"/run/secrets/(\w+)", text))):
        assert secret in mounted("prometheus"), secret
    health = services["monitoring-service"]
    assert {"health_token", "health_operator_token"} <= mounted("monitoring-service")
    assert health["environment"]["SCHOLAR_OPS_HEALTH_TOKEN_FILE"] == "/run/secrets/health_token"
