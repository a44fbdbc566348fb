"""Restore drill: prove that the backups restore, every day.

For every target block named, as parallel tasks: restore the latest snapshot of
that target into a scratch place (a new throwaway PostgreSQL cluster, a throwaway
redis-server, a new Chroma directory, a scratch directory), verify it against the
snapshot's manifest, remove the scratch place. Then publish the report
(artifact ``restore-drill-report``) and push each target's drill status to the
Pushgateway (job scholar-ops-drill; a failure pushes only its run time and status 0
with a bounded reason, so the last success survives). A failed drill fails the run,
after every drill ran and the report was published.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture

from blocks.names import DEFAULT_MONITORING_BLOCK, DEFAULT_REPOSITORY_BLOCK
from flows.backup.group import check_targets, targets_of
from scholar_ops.monitoring.drill_status import drill_failure_reason
from scholar_ops.sources.drill import DrillOutcome, DrillResult
from scholar_ops.vault.errors import OperationFailed
from tasks.artifacts import publish_drill_report
from tasks.metrics import push_drill_status_safely, target_label
from tasks.targets import drill_target


class DrillFailed(OperationFailed):
    """Some drills failed. ``outcomes``: every target's outcome, as the report shows them."""

    def __init__(self, message: str, outcomes: list[DrillOutcome]) -> None:
        super().__init__(message)
        self.outcomes = outcomes

    def __reduce__(self) -> tuple[type[DrillFailed], tuple[str, list[DrillOutcome]]]:
        return (type(self), (str(self), self.outcomes))


def _describe_failure(o: DrillOutcome) -> str:
    name = f"{o.component}/{o.block}"
    if o.target != o.block:
        name += f" (target {o.target})"
    why = (
        o.error if o.error is not None else "; ".join((o.result.mismatches if o.result else [])[:3])
    )
    return f"{name}, {o.reason}: {why}"


@flow(name="restore-drill", log_prints=True)
def restore_drill(
    postgres_targets: list[str] | None = None,
    postgres_base_targets: list[str] | None = None,
    redis_targets: list[str] | None = None,
    chroma_targets: list[str] | None = None,
    file_targets: list[str] | None = None,
    repository: str = DEFAULT_REPOSITORY_BLOCK,
    monitoring: str | None = DEFAULT_MONITORING_BLOCK,
    scratch_dir: str | None = None,
) -> list[DrillOutcome]:
    """Restore the latest snapshot of every target into a scratch place, verify it and
    remove it, all in parallel; report, push each target's drill status, and fail
    when any drill failed. Targets are names of target blocks (as for the backups);
    ``scratch_dir``: where scratch directories are made (default: the system's
    temporary directory; a PostgreSQL drill's throwaway cluster goes there too)."""
    logger = get_run_logger()
    targets = targets_of(
        postgres_targets=postgres_targets,
        postgres_base_targets=postgres_base_targets,
        redis_targets=redis_targets,
        chroma_targets=chroma_targets,
        file_targets=file_targets,
    )
    check_targets(targets, "drill")
    futures: dict[tuple[str, str], PrefectFuture[DrillResult]] = {
        (component, name): drill_target.submit(repository, component, name, scratch_dir)
        for component, names in targets.items()
        for name in names
    }
    outcomes: list[DrillOutcome] = []
    for (component, name), fut in futures.items():
        try:
            result = fut.result()
        except Exception as e:
            outcome = DrillOutcome(
                component,
                target_label(component, name),
                name,
                reason=drill_failure_reason(e),
                error=str(e) or type(e).__name__,
            )
            logger.error(
                "drill of %s/%s failed (%s): %s", component, name, outcome.reason, outcome.error
            )
        else:
            outcome = DrillOutcome(
                component,
                result.target,
                name,
                result=result,
                reason=None if result.ok else "verification_failed",
            )
        outcomes.append(outcome)
    publish_drill_report(outcomes)
    push_drill_status_safely(monitoring, outcomes)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise DrillFailed(
            f"{len(failed)} of {len(outcomes)} restore drills failed: "
            + "; ".join(_describe_failure(o) for o in failed),
            outcomes,
        )
    return outcomes
