"""Retention: forget snapshots the policy does not keep, then prune unneeded data."""

from __future__ import annotations

from prefect import flow

from blocks.names import DEFAULT_REPOSITORY_BLOCK
from scholar_ops.vault.prune import DEFAULT_POLICY, PruneReport, RetentionPolicy
from tasks.repository import prune_snapshots


@flow(name="apply-retention", log_prints=True)
def apply_retention(
    repository: str = DEFAULT_REPOSITORY_BLOCK,
    keep_last: int = DEFAULT_POLICY.keep_last,
    keep_hourly: int = DEFAULT_POLICY.keep_hourly,
    keep_daily: int = DEFAULT_POLICY.keep_daily,
    keep_weekly: int = DEFAULT_POLICY.keep_weekly,
    keep_monthly: int = DEFAULT_POLICY.keep_monthly,
    keep_yearly: int = DEFAULT_POLICY.keep_yearly,
    dry_run: bool = False,
) -> PruneReport:
    """Keep, per target, the last ``keep_last`` snapshots and the newest of each of the last
    ``keep_hourly`` hours, ``keep_daily`` days, ... (0: rule off); a snapshot whose
    retention_until lies ahead is always kept. Forget the others, then prune."""
    policy = RetentionPolicy(
        keep_last=keep_last,
        keep_hourly=keep_hourly,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        keep_yearly=keep_yearly,
    )
    return prune_snapshots(repository, policy, dry_run)
