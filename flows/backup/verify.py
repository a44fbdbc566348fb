"""Verify the repository: structure always, and all or a fraction of the data read back."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.artifacts import publish_check_report
from tasks.repository import check_repository


class RepositoryDamaged(RuntimeError):
    pass


@flow(name="verify-repository", log_prints=True)
def verify_repository(
    repository: str = "scholar-ops-repository", read_data: float = 0.0
) -> dict[str, Any]:
    report = check_repository(repository, read_data)
    publish_check_report(report)
    if not report["ok"]:
        raise RepositoryDamaged("; ".join(report["problems"]))
    return report
