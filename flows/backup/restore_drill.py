"""Restore drill: prove that the backups restore, every day.

For every target block named, as parallel tasks: restore the latest snapshot of
that target into a scratch place (a new database on its server, a throwaway
redis-server, a new Chroma directory, a scratch directory), verify it against the
snapshot's manifest, remove the scratch place. Then publish the report
(artifact ``restore-drill-report``) and push each target's drill status to the
Pushgateway (job scholar-ops-drill; a failure pushes only its run time and status 0
with a bounded reason, so the last success survives). A failed drill fails the run,
after every drill ran and the report was published.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture

from blocks.monitoring import DEFAULT_MONITORING_BLOCK
from flows.backup.run import COMPONENTS, component_targets
from scholar_ops.monitoring.drill_status import drill_failure_reason
from tasks.artifacts import publish_drill_report
from tasks.drill import (
    drill_chroma_target,
    drill_files_target,
    drill_postgres_target,
    drill_redis_target,
)
from tasks.metrics import push_drill_status_safely, target_label


def _drill_task(component: str) -> Any:
    """The task drilling one target of ``component`` (looked up at call time: tests swap them)."""
    return {
        "postgres": drill_postgres_target,
        "redis": drill_redis_target,
        "chroma": drill_chroma_target,
        "files": drill_files_target,
    }[component]


class DrillFailed(RuntimeError):
    """Some drills failed. ``outcomes``: every target's outcome, as the report shows them."""

    def __init__(self, message: str, outcomes: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


def _check_targets(targets: dict[str, list[str]]) -> None:
    if not any(targets.values()):
        raise ValueError(
            "no targets to drill: pass postgres_targets, redis_targets, chroma_targets or "
            "file_targets (names of target blocks)"
        )
    for component, names in targets.items():
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{component} target(s) {dupes} listed twice")


def _describe_failure(o: dict[str, Any]) -> str:
    name = f"{o['component']}/{o['block']}"
    if o["target"] != o["block"]:
        name += f" (target {o['target']})"
    why = o["error"] if o.get("error") is not None else "; ".join(o["mismatches"][:3])
    return f"{name}, {o['reason']}: {why}"


@flow(name="restore-drill", log_prints=True)
def restore_drill(
    postgres_targets: list[str] | None = None,
    redis_targets: list[str] | None = None,
    chroma_targets: list[str] | None = None,
    file_targets: list[str] | None = None,
    repository: str = "scholar-ops-repository",
    monitoring: str | None = DEFAULT_MONITORING_BLOCK,
    scratch_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Restore the latest snapshot of every target into a scratch place, verify it and
    remove it, all in parallel; report, push each target's drill status, and fail
    when any drill failed. Targets are names of target blocks (as for the backups);
    ``scratch_dir``: where scratch directories are made (default: the system's
    temporary directory; PostgreSQL drills use a scratch database instead)."""
    logger = get_run_logger()
    targets = component_targets(postgres_targets, redis_targets, chroma_targets, file_targets)
    _check_targets(targets)
    futures: dict[tuple[str, str], PrefectFuture[dict[str, Any]]] = {}
    for component in COMPONENTS:
        task = _drill_task(component)
        for name in targets[component]:
            futures[(component, name)] = task.submit(repository, name, scratch_dir)
    outcomes: list[dict[str, Any]] = []
    for (component, name), fut in futures.items():
        try:
            outcome = {**fut.result(), "block": name}
        except Exception as e:
            outcome = {
                "component": component,
                "target": target_label(component, name),
                "block": name,
                "ok": False,
                "reason": drill_failure_reason(e),
                "error": str(e) or type(e).__name__,
            }
            logger.error(
                "drill of %s/%s failed (%s): %s",
                component,
                name,
                outcome["reason"],
                outcome["error"],
            )
        else:
            if not outcome["ok"]:
                outcome["reason"] = "verification_failed"
        outcomes.append(outcome)
    publish_drill_report(outcomes)
    push_drill_status_safely(monitoring, outcomes)
    failed = [o for o in outcomes if not o["ok"]]
    if failed:
        raise DrillFailed(
            f"{len(failed)} of {len(outcomes)} restore drills failed: "
            + "; ".join(_describe_failure(o) for o in failed),
            outcomes,
        )
    return outcomes
