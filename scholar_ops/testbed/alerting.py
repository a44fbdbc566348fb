"""Local variants of the Prometheus and AlertManager configuration in docker/.

docker/prometheus/prometheus.yml and docker/alertmanager/alertmanager.yml describe the
compose stack (host names such as `pushgateway:9091`, secrets read from files). Tests and
local runs need the same configuration pointed at loopback services and sinks, with short
intervals: these functions load the files with yaml, rewrite only those fields and return
YAML text to write next to a throwaway Prometheus or AlertManager. Everything else (rules,
routes, grouping, inhibitions, receivers' templates) stays what production uses.

Plain Python, no Prefect import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from scholar_ops.project import project_root

DOCKER_DIR = project_root() / "docker"
PROMETHEUS_CONFIG = DOCKER_DIR / "prometheus" / "prometheus.yml"
PROMETHEUS_RULES_DIR = DOCKER_DIR / "prometheus" / "rules"
ALERTMANAGER_CONFIG = DOCKER_DIR / "alertmanager" / "alertmanager.yml"

# job_name of each scrape job in docker/prometheus/prometheus.yml
JOB_PUSHGATEWAY = "pushgateway"
JOB_HEALTH = "scholar-ops-health"
JOB_PROMETHEUS = "prometheus"
JOB_ALERTMANAGER = "alertmanager"

_SMTP_AUTH_KEYS = (
    "smtp_auth_username",
    "smtp_auth_password",
    "smtp_auth_password_file",
    "smtp_auth_secret",
    "smtp_auth_identity",
)
_EMAIL_AUTH_KEYS = (
    "auth_username",
    "auth_password",
    "auth_password_file",
    "auth_secret",
    "auth_identity",
)

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `15s`, `1h30m` or `500ms`."""
    text = text.strip()
    pos = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return seconds


def default_rule_files() -> list[str]:
    """Absolute paths of the alert rule files in docker/prometheus/rules/."""
    return [str(p) for p in sorted(PROMETHEUS_RULES_DIR.glob("*.yml"))]


def render_prometheus_config(
    pushgateway: str,
    alertmanager: str,
    health: str | None,
    scrape_interval: str,
    evaluation_interval: str,
    rule_files: list[str],
    *,
    prometheus: str | None = None,
    health_credentials_file: str | Path | None = None,
    source: Path = PROMETHEUS_CONFIG,
) -> str:
    """docker/prometheus/prometheus.yml with other targets, intervals and rule files.

    `pushgateway`, `alertmanager`, `health` and `prometheus` are `host:port` (a URL such
    as `http://127.0.0.1:9091` is accepted: its scheme and path are dropped). Without
    `health` the health service's scrape job is removed; without `prometheus` the
    self-scrape job is removed (a self-scrape of a port nobody listens on would be a
    target down, and so fire ScholarOpsServiceDown). The scrape timeout is capped at the
    scrape interval, as Prometheus requires. `rule_files` replaces the relative glob of
    the source file: give absolute paths (default_rule_files()).

    The loopback Prometheus, AlertManager and Pushgateway run without authentication:
    the source's ``basic_auth`` is dropped. The health service's job sends the bearer
    token of the file `health_credentials_file` (None: no token).
    """
    parse_duration(scrape_interval)
    parse_duration(evaluation_interval)
    config = _load(source)

    glob = _mapping(config.setdefault("global", {}), "global")
    glob["scrape_interval"] = scrape_interval
    glob["evaluation_interval"] = evaluation_interval
    timeout = glob.get("scrape_timeout")
    if not isinstance(timeout, str) or parse_duration(timeout) > parse_duration(scrape_interval):
        glob["scrape_timeout"] = scrape_interval

    config["rule_files"] = list(rule_files)

    alerting = _mapping(config.setdefault("alerting", {}), "alerting")
    alerting["alertmanagers"] = [{"static_configs": [{"targets": [_host_port(alertmanager)]}]}]

    targets = {
        JOB_PUSHGATEWAY: pushgateway,
        JOB_HEALTH: health,
        JOB_PROMETHEUS: prometheus,
        JOB_ALERTMANAGER: alertmanager,
    }
    jobs: list[dict[str, Any]] = []
    for job in _mappings(config.get("scrape_configs", []), "scrape_configs"):
        name = job.get("job_name")
        if name in targets:
            address = targets[str(name)]
            if address is None:
                continue
            job["static_configs"] = [{"targets": [_host_port(address)]}]
        job.pop("basic_auth", None)
        job.pop("authorization", None)
        if name == JOB_HEALTH and health_credentials_file is not None:
            job["authorization"] = {
                "type": "Bearer",
                "credentials_file": str(health_credentials_file),
            }
        # the global interval and timeout apply to every job
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
        jobs.append(job)
    config["scrape_configs"] = jobs
    return _dump(config)


