"""docker/prometheus/prometheus.yml: promtool accepts it (as shipped and as rendered for
loopback), and it scrapes what docs/metrics.md says."""

from __future__ import annotations

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


def test_promtool_check_config_as_shipped() -> None:
    # also checks every rule file that rule_files (rules/*.yml) matches
    result = run([PROMTOOL, "check", "config", str(PROMETHEUS_YML)])
    assert result.returncode == 0, explain(result)
    assert "SUCCESS" in result.stdout + result.stderr


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
