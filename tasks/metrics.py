"""Tasks: push backup status, collect and push metrics (monitoring engine; see docs/metrics.md).

Settings come from the ``MonitoringSettings`` block named by the flow's ``monitoring``
parameter; when there is no such block, ``SCHOLAR_OPS_PUSHGATEWAY_URL`` alone is
enough (every other setting at its default). Tasks take block *names*: connection
settings and the Pushgateway's credentials are resolved inside the task, never passed
as (recorded) parameters. Pushes retry on connection errors and 5xx answers.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.monitoring import PUSHGATEWAY_URL_ENV, MonitoringSettings
from blocks.names import DEFAULT_MONITORING_BLOCK
from blocks.targets import load_target
from scholar_ops.monitoring import names
from scholar_ops.monitoring.backup_status import backup_status_groups, split_key
from scholar_ops.monitoring.collectors import Collected, Collector, CollectorOutcome, run_collectors
from scholar_ops.monitoring.collectors.app import probe
from scholar_ops.monitoring.collectors.audit import collect_audit
from scholar_ops.monitoring.collectors.backups import collect_backups
from scholar_ops.monitoring.collectors.chroma import collect_chroma
from scholar_ops.monitoring.collectors.postgres import collect_postgres
from scholar_ops.monitoring.collectors.redis import collect_redis
from scholar_ops.monitoring.collectors.system import collect_system
from scholar_ops.monitoring.drill_status import drill_status_groups
from scholar_ops.monitoring.push import PushError, push_group
from scholar_ops.monitoring.samples import MetricGroup, Sample, gauge
from scholar_ops.redaction import redact_url
from scholar_ops.sources.drill import DrillOutcome
from scholar_ops.vault.errors import ConfigError
from scholar_ops.vault.summary import BackupSummary
from tasks.common import load_repository, retry_if_transient

_PUSH_RETRY: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,  # an unreachable gateway, never a rejected push
    "cache_policy": NO_CACHE,
}


# -- settings ---------------------------------------------------------------------------


def load_monitoring(name: str | None = DEFAULT_MONITORING_BLOCK) -> MonitoringSettings | None:
    """The ``MonitoringSettings`` block ``name``; without one, settings made from
    ``SCHOLAR_OPS_PUSHGATEWAY_URL``; without either, None (metrics are off).

    A block that exists but does not validate is an error (``ConfigError``)."""
    if name:
        try:
            return MonitoringSettings.load_sync(name)
        except ValueError as e:
            if "Unable to find block document" not in str(e):
                raise ConfigError(
                    f"cannot load the monitoring settings block {name!r}: {e}"
                ) from None
    url = os.environ.get(PUSHGATEWAY_URL_ENV, "").strip()
    if url:
        try:
            return MonitoringSettings(pushgateway_url=url)
        except ValueError as e:
            raise ConfigError(f"{PUSHGATEWAY_URL_ENV}: {e}") from None
    return None


def instance_name(settings: MonitoringSettings) -> str:
    return settings.instance or socket.gethostname()


def push_groups(settings: MonitoringSettings, groups: Sequence[MetricGroup]) -> int:
    """Push-add every group; try them all, then raise one ``PushError`` naming the
    ones that failed (transient if any failure was)."""
    logger = get_run_logger()
    failed: list[PushError] = []
    for group in groups:
        if not group.samples:
            continue
        try:
            push_group(
                settings.pushgateway_url,
                group,
                settings.push_timeout_seconds,
                auth=settings.push_auth,
            )
        except PushError as e:
            failed.append(e)
    pushed = len([g for g in groups if g.samples]) - len(failed)
    if failed:
        raise PushError(
            f"{len(failed)} of {len(failed) + pushed} pushes failed: "
            + "; ".join(str(e) for e in failed[:5]),
            transient=any(e.transient for e in failed),
        )
    logger.info("pushed %d group(s) to %s", pushed, redact_url(settings.pushgateway_url))
    return pushed


# -- backup status ------------------------------------------------------------------------


def target_label(component: str, block_name: str) -> str:
    """The target block's ``target_name`` (the label its snapshots carry), else the
    block's name when it cannot be loaded."""
    try:
        return str(load_target(component, block_name).target_name)
    except Exception:
        return block_name


def failures_by_target(failures: dict[str, str]) -> dict[str, str]:
    """``"component/block name" -> message`` as ``"component/target name" -> message``."""
    out: dict[str, str] = {}
    for key, message in failures.items():
        component, block_name = split_key(key)
        out[f"{component}/{target_label(component, block_name)}"] = message
    return out


#: Waits between tries of a backup status push that met an unreachable gateway (the
#: task retries itself, so that a gateway that stays down is a warning, not a failed task).
BACKUP_STATUS_RETRY_DELAYS: tuple[float, ...] = (2.0, 10.0)


