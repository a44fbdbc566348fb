"""Retention: forget snapshots the policy does not keep, then prune unneeded data."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.repository import apply_retention


@flow(name="apply-retention", log_prints=True)
def retention(
    repository: str = "scholar-ops-repository",
    keep_last: int = 7,
    keep_daily: int = 14,
    keep_weekly: int = 8,
    keep_monthly: int = 12,
    dry_run: bool = False,
) -> dict[str, Any]:
    policy = {"keep_last": keep_last, "keep_daily": keep_daily, "keep_weekly": keep_weekly,
              "keep_monthly": keep_monthly}  # fmt: skip
    return apply_retention(repository, policy, dry_run)