def render_alertmanager_config(
    smtp_host_port: str,
    webhook_url: str,
    slack_url: str,
    group_wait: str,
    group_interval: str,
    repeat_interval: str,
    *,
    source: Path = ALERTMANAGER_CONFIG,
) -> str:
    """docker/alertmanager/alertmanager.yml pointed at local sinks, with other timings.

    Every email goes to `smtp_host_port` in plain SMTP without authentication, every Slack
    message to `slack_url` (instead of the URL file), every webhook to `webhook_url`.
    The root route and every sub-route that sets them get `group_wait`, `group_interval`
    and `repeat_interval`. Template paths become absolute (the rendered file lives
    elsewhere). Routes, grouping, inhibitions and templates are unchanged.
    """
    for duration in (group_wait, group_interval, repeat_interval):
        parse_duration(duration)
    config = _load(source)

    glob = _mapping(config.setdefault("global", {}), "global")
    glob["smtp_smarthost"] = smtp_host_port
    glob["smtp_require_tls"] = False
    for key in _SMTP_AUTH_KEYS:
        glob.pop(key, None)
    if "slack_api_url" in glob or "slack_api_url_file" in glob:
        glob.pop("slack_api_url_file", None)
        glob["slack_api_url"] = slack_url

    templates = config.get("templates") or []
    if not isinstance(templates, list):
        raise ValueError(f"{source}: templates is not a list")
    config["templates"] = [str((source.parent / str(t)).resolve()) for t in templates]

    root = _mapping(config.get("route"), "route")
    root["group_wait"] = group_wait
    root["group_interval"] = group_interval
    root["repeat_interval"] = repeat_interval
    for route in _subroutes(root):
        for key, value in (
            ("group_wait", group_wait),
            ("group_interval", group_interval),
            ("repeat_interval", repeat_interval),
        ):
            if key in route:
                route[key] = value

    for receiver in _mappings(config.get("receivers", []), "receivers"):
        for email in _mappings(receiver.get("email_configs", []), "email_configs"):
            for key in _EMAIL_AUTH_KEYS:
                email.pop(key, None)
            if "smarthost" in email:
                email["smarthost"] = smtp_host_port
            if "require_tls" in email:
                email["require_tls"] = False
            email.pop("tls_config", None)
        for slack in _mappings(receiver.get("slack_configs", []), "slack_configs"):
            slack.pop("api_url_file", None)
            slack["api_url"] = slack_url
        for hook in _mappings(receiver.get("webhook_configs", []), "webhook_configs"):
            hook.pop("url_file", None)
            hook["url"] = webhook_url
    return _dump(config)


def _load(path: Path) -> dict[str, Any]:
    return _mapping(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def _dump(config: dict[str, Any]) -> str:
    text: str = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=1000)
    return text


def _mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what}: expected a mapping, got {type(value).__name__}")
    return value


def _mappings(value: object, what: str) -> Iterable[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{what}: expected a list, got {type(value).__name__}")
    return [_mapping(item, what) for item in value]


def _subroutes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for child in _mappings(route.get("routes", []), "routes"):
        yield child
        yield from _subroutes(child)


def _host_port(address: str) -> str:
    """`host:port` of an address given as `host:port` or as a URL."""
    if "://" in address:
        netloc = urlsplit(address).netloc
        if not netloc:
            raise ValueError(f"no host in {address!r}")
        return netloc
    return address.rstrip("/")