@task(name="push-backup-status", timeout_seconds=120, cache_policy=NO_CACHE)
def push_backup_status(
    monitoring: str | None,
    results: list[BackupSummary],
    failures: dict[str, str],
    reasons: dict[str, str] | None = None,
) -> int:
    """Push each target's status of a backup run (job scholar-ops-backup); returns the
    number of groups pushed: 0 when monitoring is not configured, or when the gateway
    stayed unreachable or refused the push (logged as a warning: the backup's own
    result never depends on the Pushgateway)."""
    logger = get_run_logger()
    settings = load_monitoring(monitoring)
    if settings is None:
        logger.info(
            "backup status not pushed: no monitoring settings block %r and no %s",
            monitoring,
            PUSHGATEWAY_URL_ENV,
        )
        return 0
    groups = backup_status_groups(
        results,
        failures_by_target(failures),
        expected_interval=settings.expected_interval,
        reasons=failures_by_target(reasons or {}),
    )
    return _push_status(settings, groups, "backup status")


def _push_status(settings: MonitoringSettings, groups: Sequence[MetricGroup], what: str) -> int:
    """Push a run's status groups, trying again (``BACKUP_STATUS_RETRY_DELAYS``) while
    the gateway is unreachable; a push that still fails is a warning, 0 groups pushed."""
    logger = get_run_logger()
    delays = list(BACKUP_STATUS_RETRY_DELAYS)
    while True:
        try:
            return push_groups(settings, groups)
        except PushError as e:
            if not (e.transient and delays):
                logger.warning("the %s was not pushed: %s", what, e)
                return 0
            delay = delays.pop(0)
            logger.info("push failed (%s); trying again in %g s", e, delay)
            time.sleep(delay)


def push_backup_status_safely(
    monitoring: str | None,
    results: list[BackupSummary],
    failures: dict[str, str],
    reasons: dict[str, str] | None = None,
) -> int:
    """``push_backup_status``; anything else going wrong (settings that do not load, a
    timeout) is logged as a warning too."""
    try:
        return push_backup_status(monitoring, results, failures, reasons)
    except Exception as e:
        get_run_logger().warning("the backup status was not pushed: %s", e)
        return 0


# -- restore drill status ---------------------------------------------------------------------


@task(name="push-drill-status", timeout_seconds=120, cache_policy=NO_CACHE)
def push_drill_status(monitoring: str | None, outcomes: list[DrillOutcome]) -> int:
    """Push each drilled target's status (job scholar-ops-drill; see
    scholar_ops.monitoring.drill_status); returns the number of groups pushed: 0 when monitoring is
    not configured or the push failed (a warning: the drill's result never depends on
    the Pushgateway)."""
    settings = load_monitoring(monitoring)
    if settings is None:
        get_run_logger().info(
            "drill status not pushed: no monitoring settings block %r and no %s",
            monitoring,
            PUSHGATEWAY_URL_ENV,
        )
        return 0
    return _push_status(settings, drill_status_groups(outcomes), "drill status")


def push_drill_status_safely(monitoring: str | None, outcomes: list[DrillOutcome]) -> int:
    """``push_drill_status``; anything else going wrong is logged as a warning too."""
    try:
        return push_drill_status(monitoring, outcomes)
    except Exception as e:
        get_run_logger().warning("the drill status was not pushed: %s", e)
        return 0


# -- metrics export ------------------------------------------------------------------------


def _failing(error: BaseException) -> Callable[[], list[Sample]]:
    def collect() -> list[Sample]:
        raise error

    return collect


def _database_collector(
    component: str,
    block_name: str,
    make: Callable[[Any, dict[str, str]], Callable[[], list[Sample]]],
) -> Collector:
    """A collector for one target block; a block that cannot be loaded (or its secret
    resolved) becomes a collector that fails with that error."""
    try:
        block = load_target(component, block_name)
        target = str(block.target_name)
        labels = {"component": component, "target": target}
        collect = make(block, labels)
    except Exception as e:
        target = block_name
        labels = {"component": component, "target": target}
        collect = _failing(e)
    return Collector(
        name=f"{component}/{target}",
        job=names.JOB_DATABASES,
        grouping_key=labels,
        collect=collect,
        on_failure=[gauge(names.DATABASE_UP, 0, labels)],
    )


