"""Where the files under test are, and small helpers shared by tests/docker/."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

import scholar_ops.monitoring.names as names

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
PROMETHEUS_DIR = DOCKER / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
ALERTMANAGER_DIR = DOCKER / "alertmanager"
ALERTMANAGER_YML = ALERTMANAGER_DIR / "alertmanager.yml"
TEMPLATES_DIR = ALERTMANAGER_DIR / "templates"
GRAFANA_DIR = DOCKER / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES_YML = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS_YML = GRAFANA_DIR / "provisioning" / "dashboards" / "scholar-ops.yml"
COMPOSE_YML = DOCKER / "docker-compose.yml"
METRICS_DOC = REPO / "docs" / "metrics.md"

PROMTOOL = "/usr/bin/promtool"
AMTOOL = "/usr/bin/amtool"

METRIC_NAME = re.compile(r"\bscholar_ops_\w+")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def contract_metric_names() -> set[str]:
    """Every metric name defined in scholar_ops/monitoring/names.py."""
    return {
        value
        for key, value in vars(names).items()
        if key.isupper()
        and isinstance(value, str)
        and value.startswith(names.PREFIX)
        and value != names.PREFIX
    }


def documented_alerts() -> list[str]:
    """Alert names of the table under '## Alerts' in docs/metrics.md."""
    text = METRICS_DOC.read_text(encoding="utf-8")
    section = text.split("## Alerts", 1)[1]
    return re.findall(r"^\| `(ScholarOps\w+)` \|", section, flags=re.MULTILINE)


def rules() -> list[dict[str, Any]]:
    """Every alerting rule of docker/prometheus/rules/*.yml."""
    out: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in load_yaml(path)["groups"]:
            out.extend(rule for rule in group["rules"] if "alert" in rule)
    return out


def run(
    cmd: list[str], *, cwd: Path = REPO, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a tool; the output is in the assertion message when it fails."""
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
