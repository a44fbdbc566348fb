"""docker/docker-compose.yml and docker/worker.Dockerfile, checked by parsing (no Docker
engine here): the stack has its services, mounts files that exist, and agrees with the
Prometheus, AlertManager and Grafana configuration."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from tests.docker.paths import (
    ALERTMANAGER_YML,
    COMPOSE_YML,
    DASHBOARD_PROVIDERS_YML,
    DATASOURCES_YML,
    DOCKER,
    PROMETHEUS_YML,
    REPO,
    load_yaml,
)

SERVICES = {
    "prefect-server",
    "prefect-worker",
    "monitoring-service",
    "pushgateway",
    "prometheus",
    "alertmanager",
    "grafana",
}


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = load_yaml(COMPOSE_YML)
    return compose


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"][name]
    return service


def _mounts(name: str) -> dict[str, str]:
    """container path -> host path (bind mounts and named volumes)."""
    out = {}
    for volume in _service(name).get("volumes", []):
        source, target = volume.split(":")[:2]
        out[target] = source
    return out


def _published(name: str) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in _service(name).get("ports", [])}


def test_services() -> None:
    assert set(_compose()["services"]) == SERVICES


def test_ports() -> None:
    assert _published("monitoring-service") == {8080}
    assert _published("pushgateway") == {9091}
    assert _published("prometheus") == {9090}
    assert _published("alertmanager") == {9093}
    assert _published("grafana") == {3000}
    assert _published("prefect-server") == {4200}


def test_bind_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source}"
            else:
                assert source in _compose()["volumes"], f"{name}: volume {source}"


def test_prometheus_and_alertmanager_read_these_files() -> None:
    assert _mounts("prometheus")["/etc/prometheus"] == "./prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in _service("prometheus")["command"]
    assert _mounts("alertmanager")["/etc/alertmanager"] == "./alertmanager"
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in _service("alertmanager")["command"]
    assert PROMETHEUS_YML.parent == DOCKER / "prometheus"
    assert ALERTMANAGER_YML.parent == DOCKER / "alertmanager"


def test_prometheus_targets_are_compose_services() -> None:
    config = load_yaml(PROMETHEUS_YML)
    services = _compose()["services"]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                if host == "localhost":
                    continue
                assert host in services, f"{job['job_name']}: {target}"
                assert int(port) in _published(host)


def test_alertmanager_secrets_are_mounted() -> None:
    compose = _compose()
    mounted = {f"/run/secrets/{s}" for s in _service("alertmanager")["secrets"]}
    text = ALERTMANAGER_YML.read_text()
    for path in re.findall(r"/run/secrets/\w+", text):
        assert path in mounted
        assert path.rsplit("/", 1)[1] in compose["secrets"]


def test_grafana_provisioning() -> None:
    mounts = _mounts("grafana")
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    dashboards_path = load_yaml(DASHBOARD_PROVIDERS_YML)["providers"][0]["options"]["path"]
    assert mounts[dashboards_path] == "./grafana/dashboards"
    (source,) = load_yaml(DATASOURCES_YML)["datasources"]
    assert source["url"] == "http://prometheus:9090"
    home = _service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards_path + "/")
    assert (DOCKER / "grafana" / "dashboards" / home.rsplit("/", 1)[1]).exists()


def test_worker_and_health_service() -> None:
    worker = _service("prefect-worker")
    assert worker["command"][:3] == ["prefect", "worker", "start"]
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    pool = worker["command"][worker["command"].index("--pool") + 1]
    assert (
        pool == load_yaml(REPO / "deployments.yaml")["definitions"]["work_pools"]["backups"]["name"]
    )
    health = _service("monitoring-service")
    assert health["command"][:3] == ["python", "-m", "scholar_ops.monitoring.health.service"]
    assert health["command"][health["command"].index("--port") + 1] == "8080"
    assert (REPO / "scholar_ops" / "monitoring" / "health" / "service.py").exists()


def test_image_holds_every_package() -> None:
    build = _service("prefect-worker")["build"]
    dockerfile = (DOCKER / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile.exists()
    copied = set(re.findall(r"^COPY (\S+) \./", dockerfile.read_text(), flags=re.MULTILINE))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= copied
    # and the Prefect project the deployments run from
    assert {"blocks", "tasks", "flows", "deployments.yaml"} <= copied | set(
        re.findall(r"^COPY (?:\S+ )*(deployments\.yaml)", dockerfile.read_text(), re.MULTILINE)
    )
