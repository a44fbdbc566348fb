"""docker/prometheus/prometheus.yml: promtool accepts it (as shipped and as rendered for
loopback), and it scrapes what docs/metrics.md says."""

from __future__ import annotations

import re
from pathlib import Path

from scholar_ops.monitoring import names
from scholar_ops.testbed.alerting import default_rule_files, render_prometheus_config
from tests.docker.paths import PROMETHEUS_YML, PROMTOOL, explain, load_yaml, run


def _jobs() -> dict[str, dict[str, object]]:
    return {job["job_name"]: job for job in load_yaml(PROMETHEUS_YML)["scrape_configs"]}


def _targets(job: dict[str, object]) -> list[str]:
    static = job["static_configs"]
    assert isinstance(static, list)
    return [t for sc in static for t in sc["targets"]]


def test_promtool_check_config_as_shipped(tmp_path: Path) -> None:
    result = run([PROMTOOL, "check", "config", "--syntax-only", str(PROMETHEUS_YML)])
    assert result.returncode == 0, explain(result)
    # promtool also wants the secret files (Docker secrets under /run/secrets/) to exist:
    # the same text, each secret in a file of tmp_path, the rules' glob made absolute.
    # It checks every rule file that rule_files (rules/*.yml) matches.
    text = PROMETHEUS_YML.read_text(encoding="utf-8")
    for name in set(re.findall(r"/run/secrets/(\w+)", text)):
        (tmp_path / name).write_text("not-the-real-secret-0123456789\n")
    text = text.replace("/run/secrets/", f"{tmp_path}/").replace(
        "  - rules/*.yml", f"  - {PROMETHEUS_YML.parent}/rules/*.yml"
    )
    copy = tmp_path / "prometheus.yml"
    copy.write_text(text)
    result = run([PROMTOOL, "check", "config", str(copy)])
    assert result.returncode == 0, explain(result)
    assert "SUCCESS" in result.stdout + result.stderr
    assert "rules/scholar-ops.yml" in result.stdout + result.stderr


def test_authentication_to_each_target() -> None:
    """The health service with its bearer token, AlertManager and Prometheus with basic
    auth (web configs made by docker/make-secrets.py), each secret a Docker secret file."""
    config = load_yaml(PROMETHEUS_YML)
    jobs = _jobs()
    assert jobs[names.JOB_HEALTH]["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/run/secrets/health_token",
    }
    for job, secret in (("prometheus", "prometheus"), ("alertmanager", "alertmanager")):
        assert jobs[job]["basic_auth"] == {
            "username": "scholar-ops",
            "password_file": f"/run/secrets/{secret}_password",
        }
    (manager,) = config["alerting"]["alertmanagers"]
    assert manager["basic_auth"] == jobs["alertmanager"]["basic_auth"]
    assert "password:" not in PROMETHEUS_YML.read_text()  # never a password in the file


def test_promtool_check_config_rendered(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        render_prometheus_config(
            "127.0.0.1:9091",
            "http://127.0.0.1:9093",
            "127.0.0.1:8080",
            "1s",
            "1s",
            default_rule_files(),
            prometheus="127.0.0.1:9090",
        )
    )
    result = run([PROMTOOL, "check", "config", str(config)])
    assert result.returncode == 0, explain(result)


def test_scrapes_pushgateway_with_honor_labels() -> None:
    job = _jobs()["pushgateway"]
    assert job["honor_labels"] is True
    assert _targets(job) == ["pushgateway:9091"]


def test_scrapes_health_service() -> None:
    job = _jobs()[names.JOB_HEALTH]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert _targets(job) == ["monitoring-service:8080"]


def test_scrapes_itself_and_alertmanager() -> None:
    jobs = _jobs()
    assert _targets(jobs["prometheus"]) == ["localhost:9090"]
    assert _targets(jobs["alertmanager"]) == ["alertmanager:9093"]


def test_rules_and_alerting() -> None:
    config = load_yaml(PROMETHEUS_YML)
    assert config["rule_files"] == ["rules/*.yml"]
    managers = config["alerting"]["alertmanagers"]
    assert [t for m in managers for sc in m["static_configs"] for t in sc["targets"]] == [
        "alertmanager:9093"
    ]
