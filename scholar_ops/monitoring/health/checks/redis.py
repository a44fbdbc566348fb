"""The ``redis`` check: PING, then INFO (memory, clients, version); degraded when a
``maxmemory`` is set and nearly used up."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from scholar_ops.monitoring.health.checks.result import Check, CheckResult, Status
from scholar_ops.monitoring.health.checks.shared import latency_gate, pct


def _redis_target(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    db = parts.path.strip("/") or "0"
    tls = " (tls)" if parts.scheme == "rediss" else ""
    return f"{parts.hostname}:{parts.port or 6379}/{db}{tls}"


def redis_check(
    url: str,
    *,
    name: str = "redis",
    timeout: float = 3.0,
    latency_degraded_ms: float | None = 1000.0,
    memory_degraded_ratio: float = 0.9,
) -> Check:
    """PING, then INFO: used memory, clients, version. Degraded when a ``maxmemory`` is
    set and more than ``memory_degraded_ratio`` of it is used, or when slow."""
    target = _redis_target(url)
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else None

    def run() -> CheckResult:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
        )
        try:
            if not client.ping():
                return CheckResult(Status.UNHEALTHY, {"target": target}, "PING failed")
            info = client.info()
        finally:
            client.close()
        used = int(info.get("used_memory", 0))
        maxmemory = int(info.get("maxmemory", 0))
        details = {
            "target": target,
            "version": str(info.get("redis_version", "")),
            "role": str(info.get("role", "")),
            "used_memory_bytes": used,
            "maxmemory_bytes": maxmemory,
            "connected_clients": int(info.get("connected_clients", 0)),
        }
        if maxmemory and used / maxmemory > memory_degraded_ratio:
            return CheckResult(
                Status.DEGRADED,
                details,
                f"{pct(used / maxmemory)} of maxmemory used "
                f"(threshold {pct(memory_degraded_ratio)})",
            )
        return CheckResult(Status.HEALTHY, details)

    secrets = tuple(s for s in (url, password) if s)
    return Check(
        name,
        latency_gate(run, latency_degraded_ms),
        timeout,
        "database",
        secrets,
        {"target": target},
    )