def build_collectors(settings: MonitoringSettings) -> list[Collector]:
    """Every collector the settings ask for, with blocks and secrets resolved here (in
    the task's thread) so that collectors only do plain engine work."""
    timeout = settings.collector_timeout_seconds
    inner = max(1.0, timeout * 0.8)  # the collector's own timeouts fire before the runner's
    instance = instance_name(settings)
    collectors = [
        Collector(
            "system",
            names.JOB_SYSTEM,
            {"instance": instance},
            lambda: collect_system(cpu_interval=min(1.0, inner / 2)),
        )
    ]

    def postgres(block: Any, labels: dict[str, str]) -> Callable[[], list[Sample]]:
        conninfo = block.conninfo()
        return lambda: collect_postgres(conninfo, labels, inner)

    def redis(block: Any, labels: dict[str, str]) -> Callable[[], list[Sample]]:
        conninfo = block.conninfo()
        return lambda: collect_redis(conninfo, labels, inner)

    def chroma(block: Any, labels: dict[str, str]) -> Callable[[], list[Sample]]:
        source = block.source()
        return lambda: collect_chroma(source, labels)

    for component, block_names, make in (
        ("postgres", settings.postgres_targets, postgres),
        ("redis", settings.redis_targets, redis),
        ("chroma", settings.chroma_targets, chroma),
    ):
        for block_name in block_names:
            c = _database_collector(component, block_name, make)
            if any(c.name == other.name for other in collectors):
                # Two blocks with one target name would push into one group.
                c = Collector(
                    f"{component}/{block_name}",
                    names.JOB_DATABASES,
                    {},
                    _failing(
                        ConfigError(
                            f"{component} target block {block_name!r} has the target name of "
                            f"another block ({c.name}): give it its own label"
                        )
                    ),
                )
            collectors.append(c)
    for endpoint, url in settings.app_endpoints.items():
        labels = {"endpoint": endpoint}
        collectors.append(
            Collector(
                f"app/{endpoint}",
                names.JOB_APP,
                labels,
                partial(probe, endpoint, url, inner),
                on_failure=[gauge(names.APP_UP, 0, labels)],
            )
        )
    if settings.repository:
        try:
            block = load_repository(settings.repository)
            storage, master = block.storage(), block.master_key()

            def collect() -> list[Sample]:
                from scholar_ops.vault.repository import Repository

                return collect_backups(Repository.open(storage, master))

        except Exception as e:
            collect = _failing(e)
        collectors.append(
            Collector(
                "backups",
                names.JOB_BACKUP,
                {},
                collect,
                timeout=max(60.0, timeout),
                split_by=("component", "target"),
            )
        )
        collectors.append(_audit_collector(settings.repository))
    return collectors


def _audit_collector(repository: str) -> Collector:
    """The audit trail's tip (scholar_ops.monitoring.collectors.audit): its own group, so a
    failure of the backups collector does not hide a rollback."""
    try:
        block = load_repository(repository)
        storage, master = block.storage(), block.master_key()

        def collect() -> list[Sample]:
            from scholar_ops.vault.repository import Repository

            return collect_audit(Repository.open(storage, master))

    except Exception as e:
        collect = _failing(e)
    return Collector("audit", names.JOB_AUDIT, {"repository": repository}, collect)


@task(name="collect-metrics", timeout_seconds=300, cache_policy=NO_CACHE)
def collect_metrics(monitoring: str | None = DEFAULT_MONITORING_BLOCK) -> Collected:
    """Run every collector concurrently; a failing one is logged and reported as
    ``scholar_ops_collector_up 0``, never an error of the task."""
    logger = get_run_logger()
    settings = require_monitoring(monitoring)
    collected = run_collectors(build_collectors(settings), settings.collector_timeout_seconds)
    for outcome in collected.outcomes:
        if outcome.ok:
            logger.info("collector %s: ok in %.2f s", outcome.name, outcome.seconds)
        else:
            logger.warning("collector %s failed: %s", outcome.name, outcome.error)
    return collected


def require_monitoring(monitoring: str | None) -> MonitoringSettings:
    settings = load_monitoring(monitoring)
    if settings is None:
        raise ConfigError(
            f"no monitoring settings: create the MonitoringSettings block {monitoring!r} "
            f"(`scholar-ops setup` or the Prefect UI) or set {PUSHGATEWAY_URL_ENV}"
        )
    return settings


@task(name="push-metrics", timeout_seconds=120, **_PUSH_RETRY)
def push_metrics(monitoring: str | None, groups: list[MetricGroup]) -> int:
    """Push-add every group; raises when any push fails (after trying them all)."""
    return push_groups(require_monitoring(monitoring), groups)


def export_status_group(
    instance: str, outcomes: Sequence[CollectorOutcome], duration: float, now: float
) -> MetricGroup:
    """The export's own group (job scholar-ops-metrics-export, key instance)."""
    return MetricGroup(
        names.JOB_EXPORT,
        {"instance": instance},
        [
            gauge(names.EXPORT_LAST_SUCCESS, now),
            gauge(names.EXPORT_DURATION, duration),
            *Collected([], list(outcomes)).collector_up(),
        ],
    )


@task(name="push-export-status", timeout_seconds=120, **_PUSH_RETRY)
def push_export_status(
    monitoring: str | None, outcomes: list[CollectorOutcome], started: float
) -> int:
    """Push the export's success time, duration and every collector's up/down."""
    settings = require_monitoring(monitoring)
    now = time.time()
    group = export_status_group(instance_name(settings), outcomes, now - started, now)
    return push_groups(settings, [group])
