"""Sample series for every metric of the contract, served in the text exposition format.

A throwaway Prometheus scrapes `SampleExporter` as it would scrape the Pushgateway
(honor_labels: the `job` labels are the ones docs/metrics.md gives), so dashboard queries
and alert rules run against series shaped like production's. Timestamps are computed at
each scrape; counters grow with time (rate() has something to show).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scholar_ops.monitoring import names as n

# component -> target; redis's last backup and drill failed
BACKUP_TARGETS = {
    "postgres": "aischolar-postgres",
    "redis": "aischolar-redis",
    "chroma": "aischolar-chroma",
    "files": "aischolar-uploads",
}
FAILED_COMPONENT = "redis"
HOST = "db-host"


def _line(name: str, labels: dict[str, str], value: float) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{body}}} {value}"


def exposition(now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines: list[str] = []

    def add(name: str, labels: dict[str, str], value: float) -> None:
        lines.append(_line(name, labels, value))

    for component, target in BACKUP_TARGETS.items():
        ok = component != FAILED_COMPONENT
        lb = {"job": n.JOB_BACKUP, "component": component, "target": target}
        add(n.BACKUP_LAST_RUN, lb, now - 600)
        add(n.BACKUP_LAST_STATUS, lb, 1 if ok else 0)
        add(n.BACKUP_LAST_SUCCESS, lb, now - (600 if ok else 7200))
        add(n.BACKUP_LAST_FAILURE, lb, now - (86400 if ok else 600))
        add(n.BACKUP_DURATION, lb, 120)
        add(n.BACKUP_SIZE, lb, 2_000_000_000)
        add(n.BACKUP_NEW, lb, 50_000_000)
        add(n.BACKUP_STORED, lb, 20_000_000)
        add(n.BACKUP_DEDUP, lb, 100)
        add(n.BACKUP_SNAPSHOTS, lb, 42)
        add(n.BACKUP_NEWEST_AGE, lb, 600)
        add(n.BACKUP_EXPECTED_INTERVAL, lb, 3600)
        add(n.BACKUP_FALLBACK_USED, lb, 1 if component == "files" else 0)
        add("push_time_seconds", lb, now - 600)
        add("push_failure_time_seconds", lb, 0)

        dl = {"job": n.JOB_DRILL, "component": component, "target": target}
        add(n.DRILL_LAST_RUN, dl, now - 3600)
        add(n.DRILL_LAST_STATUS, dl, 1 if ok else 0)
        add(n.DRILL_LAST_SUCCESS, dl, now - (3600 if ok else 8 * 86400))
        add(n.DRILL_DURATION, dl, 300)

    for suite, failed in (("api", 0), ("database", 0), ("ui", 2)):
        tl = {"job": n.JOB_TESTS, "suite": suite}
        add(n.TEST_LAST_RUN, tl, now - 1800)
        add(n.TEST_LAST_STATUS, tl, 0 if failed else 1)
        add(n.TEST_TESTS, tl, 40)
        add(n.TEST_FAILED, tl, failed)
        add(n.TEST_DURATION, tl, 95.5)
    add(n.TEST_HEALTH_SCORE, {"job": n.JOB_TESTS, "suite": "all", "target": "aischolar"}, 47.5)

    for destination, ok in (("scholar-ops-offsite", True), ("scholar-ops-s3-copy", False)):
        cl = {"job": n.JOB_COPY, "destination": destination}
        add(n.COPY_LAST_RUN, cl, now - 900)
        add(n.COPY_LAST_STATUS, cl, 1 if ok else 0)
        add(n.COPY_LAST_SUCCESS, cl, now - (900 if ok else 90000))
        add(n.COPY_BYTES, cl, 30_000_000)
    aud = {"job": n.JOB_AUDIT, "repo_id": "0123456789abcdef"}
    add(n.AUDIT_TIP_SEQUENCE, aud, 1234)
    add(n.AUDIT_TIP_INFO, {**aud, "hash": "fedcba9876543210"}, 1)

    sl = {"job": n.JOB_SYSTEM, "instance": HOST}
    add(n.SYSTEM_CPU, sl, 0.25)
    add(n.SYSTEM_LOAD1, sl, 0.7)
    add(n.SYSTEM_MEMORY_USED, sl, 6e9)
    add(n.SYSTEM_MEMORY_TOTAL, sl, 16e9)
    for mountpoint, used in (("/", 40e9), ("/var/lib/postgresql", 180e9)):
        add(n.SYSTEM_DISK_USED, {**sl, "mountpoint": mountpoint}, used)
        add(n.SYSTEM_DISK_TOTAL, {**sl, "mountpoint": mountpoint}, 200e9)
    add(n.SYSTEM_NET_RECEIVED, {**sl, "interface": "eth0"}, round(now * 1000))
    add(n.SYSTEM_NET_SENT, {**sl, "interface": "eth0"}, round(now * 400))

    def db(component: str) -> dict[str, str]:
        return {"job": n.JOB_DATABASES, "component": component, "target": BACKUP_TARGETS[component]}

    for component in ("postgres", "redis", "chroma"):
        add(n.DATABASE_UP, db(component), 1)
    for state, count in (("active", 3), ("idle", 12)):
        add(n.PG_CONNECTIONS, {**db("postgres"), "state": state}, count)
    add(n.PG_DATABASE_SIZE, db("postgres"), 1.5e9)
    add(n.PG_LONGEST_TX, db("postgres"), 0)
    add(n.PG_REPLICATION_LAG, {**db("postgres"), "replica": "replica-1"}, 0.2)
    add(n.PG_WAL_ARCHIVED, db("postgres"), round(now / 60))
    add(n.PG_WAL_ARCHIVE_FAILED, db("postgres"), 2)
    add(n.PG_WAL_LAST_ARCHIVED, db("postgres"), now - 30)
    add(n.PG_WAL_LAST_FAILED, db("postgres"), now - 86400)
    add(n.PG_WAL_PENDING, db("postgres"), 0)
    add(n.PG_RECOVERY_POINT_AGE, db("postgres"), 30)
    add(n.REDIS_MEMORY, db("redis"), 300e6)
    add(n.REDIS_CLIENTS, db("redis"), 8)
    add(n.REDIS_COMMANDS, db("redis"), round(now * 50))
    add(n.REDIS_LAST_SAVE, db("redis"), now - 300)
    for dbname, keys in (("db0", 1200), ("db1", 80)):
        add(n.REDIS_KEYS, {**db("redis"), "db": dbname}, keys)
    add(n.CHROMA_COLLECTIONS, db("chroma"), 2)
    for collection, records in (("papers", 5000), ("chunks", 90000)):
        add(n.CHROMA_RECORDS, {**db("chroma"), "collection": collection}, records)

    for endpoint, latency in (("search", 0.3), ("health", 0.01)):
        al = {"job": n.JOB_APP, "endpoint": endpoint}
        add(n.APP_UP, al, 1)
        add(n.APP_RESPONSE, al, latency)

    for service, status in (("postgres", 1), ("redis", 1), ("backend", 0.5)):
        hl = {"job": n.JOB_HEALTH, "instance": "monitoring-service:8080", "service": service}
        add(n.HEALTH_STATUS, hl, status)
        add(n.HEALTH_DURATION, hl, 0.05)
    add(n.HEALTH_OVERALL, {"job": n.JOB_HEALTH, "instance": "monitoring-service:8080"}, 0.5)

    el = {"job": n.JOB_EXPORT, "instance": HOST}
    add(n.EXPORT_LAST_SUCCESS, el, now - 30)
    add(n.EXPORT_DURATION, el, 2.5)
    for collector in ("system", "postgres", "redis", "chroma", "app", "backups"):
        add(n.COLLECTOR_UP, {**el, "collector": collector}, 1)
    add("push_time_seconds", el, now - 30)
    add("push_failure_time_seconds", el, 0)
    return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@contextmanager
def sample_exporter() -> Iterator[str]:
    """Serve exposition() on a free loopback port; yields host:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, name="sample-exporter", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
