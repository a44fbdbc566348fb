"""The checks a :class:`HealthConfig` turns on, built from its settings, each also
given every secret of the configuration to scrub."""

from __future__ import annotations

from dataclasses import replace

from scholar_ops.monitoring.health.checks.backups import backups_check
from scholar_ops.monitoring.health.checks.chroma import chroma_check
from scholar_ops.monitoring.health.checks.http import http_check
from scholar_ops.monitoring.health.checks.postgres import postgres_check
from scholar_ops.monitoring.health.checks.redis import redis_check
from scholar_ops.monitoring.health.checks.result import Check
from scholar_ops.monitoring.health.checks.system import disk_check, system_check
from scholar_ops.monitoring.health.config import HealthConfig


def checks_from_config(config: HealthConfig) -> list[Check]:
    """The checks ``config`` turns on, in a stable order."""
    checks: list[Check] = []
    if config.postgres is not None:
        pg = config.postgres
        checks.append(
            postgres_check(
                pg.dsn,
                timeout=pg.timeout,
                latency_degraded_ms=pg.latency_degraded_ms,
                connections_degraded_ratio=pg.connections_degraded_ratio,
            )
        )
    if config.redis is not None:
        rd = config.redis
        checks.append(
            redis_check(
                rd.url,
                timeout=rd.timeout,
                latency_degraded_ms=rd.latency_degraded_ms,
                memory_degraded_ratio=rd.memory_degraded_ratio,
            )
        )
    if config.chroma is not None:
        ch = config.chroma
        checks.append(
            chroma_check(
                path=ch.path,
                url=ch.url,
                token=ch.token,
                timeout=ch.timeout,
                latency_degraded_ms=ch.latency_degraded_ms,
            )
        )
    endpoints = {"backend": config.backend, "frontend": config.frontend, **config.endpoints}
    for name, http in endpoints.items():
        if http is not None:
            checks.append(
                http_check(
                    name,
                    http.url,
                    timeout=http.timeout,
                    latency_degraded_ms=http.latency_degraded_ms,
                )
            )
    if config.disk is not None:
        dk = config.disk
        checks.append(
            disk_check(
                dk.paths,
                degraded_ratio=dk.degraded_ratio,
                unhealthy_ratio=dk.unhealthy_ratio,
                timeout=dk.timeout,
            )
        )
    if config.system is not None:
        sy = config.system
        checks.append(
            system_check(
                cpu_degraded_ratio=sy.cpu_degraded_ratio,
                memory_degraded_ratio=sy.memory_degraded_ratio,
                memory_unhealthy_ratio=sy.memory_unhealthy_ratio,
                timeout=sy.timeout,
            )
        )
    if config.backups is not None:
        bk = config.backups
        checks.append(
            backups_check(
                bk.status_file,
                max_age_seconds=bk.max_age_seconds,
                components=bk.components or None,
                timeout=bk.timeout,
            )
        )
    secrets = config.secrets()
    return [replace(c, secrets=tuple(dict.fromkeys((*c.secrets, *secrets)))) for c in checks]
