"""The ``postgres`` check: connect, ``SELECT 1``, then the connection count and the
database's size; degraded when connections near ``max_connections``."""

from __future__ import annotations

import math

from scholar_ops.monitoring.health.checks.result import Check, CheckResult, Status
from scholar_ops.monitoring.health.checks.shared import latency_gate, pct


def postgres_check(
    dsn: str,
    *,
    name: str = "postgres",
    timeout: float = 5.0,
    latency_degraded_ms: float | None = 1000.0,
    connections_degraded_ratio: float = 0.8,
) -> Check:
    """Connect, ``SELECT 1``, then the connection count and the database's size.

    Degraded when client connections exceed ``connections_degraded_ratio`` of
    ``max_connections``, or when slower than ``latency_degraded_ms``."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    password = params.get("password")
    # host:port/database: no user name (the report is read by monitoring, not by DBAs)
    target = (
        f"{params.get('host') or 'localhost'}:"
        f"{params.get('port') or 5432}/{params.get('dbname') or params.get('user') or '?'}"
    )

    def run() -> CheckResult:
        import psycopg

        with psycopg.connect(
            dsn,
            connect_timeout=max(2, math.ceil(timeout)),
            autocommit=True,
            application_name="scholar-ops-health",
        ) as conn:
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)", (f"{int(timeout * 1000)}ms",)
            )
            one = conn.execute("SELECT 1").fetchone()
            if one is None or one[0] != 1:
                return CheckResult(Status.UNHEALTHY, error="SELECT 1 did not return 1")
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pg_stat_activity"
                "         WHERE backend_type = 'client backend'),"
                "       current_setting('max_connections')::int,"
                "       pg_database_size(current_database()),"
                "       current_setting('server_version')"
            ).fetchone()
        assert row is not None
        connections, max_connections, size, version = int(row[0]), int(row[1]), int(row[2]), row[3]
        details = {
            "target": target,
            "server_version": str(version),
            "connections": connections,
            "max_connections": max_connections,
            "database_size_bytes": size,
        }
        ratio = connections / max_connections if max_connections else 0.0
        if ratio > connections_degraded_ratio:
            return CheckResult(
                Status.DEGRADED,
                details,
                f"{connections} of {max_connections} connections in use "
                f"(threshold {pct(connections_degraded_ratio)})",
            )
        return CheckResult(Status.HEALTHY, details)

    secrets = (dsn, password) if isinstance(password, str) and password else (dsn,)
    return Check(
        name,
        latency_gate(run, latency_degraded_ms),
        timeout,
        "database",
        secrets,
        {"target": target},
    )
