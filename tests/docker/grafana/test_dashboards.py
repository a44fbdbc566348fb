"""docker/grafana/: provisioning files, dashboards' structure, and every panel query run
by a real Prometheus that scrapes sample series of the whole contract."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scholar_ops.testbed.alerting import default_rule_files, render_prometheus_config
from tests.docker.paths import (
    DASHBOARD_PROVIDERS_YML,
    DASHBOARDS_DIR,
    DATASOURCES_YML,
    METRIC_NAME,
    contract_metric_names,
    load_yaml,
)
from tests.docker.samples import BACKUP_TARGETS, FAILED_COMPONENT, sample_exporter
from tests.fixtures.prometheus import RunningServer, ServerFactory

DASHBOARDS = ("backups", "drills", "tests", "system")
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$([A-Za-z_]\w*)")
LABEL_VALUES = re.compile(r"^label_values\((?:(.*),\s*)?(\w+)\)$")


def _datasource_uid() -> str:
    sources = load_yaml(DATASOURCES_YML)["datasources"]
    assert len(sources) == 1
    assert sources[0]["type"] == "prometheus"
    uid: str = sources[0]["uid"]
    return uid


def _dashboard(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((DASHBOARDS_DIR / f"{name}.json").read_text())
    return board


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def _targets(board: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in _panels(board):
        for target in panel.get("targets", []):
            yield panel["title"], target


def _variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board.get("templating", {}).get("list", [])}


def _substitute(expr: str, variables: dict[str, dict[str, Any]]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in GRAFANA_INTERVALS:
            return GRAFANA_INTERVALS[name]
        assert name in variables, f"undefined variable ${name} in {expr}"
        return ".*"

    return VARIABLE.sub(one, expr)


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    text: str = query["query"] if isinstance(query, dict) else query
    return text


# -- files --------------------------------------------------------------------------


def test_datasource_provisioning() -> None:
    config = load_yaml(DATASOURCES_YML)
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert source["access"] == "proxy"
    assert source["isDefault"] is True


def test_dashboard_provisioning() -> None:
    config = load_yaml(DASHBOARD_PROVIDERS_YML)
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


def test_the_dashboards_are_there() -> None:
    assert sorted(p.stem for p in DASHBOARDS_DIR.glob("*.json")) == sorted(DASHBOARDS)
    uids = [_dashboard(name)["uid"] for name in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_structure(name: str) -> None:
    board = _dashboard(name)
    uid = _datasource_uid()
    assert board["title"] and board["uid"]
    ids = [p["id"] for p in _panels(board)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    queried = 0
    for panel in _panels(board):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert target["expr"].strip()
            queried += 1
    assert queried >= 8
    for variable in _variables(board).values():
        assert variable["datasource"]["uid"] == uid
        assert LABEL_VALUES.match(_variable_query(variable)), variable


def test_backup_dashboard_has_what_operators_look_for() -> None:
    board = _dashboard("backups")
    assert {"component", "target"} <= set(_variables(board))
    exprs = " ".join(t["expr"] for _, t in _targets(board))
    for metric in (
        "scholar_ops_backup_last_success_timestamp_seconds",
        "scholar_ops_backup_last_status",
        "scholar_ops_backup_size_bytes",
        "scholar_ops_backup_new_bytes",
        "scholar_ops_backup_stored_bytes",
        "scholar_ops_backup_dedup_ratio",
        "scholar_ops_backup_snapshots",
        "scholar_ops_backup_duration_seconds",
    ):
        assert metric in exprs


def test_every_metric_name_in_dashboards_is_in_names() -> None:
    used = {
        name
        for board in DASHBOARDS
        for _, target in _targets(_dashboard(board))
        for name in METRIC_NAME.findall(target["expr"])
    }
    assert used - contract_metric_names() == set()
    # and the dashboards show the whole contract
    assert contract_metric_names() - used == set()


# -- a real Prometheus ----------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(prometheus_factory: ServerFactory) -> Iterator[RunningServer]:
    """Prometheus with the production rules, scraping the sample series every second in
    place of the Pushgateway (honor_labels, as in production)."""
    with sample_exporter() as exporter:
        config = render_prometheus_config(
            exporter,
            "127.0.0.1:9",  # no AlertManager: the rules are evaluated all the same
            None,
            "1s",
            "1s",
            default_rule_files(),
        )
        server = prometheus_factory(config)
        try:
            # rate() needs two scrapes in its window. (Prometheus starts scraping about 5 s
            # after it starts: the scrape manager's first target update.)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                result = server.api("query", query='count_over_time(up{job="pushgateway"}[1m])')
                if result["result"] and float(result["result"][0]["value"][1]) >= 2:
                    break
                time.sleep(0.2)
            else:
                pytest.fail(f"no scrape of the sample series\n{server.log_tail()}")
            yield server
        finally:
            server.stop()


# Queries that may rightly return nothing on the samples (nothing firing yet, say).
MAY_BE_EMPTY = re.compile(r"\bALERTS\b")


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_query_runs(prometheus: RunningServer, name: str) -> None:
    board = _dashboard(name)
    variables = _variables(board)
    empty = []
    for title, target in _targets(board):
        expr = _substitute(target["expr"], variables)
        data = prometheus.api("query", query=expr)  # raises on any error status
        if not data["result"] and not MAY_BE_EMPTY.search(expr):
            empty.append(f"{title}: {expr}")
    assert empty == [], "queries without a result on the sample series"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_variable_query_runs(prometheus: RunningServer, name: str) -> None:
    board = _dashboard(name)
    variables = _variables(board)
    for variable in variables.values():
        match = LABEL_VALUES.match(_variable_query(variable))
        assert match is not None
        selector, label = match.group(1), match.group(2)
        params: dict[str, Any] = {}
        if selector:
            params["match[]"] = _substitute(selector, variables)
        values = prometheus.api(f"label/{label}/values", **params)
        assert values, f"{variable['name']}: no values for {label}"


def test_backup_failed_fires_on_a_real_prometheus(prometheus: RunningServer) -> None:
    """The rules load and evaluate on a real Prometheus: BackupFailed has no `for`."""
    deadline = time.monotonic() + 20
    firing: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        firing = prometheus.api(
            "query", query='ALERTS{alertname="ScholarOpsBackupFailed", alertstate="firing"}'
        )["result"]
        if firing:
            break
        time.sleep(0.2)
    assert [a["metric"]["target"] for a in firing] == [BACKUP_TARGETS[FAILED_COMPONENT]]
    groups = prometheus.api("rules")["groups"]
    assert all(g["file"] in default_rule_files() for g in groups)
    assert {r["name"] for g in groups for r in g["rules"]} >= {"ScholarOpsBackupFailed"}
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), groups


def test_the_rendered_config_is_what_prometheus_runs(prometheus: RunningServer) -> None:
    loaded = prometheus.api("status/config")["yaml"]
    assert "honor_labels: true" in loaded
    assert Path(prometheus.config_path).read_text().count("job_name") == 2
