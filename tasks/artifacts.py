"""Publishing reports as Prefect artifacts (markdown and tables)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from scholar_ops.sources.drill import DrillOutcome
from scholar_ops.vault.checker import CheckReport
from scholar_ops.vault.summary import BackupSummary, RestoreSummary
from tasks.reports import backup_markdown, check_markdown, drill_markdown, restore_markdown


@task(name="publish-backup-report")
def publish_backup_report(results: list[BackupSummary], failures: Mapping[str, str]) -> None:
    create_markdown_artifact(
        backup_markdown(results, failures), key="backup-report", description="Last backup run"
    )


@task(name="publish-catalog")
def publish_catalog(snapshots: list[dict[str, Any]]) -> None:
    create_table_artifact(
        [s["row"] for s in snapshots],
        key="backup-catalog",
        description="Snapshots in the repository",
    )


@task(name="publish-restore-report")
def publish_restore_report(result: RestoreSummary) -> None:
    create_markdown_artifact(
        restore_markdown(result), key="restore-report", description="Last restore"
    )


@task(name="publish-check-report")
def publish_check_report(report: CheckReport) -> None:
    create_markdown_artifact(
        check_markdown(report), key="check-report", description="Last repository check"
    )


@task(name="publish-drill-report")
def publish_drill_report(outcomes: list[DrillOutcome]) -> None:
    create_markdown_artifact(
        drill_markdown(outcomes), key="restore-drill-report", description="Last restore drill"
    )
