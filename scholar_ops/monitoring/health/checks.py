"""Health checks of the AI Scholar stack, run concurrently, each within its own timeout.

A check is a name, a callable returning a :class:`CheckResult`, a timeout and a
category. :class:`HealthService` runs the checks of a group in threads and waits
for each one until its own deadline: a check still running then is reported
``unhealthy`` ("timed out after N s") and the report goes out on time, so one
slow dependency never stalls an endpoint. The thread it leaves behind is not
restarted while it runs: later reports join it (one run per check at a time), so
a hung dependency costs one thread, not one per request. Every check also hands
its timeout to the client library it uses, so that thread ends soon after.

Categories and the groups (the endpoints of the original design):

- ``comprehensive``: every check;
- ``database``: category ``database`` (postgres, redis, chroma);
- ``services``: category ``service`` (backend, frontend, other HTTP services,
  and checks added without a category);
- ``performance``: category ``system`` (system, disk) in full, plus the latency
  of every other check (``latency_ms``); degraded when one of them is slower
  than the performance threshold, whatever their own status.

``backups`` (category ``backup``) appears in ``comprehensive`` only.

The overall status is the worst of the checks. Errors are one line, cut short,
and scrubbed of every secret the check was given (passwords, DSNs, tokens) and
of any URL's password.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from scholar_ops.monitoring.health.config import HealthConfig
from scholar_ops.redaction import redact_url

GROUPS = ("comprehensive", "database", "services", "performance")
CATEGORIES = ("database", "service", "system", "backup")
_GROUP_CATEGORY = {"database": "database", "services": "service", "performance": "system"}
_MAX_ERROR = 240


class Status(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def score(self) -> float:
        """The metric value: 1 healthy, 0.5 degraded, 0 unhealthy."""
        return _SCORE[self]


_SCORE = {Status.HEALTHY: 1.0, Status.DEGRADED: 0.5, Status.UNHEALTHY: 0.0}


def worst(statuses: Iterable[Status]) -> Status:
    """The worst status; healthy when there is none."""
    return min(statuses, key=lambda s: _SCORE[s], default=Status.HEALTHY)


@dataclass(frozen=True)
class CheckResult:
    """What a check found. A check's callable may leave ``name`` and ``latency_ms``
    alone: the runner fills them in (the latency is the time the callable took)."""

    status: Status
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None  # one line: why it is not healthy
    name: str = ""
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "latency_ms": round(self.latency_ms, 1),
            "details": dict(self.details),
            "error": self.error,
        }


CheckFn = Callable[[], CheckResult]


@dataclass(frozen=True)
class Check:
    """``fn`` returns a result or raises (an exception is ``unhealthy``, its message the
    error). ``secrets`` are scrubbed from the error and the details; ``details``
    (what is checked, e.g. ``{"target": "host:port"}``) go into every result, also
    when the check fails or times out."""

    name: str
    fn: CheckFn = field(repr=False)
    timeout: float = 5.0
    category: str = "service"
    secrets: tuple[str, ...] = field(default=(), repr=False)
    details: Mapping[str, Any] = field(default_factory=dict)  # in every result (the target)

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", self.name):
            raise ValueError(f"bad check name {self.name!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"check {self.name}: timeout must be > 0, not {self.timeout}")
        if self.category not in CATEGORIES:
            raise ValueError(
                f"check {self.name}: category must be one of {', '.join(CATEGORIES)}, "
                f"not {self.category!r}"
            )


@dataclass(frozen=True)
class HealthReport:
    group: str
    status: Status
    timestamp: float  # Unix time at the start
    duration_ms: float
    checks: Mapping[str, CheckResult]
    latency_ms: Mapping[str, float] | None = None  # the performance group: other checks' latency

    @property
    def http_status(self) -> int:
        return 503 if self.status is Status.UNHEALTHY else 200

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "status": self.status.value,
            "timestamp": datetime.fromtimestamp(self.timestamp, UTC).isoformat(
                timespec="milliseconds"
            ),
            "duration_ms": round(self.duration_ms, 1),
            "checks": {name: r.to_dict() for name, r in self.checks.items()},
        }
        if self.latency_ms is not None:
            doc["latency_ms"] = {k: round(v, 1) for k, v in self.latency_ms.items()}
        return doc


# -- running ------------------------------------------------------------------------------


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    future: Future[CheckResult] | None = None
    started: float = 0.0


class HealthService:
    """Runs checks concurrently; thread-safe (reports may overlap)."""

    def __init__(
        self, checks: Iterable[Check], *, performance_latency_degraded_ms: float = 1000.0
    ) -> None:
        self._checks: dict[str, Check] = {}
        for check in checks:
            if check.name in self._checks:
                raise ValueError(f"two checks are named {check.name!r}")
            self._checks[check.name] = check
        self._slots = {name: _Slot() for name in self._checks}
        self.performance_latency_degraded_ms = performance_latency_degraded_ms

    @classmethod
    def from_config(cls, config: HealthConfig) -> HealthService:
        return cls(
            checks_from_config(config),
            performance_latency_degraded_ms=config.performance_latency_degraded_ms,
        )

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(self._checks.values())

    def names(self, group: str = "comprehensive") -> list[str]:
        """The checks a group's report shows."""
        if group == "comprehensive":
            return list(self._checks)
        if group not in _GROUP_CATEGORY:
            raise ValueError(f"unknown group {group!r} (known: {', '.join(GROUPS)})")
        return [c.name for c in self._checks.values() if c.category == _GROUP_CATEGORY[group]]

    def run(self, names: Collection[str] | None = None) -> dict[str, CheckResult]:
        """Run ``names`` (default: every check) concurrently; returns within the largest
        of their timeouts (plus scheduling), in the order of the checks."""
        selected = [c for c in self._checks.values() if names is None or c.name in names]
        if names is not None:
            unknown = set(names) - set(self._checks)
            if unknown:
                raise ValueError(f"unknown checks: {', '.join(sorted(unknown))}")
        pending = [(check, *self._start(check)) for check in selected]
        results: dict[str, CheckResult] = {}
        for check, future, started in pending:
            remaining = started + check.timeout - time.monotonic()
            try:
                result = future.result(timeout=max(0.0, remaining))
            except FutureTimeout:
                result = None
            # A run that ended past its deadline (its client library's own timeout, or
            # an earlier run joined late) reads the same as one still going.
            if result is None or result.latency_ms > check.timeout * 1000.0:
                result = _sanitize(
                    CheckResult(
                        name=check.name,
                        status=Status.UNHEALTHY,
                        details=check.details,
                        latency_ms=check.timeout * 1000.0,
                        error=f"timed out after {check.timeout:g} s",
                    ),
                    check.secrets,
                )
            results[check.name] = result
        return results

    def report(self, group: str = "comprehensive") -> HealthReport:
        shown = self.names(group)
        timestamp = time.time()
        t0 = time.monotonic()
        to_run = list(self._checks) if group == "performance" else shown
        results = self.run(to_run)
        duration_ms = (time.monotonic() - t0) * 1000.0
        checks = {name: results[name] for name in shown}
        if group != "performance":
            return HealthReport(
                group, worst(r.status for r in checks.values()), timestamp, duration_ms, checks
            )
        others = {n: r.latency_ms for n, r in results.items() if n not in checks}
        status = worst(r.status for r in checks.values())
        if any(ms > self.performance_latency_degraded_ms for ms in others.values()):
            status = worst([status, Status.DEGRADED])
        return HealthReport(group, status, timestamp, duration_ms, checks, latency_ms=others)

    def _start(self, check: Check) -> tuple[Future[CheckResult], float]:
        """The check's current run, started now unless one is still going."""
        slot = self._slots[check.name]
        with slot.lock:
            if slot.future is None or slot.future.done():
                future: Future[CheckResult] = Future()
                slot.future, slot.started = future, time.monotonic()
                threading.Thread(
                    target=_execute,
                    args=(check, future, slot.started),
                    name=f"health-check-{check.name}",
                    daemon=True,
                ).start()
            return slot.future, slot.started


