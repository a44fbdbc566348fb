"""The ``chroma`` check: heartbeat and collection count of an embedded Chroma
directory or a Chroma server."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from scholar_ops.monitoring.health.checks.result import Check, CheckResult, Status
from scholar_ops.monitoring.health.checks.shared import latency_gate
from scholar_ops.redaction import redact_url


def chroma_check(
    *,
    path: str | Path | None = None,
    url: str | None = None,
    token: str | None = None,
    name: str = "chroma",
    timeout: float = 5.0,
    latency_degraded_ms: float | None = 2000.0,
    tenant: str = "default_tenant",
    database: str = "default_database",
) -> Check:
    """Heartbeat and collection count of an embedded directory (``path``, opened in
    this process) or a server (``url``, its HTTP API v2)."""
    if (path is None) == (url is None):
        raise ValueError("chroma_check: give either path or url")

    if path is not None:
        directory = Path(path)

        def run() -> CheckResult:
            from scholar_ops.sources.chroma.conninfo import ChromaSource

            details: dict[str, Any] = {"mode": "embedded", "target": str(directory)}
            if not directory.is_dir():
                return CheckResult(Status.UNHEALTHY, details, "the Chroma directory does not exist")
            client = ChromaSource.embedded(directory, tenant=tenant, database=database).client()
            client.heartbeat()
            details["collections"] = int(client.count_collections())
            return CheckResult(Status.HEALTHY, details)

        return Check(
            name,
            latency_gate(run, latency_degraded_ms),
            timeout,
            "database",
            details={"mode": "embedded", "target": str(directory)},
        )

    assert url is not None
    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def run_server() -> CheckResult:
        import httpx

        details: dict[str, Any] = {"mode": "server", "target": redact_url(base)}
        with httpx.Client(timeout=timeout, headers=headers, trust_env=False) as http:
            beat = http.get(f"{base}/api/v2/heartbeat")
            if beat.status_code != 200:
                return CheckResult(
                    Status.UNHEALTHY, details, f"heartbeat answered HTTP {beat.status_code}"
                )
            count = http.get(
                f"{base}/api/v2/tenants/{tenant}/databases/{database}/collections_count"
            )
            if count.status_code != 200:
                return CheckResult(
                    Status.UNHEALTHY,
                    details,
                    f"collections_count answered HTTP {count.status_code}",
                )
            details["collections"] = int(count.json())
        return CheckResult(Status.HEALTHY, details)

    parts = urlsplit(base)
    secrets = tuple(s for s in (token, parts.password and unquote(parts.password)) if s)
    return Check(
        name,
        latency_gate(run_server, latency_degraded_ms),
        timeout,
        "database",
        secrets,
        {"mode": "server", "target": redact_url(base)},
    )
