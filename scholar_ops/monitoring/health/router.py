"""The health endpoints as a FastAPI router, for the monitoring service or any app.

The AI Scholar backend mounts it next to its own routes::

    from scholar_ops.monitoring.health.config import HealthConfig
    from scholar_ops.monitoring.health.router import health_router
    app.include_router(health_router(HealthConfig.load()))

Endpoints (JSON ``{"status", "timestamp", "duration_ms", "checks": {name: {status,
latency_ms, details, error}}}``; HTTP 200 when healthy or degraded, 503 when
unhealthy):

- ``GET /health/comprehensive``: every check;
- ``GET /health/database``: postgres, redis, chroma;
- ``GET /health/services``: the HTTP services (backend, frontend, ...);
- ``GET /health/performance``: system and disk, plus ``latency_ms`` of the others;
- ``GET /metrics``: Prometheus exposition of ``scholar_ops_health_check_status``,
  ``scholar_ops_health_check_duration_seconds`` (label ``service``) and
  ``scholar_ops_health_overall_status``, computed on each scrape from a registry
  of its own (``metrics_path=None`` leaves it out, e.g. when the app already
  serves a ``/metrics``).

Mounted in the backend itself, leave the ``backend`` check out (it would ask the
app about itself).

``access`` (an :class:`~scholar_ops.monitoring.health.auth.AccessControl`) puts every
endpoint behind a bearer token with the read role (401/403 otherwise); without it the
router is open and the app mounting it decides who reaches it. The standalone service
(``service.py``) always passes one.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scholar_ops.monitoring.health.auth import AccessControl, Role
from scholar_ops.monitoring.health.checks import GROUPS, HealthService
from scholar_ops.monitoring.health.config import HealthConfig
from scholar_ops.monitoring.names import HEALTH_DURATION, HEALTH_OVERALL, HEALTH_STATUS

_NO_CACHE = {"Cache-Control": "no-store"}


class HealthCollector(Collector):
    """Runs every check on each collection (each scrape) and exposes the health metrics."""

    def __init__(self, service: HealthService) -> None:
        self._service = service

    def collect(self) -> Iterable[Metric]:
        report = self._service.report("comprehensive")
        status = GaugeMetricFamily(
            HEALTH_STATUS,
            "Health check status: 1 healthy, 0.5 degraded, 0 unhealthy.",
            labels=["service"],
        )
        duration = GaugeMetricFamily(
            HEALTH_DURATION,
            "How long the health check took, timeouts included.",
            labels=["service"],
        )
        for name, result in report.checks.items():
            status.add_metric([name], result.status.score)
            duration.add_metric([name], result.latency_ms / 1000.0)
        overall = GaugeMetricFamily(
            HEALTH_OVERALL,
            "The worst of the health checks: 1 healthy, 0.5 degraded, 0 unhealthy.",
            value=report.status.score,
        )
        return [status, duration, overall]


def health_registry(service: HealthService) -> CollectorRegistry:
    """A registry of its own holding only the health metrics of ``service``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(service))
    return registry


def health_router(
    config: HealthConfig | HealthService,
    *,
    metrics_path: str | None = "/metrics",
    access: AccessControl | None = None,
) -> APIRouter:
    """The endpoints above for ``config`` (or a ready :class:`HealthService`); with
    ``access``, each needs a token with the read role."""
    service = config if isinstance(config, HealthService) else HealthService.from_config(config)
    dependencies = [] if access is None else [Depends(access.require(Role.READ))]
    router = APIRouter(tags=["health"], dependencies=dependencies)

    # Plain `def` endpoints: FastAPI runs them in its thread pool, so the blocking
    # wait on the check threads never holds the event loop.
    def endpoint(group: str) -> None:
        def handler() -> JSONResponse:
            report = service.report(group)
            return JSONResponse(report.to_dict(), status_code=report.http_status, headers=_NO_CACHE)

        handler.__name__ = f"health_{group}"
        router.add_api_route(
            f"/health/{group}",
            handler,
            methods=["GET"],
            summary=f"Health: {group}",
            response_class=JSONResponse,
            responses={503: {"description": "at least one check is unhealthy"}},
        )

    for group in GROUPS:
        endpoint(group)

    if metrics_path is not None:
        registry = health_registry(service)

        def metrics() -> Response:
            return Response(
                generate_latest(registry),
                headers={"Content-Type": CONTENT_TYPE_LATEST, **_NO_CACHE},
            )

        router.add_api_route(
            metrics_path, metrics, methods=["GET"], summary="Prometheus metrics of the checks"
        )
    return router
