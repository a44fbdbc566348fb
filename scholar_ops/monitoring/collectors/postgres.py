"""A PostgreSQL database: connections by state, size, the oldest open transaction, replication lag.

Connections and transactions are those of the target's database (``pg_stat_activity``
rows with ``datname = current_database()``), this collector's own session left out.
A role sees other roles' ``state`` and ``xact_start`` only with ``pg_read_all_stats``
(or as a superuser); give the monitoring role that grant. Replication lag comes from
``pg_stat_replication`` (a primary with streaming replicas), one sample per replica.
"""

from __future__ import annotations

import math

import psycopg

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import Sample, gauge
from scholar_ops.sources.postgres.conninfo import PgConnInfo

#: States always reported (0 when there is none), so a dashboard's series never vanish.
STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")

_CONNECTIONS = """
SELECT coalesce(state, 'unknown'), count(*)
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
GROUP BY 1
"""
_LONGEST_TX = """
SELECT coalesce(extract(epoch FROM clock_timestamp() - min(xact_start)), 0)::float8
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
"""
_REPLICATION = """
SELECT coalesce(nullif(application_name, ''), host(client_addr), pid::text),
       coalesce(extract(epoch FROM replay_lag), 0)::float8
FROM pg_stat_replication
"""


def collect_postgres(
    conninfo: PgConnInfo, labels: dict[str, str], timeout: float = 10.0
) -> list[Sample]:
    """Samples of one database; ``labels`` (component, target) go on every sample.

    Connects with ``connect_timeout`` and runs every statement under
    ``statement_timeout`` (both from ``timeout``); raises ``psycopg.Error`` when the
    database cannot be reached.
    """
    kwargs = conninfo.connect_kwargs()
    kwargs["connect_timeout"] = max(2, math.ceil(min(timeout, conninfo.connect_timeout)))
    kwargs["options"] = f"-c statement_timeout={max(1, int(timeout * 1000))}"
    kwargs["application_name"] = "scholar-ops-metrics"
    samples: list[Sample] = [gauge(names.DATABASE_UP, 1, labels)]
    with psycopg.connect(**kwargs, autocommit=True) as conn:
        counts = {state: 0 for state in STATES}
        for state, count in conn.execute(_CONNECTIONS).fetchall():
            counts[str(state)] = int(count)
        samples += [
            gauge(names.PG_CONNECTIONS, n, {**labels, "state": state})
            for state, n in counts.items()
        ]
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        samples.append(gauge(names.PG_DATABASE_SIZE, int(row[0]) if row else 0, labels))
        row = conn.execute(_LONGEST_TX).fetchone()
        samples.append(gauge(names.PG_LONGEST_TX, max(0.0, float(row[0])) if row else 0.0, labels))
        replicas: set[str] = set()
        for replica, lag in conn.execute(_REPLICATION).fetchall():
            name = str(replica)
            if name in replicas:
                continue
            replicas.add(name)
            samples.append(gauge(names.PG_REPLICATION_LAG, float(lag), {**labels, "replica": name}))
    return samples
