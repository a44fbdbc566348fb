"""The catalog: list snapshots with their metadata, filtered, as a table artifact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from blocks.names import DEFAULT_REPOSITORY_BLOCK
from tasks.artifacts import publish_catalog
from tasks.repository import list_snapshots


@flow(name="backup-catalog", log_prints=True)
def backup_catalog(
    repository: str = DEFAULT_REPOSITORY_BLOCK,
    component: str | None = None,
    backup_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    snaps = list_snapshots(repository, component, backup_type, since, until)
    publish_catalog(snaps)
    return snaps
