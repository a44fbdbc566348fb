"""The monitoring service: the health router on its own (port 8080 by default).

    python -m scholar_ops.monitoring.health.service [--host 127.0.0.1] [--port 8080] [--config FILE]

Configuration: ``--config`` (or ``$SCHOLAR_OPS_HEALTH_CONFIG``) and the
``SCHOLAR_OPS_HEALTH_*`` environment variables (see monitoring/health/config.py).
SIGTERM and SIGINT stop it gracefully: it stops accepting connections, lets the
requests in flight finish (5 s at most) and exits 0. Prometheus
scrapes ``/metrics`` (job ``scholar-ops-health``) with the read token.

Access (monitoring/health/auth.py): every endpoint needs ``Authorization: Bearer
<token>`` (``SCHOLAR_OPS_HEALTH_TOKEN[_FILE]``, read role; the operator token too),
except two that tell nothing but a status:

- ``GET /livez``: ``{"status": "ok"}``, 200 while the process serves;
- ``GET /health``: ``{"status": "ok"}`` (200) or ``{"status": "fail"}`` (503), from the
  overall status of every check (unhealthy: fail), computed at most every
  :data:`SUMMARY_TTL` seconds whoever asks.

``python -m blocks.health --token-block NAME`` runs it with the tokens of Prefect Secret
blocks instead. Without any token configured the service refuses to start (exit 2), unless
``--no-auth`` says it is meant to be open (a development machine; logged).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from scholar_ops.monitoring.health.auth import AccessConfigError, AccessControl, Role
from scholar_ops.monitoring.health.checks import GROUPS, HealthService
from scholar_ops.monitoring.health.checks.result import Status
from scholar_ops.monitoring.health.config import ENV_CONFIG, HealthConfig, HealthConfigError
from scholar_ops.monitoring.health.router import health_router

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: seconds the unauthenticated ``/health`` summary is reused (callers cannot make the
#: service query the databases more often than this)
SUMMARY_TTL = 10.0
_NO_CACHE = {"Cache-Control": "no-store"}

log = logging.getLogger("scholar_ops.monitoring.health.service")


class _Summary:
    """The overall status as ok/fail, recomputed at most every ``ttl`` seconds."""

    def __init__(self, service: HealthService, ttl: float) -> None:
        self._service, self._ttl = service, ttl
        self._lock = threading.Lock()
        self._at: float | None = None
        self._ok = False

    def ok(self) -> bool:
        with self._lock:  # concurrent callers share one computation
            now = time.monotonic()
            if self._at is None or now - self._at >= self._ttl:
                self._ok = self._service.report("comprehensive").status is not Status.UNHEALTHY
                self._at = time.monotonic()
            return self._ok


def create_app(
    config: HealthConfig | HealthService,
    access: AccessControl | None,
    *,
    summary_ttl: float = SUMMARY_TTL,
) -> FastAPI:
    """The service's app: the health router and ``/`` (the catalog) behind ``access``
    (None: open), plus the two status-only endpoints open to anyone."""
    service = config if isinstance(config, HealthService) else HealthService.from_config(config)
    app = FastAPI(title="scholar-ops health", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(health_router(service, access=access))
    endpoints = [f"/health/{group}" for group in GROUPS] + ["/metrics"]
    checks = [
        {"name": c.name, "category": c.category, "timeout_s": c.timeout} for c in service.checks
    ]
    readers = [] if access is None else [Depends(access.require(Role.READ))]

    @app.get("/", dependencies=readers)
    def index() -> dict[str, Any]:
        return {"service": "scholar-ops health", "endpoints": endpoints, "checks": checks}

    @app.get("/livez")
    def livez() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers=_NO_CACHE)

    summary = _Summary(service, summary_ttl)

    @app.get("/health")
    def health() -> JSONResponse:
        ok = summary.ok()
        return JSONResponse(
            {"status": "ok" if ok else "fail"}, status_code=200 if ok else 503, headers=_NO_CACHE
        )

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
        "--no-auth",
        action="store_true",
        help="serve every endpoint without a token (development only; by default the "
        "service refuses to start without SCHOLAR_OPS_HEALTH_TOKEN[_FILE])",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, tokens: AccessControl | None = None) -> int:
    """Run the service; ``tokens`` (e.g. from Prefect Secret blocks, blocks/health.py)
    instead of the environment's."""
    args = _parse_args(argv)
    try:
        config = HealthConfig.load(args.config)
        if tokens is None:
            tokens = AccessControl.from_env()
    except (HealthConfigError, AccessConfigError) as e:
        print(f"scholar-ops health: {e}", file=sys.stderr)
        return 2
    access: AccessControl | None = tokens
    if args.no_auth:
        print("scholar-ops health: --no-auth: every endpoint is open to anyone", file=sys.stderr)
        access = None
    elif not tokens.enabled:
        print(
            "scholar-ops health: no access token: set SCHOLAR_OPS_HEALTH_TOKEN (or "
            "SCHOLAR_OPS_HEALTH_TOKEN_FILE), or give --no-auth to serve without one",
            file=sys.stderr,
        )
        return 2
    if config.chroma is not None and config.chroma.path is not None:
        # Importing chromadb takes seconds: not inside the first check's timeout.
        import chromadb  # noqa: F401

    import uvicorn

    app = create_app(config, access)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=5,
            lifespan="off",
            server_header=False,  # no "server: uvicorn" for anyone who asks
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