def _execute(check: Check, future: Future[CheckResult], started: float) -> None:
    result: CheckResult | None = None
    try:
        result = check.fn()
        if not isinstance(result, CheckResult):
            raise TypeError(f"the check returned {type(result).__name__}, not a CheckResult")
    except Exception as e:
        result = CheckResult(status=Status.UNHEALTHY, error=_describe_error(e))
    finally:
        if result is None:  # BaseException: the thread is going away
            result = CheckResult(status=Status.UNHEALTHY, error="the check was interrupted")
        latency_ms = (time.monotonic() - started) * 1000.0
        result = replace(
            result,
            name=check.name,
            latency_ms=latency_ms,
            details={**check.details, **result.details},
        )
        future.set_result(_sanitize(result, check.secrets))


def _describe_error(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


_URL_PASSWORD = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*):[^/@\s]*@")
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|token)\s*[=:]\s*('[^']*'|\"[^\"]*\"|\S+)")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets, URL passwords and ``password=...`` masked."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\g<pre>:***@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)


def one_line(text: str, limit: int = _MAX_ERROR) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _sanitize(result: CheckResult, secrets: Sequence[str]) -> CheckResult:
    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value, secrets)
        if isinstance(value, Mapping):
            return {scrub(str(k), secrets): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    error = None if result.error is None else one_line(scrub(result.error, secrets))
    return replace(result, details=clean(result.details), error=error)


# -- helpers for check functions ------------------------------------------------------------


def _latency_gate(fn: CheckFn, latency_degraded_ms: float | None) -> CheckFn:
    """``fn``, degraded when healthy but slower than ``latency_degraded_ms``."""
    if latency_degraded_ms is None:
        return fn

    def gated() -> CheckResult:
        t0 = time.monotonic()
        result = fn()
        elapsed = (time.monotonic() - t0) * 1000.0
        if result.status is Status.HEALTHY and elapsed > latency_degraded_ms:
            return replace(
                result,
                status=Status.DEGRADED,
                error=f"slow: {elapsed:.0f} ms (threshold {latency_degraded_ms:g} ms)",
            )
        return result

    return gated


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


# -- postgres -------------------------------------------------------------------------------


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
    target = (
        f"{params.get('user') or '?'}@{params.get('host') or 'localhost'}:"
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
                f"(threshold {_pct(connections_degraded_ratio)})",
            )
        return CheckResult(Status.HEALTHY, details)

    secrets = (dsn, password) if isinstance(password, str) and password else (dsn,)
    return Check(
        name,
        _latency_gate(run, latency_degraded_ms),
        timeout,
        "database",
        secrets,
        {"target": target},
    )


# -- redis ------------------------------------------------------------------------------------


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
                f"{_pct(used / maxmemory)} of maxmemory used "
                f"(threshold {_pct(memory_degraded_ratio)})",
            )
        return CheckResult(Status.HEALTHY, details)

    secrets = tuple(s for s in (url, password) if s)
    return Check(
        name,
        _latency_gate(run, latency_degraded_ms),
        timeout,
        "database",
        secrets,
        {"target": target},
    )


