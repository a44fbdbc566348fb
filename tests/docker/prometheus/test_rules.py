"""docker/prometheus/rules/: promtool checks and unit tests, and the rules against the
contract (docs/metrics.md, scholar_ops/monitoring/names.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from scholar_ops.testbed.alerting import parse_duration
from tests.docker.paths import (
    METRIC_NAME,
    PROMTOOL,
    RULE_TESTS_DIR,
    RULES_DIR,
    contract_metric_names,
    documented_alerts,
    explain,
    load_yaml,
    rules,
    run,
)

SEVERITIES = {"critical", "warning", "info"}

# What each alert is about: the labels its summary or description must name.
IDENTIFYING = {
    "ScholarOpsBackupFailed": ["component", "target"],
    "ScholarOpsRepositoryFull": ["component", "target"],
    "ScholarOpsBackupFallbackUsed": ["component", "target"],
    "ScholarOpsBackupStale": ["component", "target"],
    "ScholarOpsBackupNeverReported": ["component", "target"],
    "ScholarOpsBackupSizeAnomaly": ["component", "target"],
    "ScholarOpsRestoreDrillFailed": ["component", "target"],
    "ScholarOpsTestSuiteFailures": ["suite"],
    "ScholarOpsTestSuiteNotRun": ["suite", "target", "reason"],
    "ScholarOpsHealthCheckFailing": ["service"],
    "ScholarOpsServiceDown": ["service"],
    "ScholarOpsHighLatency": ["service", "endpoint"],
    "ScholarOpsDiskAlmostFull": ["mountpoint"],
    "ScholarOpsPushgatewayPushFailures": ["job"],
    "ScholarOpsMetricsExportStale": ["instance"],
    "ScholarOpsRecoveryPointTooOld": ["component", "target"],
    "ScholarOpsWalArchiveFailing": ["component", "target"],
    "ScholarOpsAuditRollback": ["repository", "repo_id"],
}

# `for` of the alerts whose duration docs/metrics.md states.
CONTRACT_FOR = {
    "ScholarOpsBackupFailed": 0,
    "ScholarOpsHealthCheckFailing": 300,
    "ScholarOpsServiceDown": 60,
    "ScholarOpsHighLatency": 300,
    "ScholarOpsDiskAlmostFull": 600,
}


def _rule(name: str) -> dict[str, Any]:
    found = [r for r in rules() if r["alert"] == name]
    assert len(found) == 1, f"{name}: {len(found)} rules"
    return found[0]


def test_promtool_check_rules() -> None:
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    assert files
    result = run([PROMTOOL, "check", "rules", *files])
    assert result.returncode == 0, explain(result)


def test_promtool_unit_tests() -> None:
    files = sorted(str(p) for p in RULE_TESTS_DIR.glob("*.yml"))
    assert files
    result = run([PROMTOOL, "test", "rules", *files])
    assert result.returncode == 0, explain(result)
    assert result.stdout.count("SUCCESS") == len(files), explain(result)


def test_every_documented_alert_has_a_rule_and_no_other() -> None:
    documented = documented_alerts()
    assert len(documented) == 18, documented
    assert sorted({r["alert"] for r in rules()}) == sorted(documented)
    assert sorted(IDENTIFYING) == sorted(documented)


def test_every_metric_name_in_rules_is_in_names() -> None:
    used = {name for rule in rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert used, "no scholar_ops_ metric in the rules?"
    assert used - contract_metric_names() == set()


@pytest.mark.parametrize("name", sorted(IDENTIFYING))
def test_labels_and_annotations(name: str) -> None:
    rule = _rule(name)
    assert rule["labels"]["severity"] in SEVERITIES
    # the identifying labels come from the series; a rule adds only the severity (never
    # an error message or another unbounded value)
    assert set(rule["labels"]) == {"severity"}
    annotations = rule["annotations"]
    assert {"summary", "description"} <= set(annotations)
    text = annotations["summary"] + " " + annotations["description"]
    for label in IDENTIFYING[name]:
        assert f"$labels.{label}" in text, f"{name} does not name its {label}"


def test_backup_failed_fires_at_once_and_points_at_prefect() -> None:
    rule = _rule("ScholarOpsBackupFailed")
    assert parse_duration(rule.get("for", "0s")) == 0
    assert rule["labels"]["severity"] == "critical"
    assert re.sub(r"\s+", " ", rule["expr"]).strip() == "scholar_ops_backup_last_status == 0"
    description = rule["annotations"]["description"]
    assert "backup of {{ $labels.component }}/{{ $labels.target }} failed" in description
    assert "Prefect run history" in description


def test_backup_stale_is_a_warning_under_backup_failed() -> None:
    # AlertManager inhibits the warning BackupStale with a critical BackupFailed
    assert _rule("ScholarOpsBackupStale")["labels"]["severity"] == "warning"
    assert _rule("ScholarOpsBackupNeverReported")["expr"].split() == [
        "scholar_ops_backup_expected_interval_seconds",
        "unless",
        "on(component,",
        "target)",
        "scholar_ops_backup_last_success_timestamp_seconds",
    ]


@pytest.mark.parametrize(("name", "seconds"), sorted(CONTRACT_FOR.items()))
def test_for_durations_of_the_contract(name: str, seconds: int) -> None:
    assert parse_duration(_rule(name).get("for", "0s")) == seconds


def test_every_rule_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in sorted(RULE_TESTS_DIR.glob("*.yml")):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    every = set(IDENTIFYING)
    assert every - firing == set(), "no test where these fire"
    assert every - silent == set(), "no test where these stay silent"
