"""scholar_ops/testbed/alerting.py: the rendered variants keep production's rules, routes
and receivers, and point only the rewritten fields elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scholar_ops.testbed.alerting import (
    default_rule_files,
    parse_duration,
    render_alertmanager_config,
    render_prometheus_config,
)
from tests.docker.paths import ALERTMANAGER_YML, PROMETHEUS_YML, RULES_DIR, TEMPLATES_DIR, load_yaml


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("1h30m", 5400), ("500ms", 0.5), ("4h", 14400), ("7d", 604800), ("0m", 0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "1.5s", "s", "1h 30m", "5x"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_default_rule_files() -> None:
    files = default_rule_files()
    assert files == [str(p) for p in sorted(RULES_DIR.glob("*.yml"))]
    assert all(Path(f).is_absolute() for f in files)


def test_render_prometheus_config() -> None:
    config = yaml.safe_load(
        render_prometheus_config(
            "http://127.0.0.1:19091/",
            "127.0.0.1:19093",
            "127.0.0.1:18080",
            "1s",
            "2s",
            ["/abs/rules.yml"],
            prometheus="127.0.0.1:19090",
        )
    )
    assert config["global"]["scrape_interval"] == "1s"
    assert config["global"]["evaluation_interval"] == "2s"
    assert config["global"]["scrape_timeout"] == "1s"  # capped at the interval
    assert config["rule_files"] == ["/abs/rules.yml"]
    assert config["alerting"]["alertmanagers"] == [
        {"static_configs": [{"targets": ["127.0.0.1:19093"]}]}
    ]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["pushgateway"]["static_configs"] == [{"targets": ["127.0.0.1:19091"]}]
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["scholar-ops-health"]["static_configs"] == [{"targets": ["127.0.0.1:18080"]}]
    assert jobs["scholar-ops-health"]["metrics_path"] == "/metrics"
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:19090"]}]
    assert jobs["alertmanager"]["static_configs"] == [{"targets": ["127.0.0.1:19093"]}]
    # the rest is production's
    source = load_yaml(PROMETHEUS_YML)
    assert config["global"]["external_labels"] == source["global"]["external_labels"]


def test_render_prometheus_config_without_health_and_self_scrape() -> None:
    config = yaml.safe_load(
        render_prometheus_config("127.0.0.1:1", "127.0.0.1:2", None, "30s", "30s", [])
    )
    assert [j["job_name"] for j in config["scrape_configs"]] == ["pushgateway", "alertmanager"]
    assert config["global"]["scrape_timeout"] == "10s"  # shorter than the interval: kept


def test_render_prometheus_config_refuses_bad_durations() -> None:
    with pytest.raises(ValueError):
        render_prometheus_config("127.0.0.1:1", "127.0.0.1:2", None, "1 s", "1s", [])


def test_render_alertmanager_config() -> None:
    text = render_alertmanager_config(
        "127.0.0.1:2525",
        "http://127.0.0.1:8000/hook",
        "http://127.0.0.1:8001/slack",
        "1s",
        "2s",
        "3m",
    )
    config = yaml.safe_load(text)
    source = load_yaml(ALERTMANAGER_YML)
    glob = config["global"]
    assert glob["smtp_smarthost"] == "127.0.0.1:2525"
    assert glob["smtp_require_tls"] is False
    assert not any(k.startswith("smtp_auth") for k in glob)
    assert glob["smtp_from"] == source["global"]["smtp_from"]
    assert config["templates"] == [str(TEMPLATES_DIR / "*.tmpl")]

    route = config["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s",
        "2s",
        "3m",
    )
    assert all(r["repeat_interval"] == "3m" for r in route["routes"])
    assert route["group_by"] == source["route"]["group_by"]
    assert [r["matchers"] for r in route["routes"]] == [
        r["matchers"] for r in source["route"]["routes"]
    ]
    assert config["inhibit_rules"] == source["inhibit_rules"]

    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {r["name"] for r in source["receivers"]}
    for receiver in receivers.values():
        for hook in receiver.get("webhook_configs", []):
            assert hook["url"] == "http://127.0.0.1:8000/hook"
        for slack in receiver.get("slack_configs", []):
            assert slack["api_url"] == "http://127.0.0.1:8001/slack"
            assert "api_url_file" not in slack
    email = receivers["ops-critical"]["email_configs"][0]
    assert email == source["receivers"][0]["email_configs"][0]
    assert "/run/secrets" not in text


def test_render_prometheus_config_health_token_and_no_basic_auth() -> None:
    """The loopback servers run without authentication: production's basic auth is
    dropped; the health job sends the token file given (none without one)."""
    with_token = yaml.safe_load(
        render_prometheus_config(
            "127.0.0.1:1",
            "127.0.0.1:2",
            "127.0.0.1:3",
            "1s",
            "1s",
            [],
            prometheus="127.0.0.1:4",
            health_credentials_file=Path("/home/stack/secrets/health-token"),
        )
    )
    jobs = {j["job_name"]: j for j in with_token["scrape_configs"]}
    assert jobs["scholar-ops-health"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/home/stack/secrets/health-token",
    }
    assert not any("basic_auth" in j for j in jobs.values())
    assert not any("basic_auth" in m for m in with_token["alerting"]["alertmanagers"])
    without = yaml.safe_load(
        render_prometheus_config("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "1s", "1s", [])
    )
    assert all("authorization" not in j for j in without["scrape_configs"])