# -- chroma -----------------------------------------------------------------------------------


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
            _latency_gate(run, latency_degraded_ms),
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
        _latency_gate(run_server, latency_degraded_ms),
        timeout,
        "database",
        secrets,
        {"mode": "server", "target": redact_url(base)},
    )


# -- HTTP endpoints -------------------------------------------------------------------------------


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
        name, _latency_gate(run, latency_degraded_ms), timeout, category, secrets, {"url": shown}
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


# -- disk and system -------------------------------------------------------------------------


def disk_check(
    paths: Sequence[str | Path],
    *,
    name: str = "disk",
    degraded_ratio: float = 0.80,
    unhealthy_ratio: float = 0.95,
    timeout: float = 2.0,
) -> Check:
    """Used space of each path's filesystem (used / (used + free), as ``df``):
    degraded above ``degraded_ratio``, unhealthy above ``unhealthy_ratio``."""
    shown_paths = [str(p) for p in paths]
    if not shown_paths:
        raise ValueError("disk_check: no path")

    def run() -> CheckResult:
        import psutil

        details: dict[str, Any] = {}
        statuses: list[Status] = []
        problems: list[str] = []
        for path in shown_paths:
            try:
                usage = psutil.disk_usage(path)
            except OSError as e:
                statuses.append(Status.UNHEALTHY)
                problems.append(f"{path}: {e.strerror or e}")
                details[path] = {"error": e.strerror or str(e)}
                continue
            ratio = usage.used / (usage.used + usage.free) if usage.used + usage.free else 0.0
            details[path] = {
                "used_ratio": round(ratio, 4),
                "free_bytes": usage.free,
                "total_bytes": usage.total,
            }
            if ratio > unhealthy_ratio:
                statuses.append(Status.UNHEALTHY)
                problems.append(f"{path} {_pct(ratio)} used (> {_pct(unhealthy_ratio)})")
            elif ratio > degraded_ratio:
                statuses.append(Status.DEGRADED)
                problems.append(f"{path} {_pct(ratio)} used (> {_pct(degraded_ratio)})")
        return CheckResult(worst(statuses), details, "; ".join(problems) or None)

    return Check(name, run, timeout, "system")


