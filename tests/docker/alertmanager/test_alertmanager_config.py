"""docker/alertmanager/: amtool accepts the configuration (as shipped and as rendered for
local sinks), routes each severity to its receivers, the templates list every alert, and
a real AlertManager inhibits and groups as intended."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from scholar_ops.testbed.alerting import render_alertmanager_config
from tests.docker.paths import (
    ALERTMANAGER_YML,
    AMTOOL,
    TEMPLATES_DIR,
    explain,
    load_yaml,
    run,
)
from tests.fixtures.prometheus import RunningServer, ServerFactory


def _receivers() -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in load_yaml(ALERTMANAGER_YML)["receivers"]}


def _integrations(receiver: dict[str, Any]) -> set[str]:
    return {
        key.removesuffix("_configs")
        for key, value in receiver.items()
        if value and key.endswith("_configs")
    }


def test_amtool_check_config_as_shipped() -> None:
    result = run([AMTOOL, "check-config", str(ALERTMANAGER_YML)])
    assert result.returncode == 0, explain(result)
    assert "1 templates" in result.stdout, explain(result)


def test_amtool_check_config_rendered(tmp_path: Path) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        render_alertmanager_config(
            "127.0.0.1:2525",
            "http://127.0.0.1:9/hook",
            "http://127.0.0.1:9/slack",
            "1s",
            "1s",
            "1m",
        )
    )
    result = run([AMTOOL, "check-config", str(config)])
    assert result.returncode == 0, explain(result)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            ["severity=critical", "alertname=ScholarOpsBackupFailed", "component=postgres"],
            "ops-critical",
        ),
        (["severity=critical", "alertname=ScholarOpsServiceDown", "service=redis"], "ops-critical"),
        (["severity=warning", "alertname=ScholarOpsBackupStale", "component=redis"], "ops-warning"),
        (["severity=warning", "alertname=ScholarOpsHighLatency", "endpoint=search"], "ops-warning"),
        (["severity=info", "alertname=ScholarOpsSomethingToKnow"], "ops-info"),
        # no severity: a mistake, still seen (Slack + webhook)
        (["alertname=Unlabelled"], "ops-warning"),
    ],
)
def test_routes(labels: list[str], receiver: str) -> None:
    result = run(
        [
            AMTOOL,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_YML}",
            f"--verify.receivers={receiver}",
            *labels,
        ]
    )
    assert result.returncode == 0, explain(result)


def test_receivers_by_severity() -> None:
    receivers = _receivers()
    assert _integrations(receivers["ops-critical"]) == {"email", "slack", "webhook"}
    assert _integrations(receivers["ops-warning"]) == {"slack", "webhook"}
    assert _integrations(receivers["ops-info"]) == {"webhook"}
    email = receivers["ops-critical"]["email_configs"][0]
    assert email["to"].startswith("ops@")
    assert "scholar_ops.email.subject" in email["headers"]["Subject"]
    for receiver in receivers.values():
        for slack in receiver.get("slack_configs", []):
            assert slack["channel"].startswith("#")


def test_route_timings_and_grouping() -> None:
    route = load_yaml(ALERTMANAGER_YML)["route"]
    assert route["group_by"] == ["alertname", "component"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "30s",
        "5m",
        "4h",
    )
    repeat = {
        r["receiver"]: r.get("repeat_interval", route["repeat_interval"]) for r in route["routes"]
    }
    assert repeat == {"ops-critical": "1h", "ops-warning": "4h", "ops-info": "4h"}
    for sub in route["routes"]:
        assert "group_by" not in sub  # inherited: alert storms stay bounded everywhere


def test_inhibit_rules() -> None:
    rules = load_yaml(ALERTMANAGER_YML)["inhibit_rules"]
    assert {
        "source_matchers": ['alertname="ScholarOpsServiceDown"'],
        "target_matchers": ['alertname=~"ScholarOpsHighLatency|ScholarOpsHealthCheckFailing"'],
        "equal": ["service"],
    } in rules
    assert {
        "source_matchers": ['alertname="ScholarOpsBackupFailed"', 'severity="critical"'],
        "target_matchers": ['alertname="ScholarOpsBackupStale"', 'severity="warning"'],
        "equal": ["component", "target"],
    } in rules


def test_no_secret_in_the_file() -> None:
    config = load_yaml(ALERTMANAGER_YML)
    text = ALERTMANAGER_YML.read_text()
    assert "smtp_auth_password" not in config["global"]
    assert config["global"]["smtp_auth_password_file"].startswith("/run/secrets/")
    for receiver in config["receivers"]:
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack
            assert slack["api_url_file"].startswith("/run/secrets/")
    assert "hooks.slack.com" not in text


# -- templates --------------------------------------------------------------------


def _alert(status: str, labels: dict[str, str], summary: str, description: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": summary, "description": description},
        "startsAt": "2024-05-01T02:00:00Z",
        "endsAt": "2024-05-01T03:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
    }


TEMPLATE_DATA = {
    "receiver": "ops-critical",
    "status": "firing",
    "externalURL": "http://alertmanager:9093",
    "groupLabels": {"alertname": "ScholarOpsBackupFailed", "component": "postgres"},
    "commonLabels": {"alertname": "ScholarOpsBackupFailed", "component": "postgres"},
    "commonAnnotations": {},
    "alerts": [
        _alert(
            "firing",
            {
                "alertname": "ScholarOpsBackupFailed",
                "severity": "critical",
                "component": "postgres",
                "target": "aischolar-main",
            },
            "Backup of postgres/aischolar-main failed",
            "The last backup of postgres/aischolar-main failed. <see Prefect>",
        ),
        _alert(
            "firing",
            {
                "alertname": "ScholarOpsBackupFailed",
                "severity": "critical",
                "component": "postgres",
                "target": "aischolar-analytics",
            },
            "Backup of postgres/aischolar-analytics failed",
            "The last backup of postgres/aischolar-analytics failed.",
        ),
        _alert(
            "resolved",
            {
                "alertname": "ScholarOpsBackupFailed",
                "severity": "critical",
                "component": "postgres",
                "target": "aischolar-old",
            },
            "Backup of postgres/aischolar-old failed",
            "The last backup of postgres/aischolar-old failed.",
        ),
    ],
}


def _render(tmp_path: Path, template: str, kind: str = "text") -> str:
    data = tmp_path / "data.json"
    data.write_text(json.dumps(TEMPLATE_DATA))
    result = run(
        [
            AMTOOL,
            "template",
            "render",
            f"--template.glob={TEMPLATES_DIR}/*.tmpl",
            f'--template.text={{{{ template "{template}" . }}}}',
            f"--template.data={data}",
            f"--template.type={kind}",
        ]
    )
    assert result.returncode == 0, explain(result)
    return result.stdout


def test_email_subject(tmp_path: Path) -> None:
    subject = _render(tmp_path, "scholar_ops.email.subject").strip()
    assert "\n" not in subject
    assert subject.startswith("[FIRING:2] ScholarOpsBackupFailed (postgres):")
    for target in ("aischolar-main", "aischolar-analytics", "aischolar-old"):
        assert f"postgres/{target}" in subject


@pytest.mark.parametrize(
    ("template", "kind"), [("scholar_ops.email.text", "text"), ("scholar_ops.email.html", "html")]
)
def test_email_body_lists_every_alert(tmp_path: Path, template: str, kind: str) -> None:
    body = _render(tmp_path, template, kind)
    for alert in TEMPLATE_DATA["alerts"]:
        assert isinstance(alert, dict)
        assert alert["labels"]["component"] in body
        assert alert["labels"]["target"] in body
        assert alert["annotations"]["summary"] in body
        description = alert["annotations"]["description"]
        if kind == "html":
            description = description.replace("<", "&lt;").replace(">", "&gt;")
        assert description in body
    assert "Prefect run history" in body


def test_slack_text_lists_every_alert(tmp_path: Path) -> None:
    text = _render(tmp_path, "scholar_ops.slack.text")
    assert text.count("*postgres/aischolar-") == 3
    assert (
        _render(tmp_path, "scholar_ops.slack.title").strip()
        == "[FIRING:2] ScholarOpsBackupFailed (postgres)"
    )


# -- a real AlertManager ----------------------------------------------------------------


@pytest.fixture(scope="module")
def alertmanager(alertmanager_factory: ServerFactory) -> RunningServer:
    # nothing listens on port 9: with a one-hour group_wait no notification is due anyway
    config = render_alertmanager_config(
        "127.0.0.1:9", "http://127.0.0.1:9/hook", "http://127.0.0.1:9/slack", "1h", "1h", "4h"
    )
    return alertmanager_factory(config)


def _post(am: RunningServer, alerts: list[dict[str, str]]) -> None:
    now = datetime.now(UTC).isoformat()
    payload = [
        {"labels": labels, "annotations": {"summary": "s", "description": "d"}, "startsAt": now}
        for labels in alerts
    ]
    httpx.post(f"{am.url}/api/v2/alerts", json=payload, timeout=30).raise_for_status()


def _alerts(am: RunningServer, **filters: str) -> list[dict[str, Any]]:
    matchers = [f'{k}="{v}"' for k, v in filters.items()]
    response = httpx.get(f"{am.url}/api/v2/alerts", params={"filter": matchers}, timeout=30)
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


def _inhibited(am: RunningServer, **labels: str) -> bool:
    found = _alerts(am, **labels)
    assert len(found) == 1, found
    return bool(found[0]["status"]["inhibitedBy"])


def test_service_down_inhibits_latency_and_health_of_the_same_service(
    alertmanager: RunningServer,
) -> None:
    _post(
        alertmanager,
        [
            {
                "alertname": "ScholarOpsServiceDown",
                "severity": "critical",
                "service": "inh-postgres",
            },
            {
                "alertname": "ScholarOpsHighLatency",
                "severity": "warning",
                "service": "inh-postgres",
            },
            {
                "alertname": "ScholarOpsHealthCheckFailing",
                "severity": "warning",
                "service": "inh-postgres",
            },
            {"alertname": "ScholarOpsHighLatency", "severity": "warning", "service": "inh-redis"},
            {"alertname": "ScholarOpsHighLatency", "severity": "warning", "endpoint": "inh-search"},
        ],
    )
    assert _inhibited(alertmanager, alertname="ScholarOpsHighLatency", service="inh-postgres")
    assert _inhibited(
        alertmanager, alertname="ScholarOpsHealthCheckFailing", service="inh-postgres"
    )
    assert not _inhibited(alertmanager, alertname="ScholarOpsServiceDown", service="inh-postgres")
    assert not _inhibited(alertmanager, alertname="ScholarOpsHighLatency", service="inh-redis")
    assert not _inhibited(alertmanager, alertname="ScholarOpsHighLatency", endpoint="inh-search")


def test_backup_failed_inhibits_stale_of_the_same_target(alertmanager: RunningServer) -> None:
    _post(
        alertmanager,
        [
            {
                "alertname": "ScholarOpsBackupFailed",
                "severity": "critical",
                "component": "redis",
                "target": "inh-a",
            },
            {
                "alertname": "ScholarOpsBackupStale",
                "severity": "warning",
                "component": "redis",
                "target": "inh-a",
            },
            {
                "alertname": "ScholarOpsBackupStale",
                "severity": "warning",
                "component": "redis",
                "target": "inh-b",
            },
        ],
    )
    assert _inhibited(alertmanager, alertname="ScholarOpsBackupStale", target="inh-a")
    assert not _inhibited(alertmanager, alertname="ScholarOpsBackupStale", target="inh-b")
    assert not _inhibited(alertmanager, alertname="ScholarOpsBackupFailed", target="inh-a")


def test_an_alert_storm_makes_one_group_per_receiver(alertmanager: RunningServer) -> None:
    # 1,000 failing targets of one component: one group (so one notification per
    # integration of ops-critical), not 1,000
    _post(
        alertmanager,
        [
            {
                "alertname": "ScholarOpsBackupFailed",
                "severity": "critical",
                "component": "chroma",
                "target": f"storm-{i:04d}",
            }
            for i in range(1000)
        ],
    )
    response = httpx.get(f"{alertmanager.url}/api/v2/alerts/groups", timeout=30)
    response.raise_for_status()
    groups = [
        g
        for g in response.json()
        if g["labels"] == {"alertname": "ScholarOpsBackupFailed", "component": "chroma"}
    ]
    assert len(groups) == 1
    assert groups[0]["receiver"]["name"] == "ops-critical"
    assert len(groups[0]["alerts"]) == 1000
