"""The monitoring service: the health router on its own (port 8080 by default).

    python -m scholar_ops.monitoring.health.service [--host 127.0.0.1] [--port 8080] [--config FILE]

Configuration: ``--config`` (or ``$SCHOLAR_OPS_HEALTH_CONFIG``) and the
``SCHOLAR_OPS_HEALTH_*`` environment variables (see monitoring/health/config.py).
SIGTERM and SIGINT stop it gracefully: it stops accepting connections, lets the
requests in flight finish (5 s at most) and exits 0. Prometheus
scrapes ``/metrics`` (job ``scholar-ops-health``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from fastapi import FastAPI

from scholar_ops.monitoring.health.checks import GROUPS, HealthService
from scholar_ops.monitoring.health.config import ENV_CONFIG, HealthConfig, HealthConfigError
from scholar_ops.monitoring.health.router import health_router

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

log = logging.getLogger("scholar_ops.monitoring.health.service")


def create_app(config: HealthConfig | HealthService) -> FastAPI:
    """The service's app: the health router, plus ``/`` listing the endpoints."""
    service = config if isinstance(config, HealthService) else HealthService.from_config(config)
    app = FastAPI(title="scholar-ops health", docs_url=None, redoc_url=None)
    app.include_router(health_router(service))
    endpoints = [f"/health/{group}" for group in GROUPS] + ["/metrics"]
    checks = [
        {"name": c.name, "category": c.category, "timeout_s": c.timeout} for c in service.checks
    ]

    @app.get("/")
    def index() -> dict[str, Any]:
        return {"service": "scholar-ops health", "endpoints": endpoints, "checks": checks}

    return app


def _after_shutdown(signum: int, frame: FrameType | None) -> None:
    log.info("stopped on signal %s", signal.Signals(signum).name)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scholar_ops.monitoring.health.service",
        description="scholar-ops health service: /health/* endpoints and /metrics",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--config", default=None, help=f"YAML config file (default: ${ENV_CONFIG}, or none)"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        config = HealthConfig.load(args.config)
    except HealthConfigError as e:
        print(f"scholar-ops health: {e}", file=sys.stderr)
        return 2
    if config.chroma is not None and config.chroma.path is not None:
        # Importing chromadb takes seconds: not inside the first check's timeout.
        import chromadb  # noqa: F401

    import uvicorn

    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=5,
            lifespan="off",
        )
    )
    # uvicorn catches SIGTERM/SIGINT during run(): it stops accepting, finishes the
    # requests in flight, then re-raises the signal with the handlers it found. A
    # handler that ignores them here makes that a normal return: exit code 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_shutdown)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