def system_check(
    *,
    name: str = "system",
    cpu_degraded_ratio: float = 0.95,
    memory_degraded_ratio: float = 0.90,
    memory_unhealthy_ratio: float = 0.97,
    timeout: float = 2.0,
) -> Check:
    """CPU over a short interval and memory in use (psutil): degraded when the CPU is
    above ``cpu_degraded_ratio`` or memory above ``memory_degraded_ratio``,
    unhealthy when memory is above ``memory_unhealthy_ratio``."""

    def run() -> CheckResult:
        import psutil

        cpu = psutil.cpu_percent(interval=min(0.2, timeout / 4)) / 100.0
        memory = psutil.virtual_memory()
        mem_ratio = (memory.total - memory.available) / memory.total if memory.total else 0.0
        details = {
            "cpu_usage_ratio": round(cpu, 4),
            "cpu_count": psutil.cpu_count() or 0,
            "load1": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "memory_used_ratio": round(mem_ratio, 4),
            "memory_available_bytes": memory.available,
            "memory_total_bytes": memory.total,
        }
        statuses: list[Status] = []
        problems: list[str] = []
        if mem_ratio > memory_unhealthy_ratio:
            statuses.append(Status.UNHEALTHY)
            problems.append(f"memory {_pct(mem_ratio)} used (> {_pct(memory_unhealthy_ratio)})")
        elif mem_ratio > memory_degraded_ratio:
            statuses.append(Status.DEGRADED)
            problems.append(f"memory {_pct(mem_ratio)} used (> {_pct(memory_degraded_ratio)})")
        if cpu > cpu_degraded_ratio:
            statuses.append(Status.DEGRADED)
            problems.append(f"CPU {_pct(cpu)} busy (> {_pct(cpu_degraded_ratio)})")
        return CheckResult(worst(statuses), details, "; ".join(problems) or None)

    return Check(name, run, timeout, "system")


# -- backups ------------------------------------------------------------------------------------

BackupStatusFn = Callable[[], Mapping[str, float | None]]
"""Returns, per component, the Unix time of its newest snapshot (None: never)."""

_TIME_KEYS = (
    "newest_snapshot_timestamp",
    "newest_snapshot_time",
    "last_success_timestamp",
    "last_success",
    "timestamp",
    "time",
)


def read_backup_status(path: str | Path) -> dict[str, float | None]:
    """A JSON backup status file: per component, the time of its newest snapshot.

    Accepted shapes: ``{"components": {...}}`` or the mapping itself; each value a
    Unix time, an ISO 8601 time, null, or a mapping holding one of those under
    ``newest_snapshot_timestamp``, ``last_success_timestamp``, ``last_success``,
    ``timestamp`` or ``time``.
    """
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(doc, dict) and isinstance(doc.get("components"), dict):
        doc = doc["components"]
    if not isinstance(doc, dict):
        raise ValueError("the backup status file does not hold a mapping of components")
    result: dict[str, float | None] = {}
    for component, value in doc.items():
        if isinstance(value, dict):
            value = next((value[k] for k in _TIME_KEYS if k in value), None)
        result[str(component)] = _as_timestamp(value, str(component))
    return result


