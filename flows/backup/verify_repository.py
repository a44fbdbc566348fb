"""Verify the repository: structure always, and all or a fraction of the data read back."""

from __future__ import annotations

from prefect import flow

from blocks.names import DEFAULT_REPOSITORY_BLOCK
from scholar_ops.vault.checker import CheckReport
from scholar_ops.vault.errors import OperationFailed
from tasks.artifacts import publish_check_report
from tasks.repository import check_repository


class RepositoryDamaged(OperationFailed):
    """The check found problems; the message names every damaged object."""


@flow(name="verify-repository", log_prints=True)
def verify_repository(
    repository: str = DEFAULT_REPOSITORY_BLOCK, read_data: float = 0.0
) -> CheckReport:
    """Check the repository (``read_data``: the fraction of the packs read back, 0-1);
    the run fails naming every damaged object."""
    report = check_repository(repository, read_data)
    publish_check_report(report)
    if not report.ok:
        raise RepositoryDamaged("; ".join(str(p) for p in report.problems))
    return report
