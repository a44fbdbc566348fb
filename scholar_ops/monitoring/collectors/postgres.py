"""A PostgreSQL database: connections by state, size, the oldest open transaction, replication lag.

Connections and transactions are those of the target's database (``pg_stat_activity``
rows with ``datname = current_database()``), this collector's own session left out.
A role sees other roles' ``state`` and ``xact_start`` only with ``pg_read_all_stats``
(or as a superuser); give the monitoring role that grant. Replication lag comes from
``pg_stat_replication`` (a primary with streaming replicas), one sample per replica.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import Sample, counter, gauge
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
# Where archive_mode is on: the archiver's counters and times, and how many finished WAL
# segments wait for it (the segment being written is not counted). pg_stat_archiver and
# pg_current_wal_lsn() are readable by any role.
_ARCHIVER = """
SELECT a.archived_count, a.failed_count,
       coalesce(extract(epoch FROM a.last_archived_time), 0)::float8,
       coalesce(extract(epoch FROM a.last_failed_time), 0)::float8,
       a.last_archived_wal,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END,
       extract(epoch FROM clock_timestamp())::float8,
       current_setting('wal_segment_size')
FROM pg_stat_archiver a
WHERE current_setting('archive_mode') <> 'off'
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
        samples += _archiver(conn, labels)
        replicas: set[str] = set()
        for replica, lag in conn.execute(_REPLICATION).fetchall():
            name = str(replica)
            if name in replicas:
                continue
            replicas.add(name)
            samples.append(gauge(names.PG_REPLICATION_LAG, float(lag), {**labels, "replica": name}))
    return samples


def _segment_number(walfile: str, segment_bytes: int) -> int | None:
    """The absolute segment number of a WAL file name (timeline ignored)."""
    if len(walfile) < 24 or not all(c in "0123456789ABCDEF" for c in walfile[:24]):
        return None
    per_log = 0x100000000 // segment_bytes
    return int(walfile[8:16], 16) * per_log + int(walfile[16:24], 16)


def _size_bytes(setting: str) -> int:
    units = {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    for unit, factor in units.items():
        if setting.endswith(unit):
            return int(setting[: -len(unit)]) * factor
    return int(setting)


def _archiver(conn: psycopg.Connection[Any], labels: dict[str, str]) -> list[Sample]:
    """WAL archiving figures; none where archive_mode is off."""
    row = conn.execute(_ARCHIVER).fetchone()
    if row is None:
        return []
    archived, failed, last_ok, last_failed, last_wal, current_wal, now, segsize = row
    samples = [
        counter(names.PG_WAL_ARCHIVED, int(archived), labels),
        counter(names.PG_WAL_ARCHIVE_FAILED, int(failed), labels),
        gauge(names.PG_WAL_LAST_ARCHIVED, float(last_ok), labels),
        gauge(names.PG_WAL_LAST_FAILED, float(last_failed), labels),
    ]
    if last_ok:
        samples.append(gauge(names.PG_RECOVERY_POINT_AGE, max(0.0, float(now) - last_ok), labels))
    if current_wal is not None:
        seg = _size_bytes(str(segsize))
        cur = _segment_number(str(current_wal), seg)
        done = _segment_number(str(last_wal), seg) if last_wal else None
        if cur is not None:
            # finished segments not archived yet (the one being written does not count);
            # before the first success only "some" (1) when archiving has failed
            pending = cur - done - 1 if done is not None else (1 if int(failed) else 0)
            samples.append(gauge(names.PG_WAL_PENDING, max(0, pending), labels))
    return samples