def _as_timestamp(value: Any, component: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"backup status of {component}: not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"backup status of {component}: not a time: {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise ValueError(f"backup status of {component}: not a time: {value!r}")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def backups_check(
    source: BackupStatusFn | str | Path,
    *,
    name: str = "backups",
    max_age_seconds: float = 26 * 3600.0,
    components: Mapping[str, float] | None = None,
    timeout: float = 2.0,
    clock: Callable[[], float] = time.time,
) -> Check:
    """Age of each component's newest snapshot, from ``source``: a function or the path
    of a JSON status file (:func:`read_backup_status`).

    ``components`` maps the components to watch to their max age (default: every
    component the source knows, with ``max_age_seconds``). Healthy within the max
    age, degraded up to twice it, unhealthy beyond, or when a component never had
    a snapshot."""
    status_fn: BackupStatusFn
    if callable(source):
        status_fn = source
    else:
        status_path = Path(source)

        def from_file() -> Mapping[str, float | None]:
            if not status_path.exists():
                raise FileNotFoundError("the backup status file does not exist")
            return read_backup_status(status_path)

        status_fn = from_file

    def run() -> CheckResult:
        newest = status_fn()
        watched = dict(components) if components else dict.fromkeys(newest, max_age_seconds)
        if not watched:
            return CheckResult(Status.UNHEALTHY, {}, "no backup status for any component")
        now = clock()
        details: dict[str, Any] = {}
        statuses: list[Status] = []
        problems: list[str] = []
        for component, max_age in watched.items():
            when = newest.get(component)
            if when is None:
                details[component] = {"age_seconds": None, "max_age_seconds": max_age}
                statuses.append(Status.UNHEALTHY)
                problems.append(f"{component}: no snapshot")
                continue
            age = max(0.0, now - when)
            details[component] = {"age_seconds": round(age, 1), "max_age_seconds": max_age}
            if age > 2 * max_age:
                statuses.append(Status.UNHEALTHY)
            elif age > max_age:
                statuses.append(Status.DEGRADED)
            else:
                statuses.append(Status.HEALTHY)
                continue
            problems.append(f"{component}: newest snapshot {_age(age)} old (max {_age(max_age)})")
        return CheckResult(worst(statuses), details, "; ".join(problems) or None)

    return Check(name, run, timeout, "backup")


# -- from the configuration ---------------------------------------------------------------------


def checks_from_config(config: HealthConfig) -> list[Check]:
    """The checks ``config`` turns on, in a stable order."""
    checks: list[Check] = []
    if config.postgres is not None:
        pg = config.postgres
        checks.append(
            postgres_check(
                pg.dsn,
                timeout=pg.timeout,
                latency_degraded_ms=pg.latency_degraded_ms,
                connections_degraded_ratio=pg.connections_degraded_ratio,
            )
        )
    if config.redis is not None:
        rd = config.redis
        checks.append(
            redis_check(
                rd.url,
                timeout=rd.timeout,
                latency_degraded_ms=rd.latency_degraded_ms,
                memory_degraded_ratio=rd.memory_degraded_ratio,
            )
        )
    if config.chroma is not None:
        ch = config.chroma
        checks.append(
            chroma_check(
                path=ch.path,
                url=ch.url,
                token=ch.token,
                timeout=ch.timeout,
                latency_degraded_ms=ch.latency_degraded_ms,
            )
        )
    endpoints = {"backend": config.backend, "frontend": config.frontend, **config.endpoints}
    for name, http in endpoints.items():
        if http is not None:
            checks.append(
                http_check(
                    name,
                    http.url,
                    timeout=http.timeout,
                    latency_degraded_ms=http.latency_degraded_ms,
                )
            )
    if config.disk is not None:
        dk = config.disk
        checks.append(
            disk_check(
                dk.paths,
                degraded_ratio=dk.degraded_ratio,
                unhealthy_ratio=dk.unhealthy_ratio,
                timeout=dk.timeout,
            )
        )
    if config.system is not None:
        sy = config.system
        checks.append(
            system_check(
                cpu_degraded_ratio=sy.cpu_degraded_ratio,
                memory_degraded_ratio=sy.memory_degraded_ratio,
                memory_unhealthy_ratio=sy.memory_unhealthy_ratio,
                timeout=sy.timeout,
            )
        )
    if config.backups is not None:
        bk = config.backups
        checks.append(
            backups_check(
                bk.status_file,
                max_age_seconds=bk.max_age_seconds,
                components=bk.components or None,
                timeout=bk.timeout,
            )
        )
    secrets = config.secrets()
    return [replace(c, secrets=tuple(dict.fromkeys((*c.secrets, *secrets)))) for c in checks]
