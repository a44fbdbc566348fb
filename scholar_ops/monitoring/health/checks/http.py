"""HTTP endpoint checks (backend, frontend, any other service): GET a URL, healthy on
2xx unless its JSON body reports otherwise."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote, urlsplit

from scholar_ops.monitoring.health.checks.result import Check, CheckResult, Status
from scholar_ops.monitoring.health.checks.shared import latency_gate
from scholar_ops.redaction import redact_url


def http_check(
    name: str,
    url: str,
    *,
    timeout: float = 5.0,
    latency_degraded_ms: float | None = 1000.0,
    category: str = "service",
) -> Check:
    """GET ``url`` (redirects followed): healthy on 2xx, unhealthy otherwise; degraded
    when slower than ``latency_degraded_ms``, or when a JSON body says
    ``"status": "degraded"`` (``"unhealthy"``: unhealthy)."""
    shown = redact_url(url)
    parts = urlsplit(url)

    def run() -> CheckResult:
        import httpx

        with httpx.Client(timeout=timeout, follow_redirects=True, trust_env=False) as http:
            t0 = time.monotonic()
            response = http.get(url, headers={"User-Agent": "scholar-ops-health"})
            elapsed = (time.monotonic() - t0) * 1000.0
        details = {
            "url": shown,
            "status_code": response.status_code,
            "response_ms": round(elapsed, 1),
        }
        if not response.is_success:
            return CheckResult(Status.UNHEALTHY, details, f"HTTP {response.status_code}")
        reported = _reported_status(response)
        if reported is not None and reported is not Status.HEALTHY:
            return CheckResult(reported, details, f"the endpoint reports {reported.value}")
        return CheckResult(Status.HEALTHY, details)

    secrets = tuple(
        s for s in (parts.password and unquote(parts.password), parts.password, parts.query) if s
    )
    return Check(
        name, latency_gate(run, latency_degraded_ms), timeout, category, secrets, {"url": shown}
    )


def _reported_status(response: Any) -> Status | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("status") if isinstance(body, dict) else None
    if isinstance(value, str) and value.lower() in ("degraded", "unhealthy"):
        return Status(value.lower())
    return None
