"""Progress of a long task: to the progress listeners (the CLI's terminal) and as a Prefect
progress artifact."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from scholar_ops.vault import progress as listeners
from scholar_ops.vault.archiver import Progress


@contextmanager
def reported_progress(
    label: str, description: str, estimate: int
) -> Iterator[Callable[[Progress], None]]:
    """A callback for BackupWriter that updates both, throttled; 100% on a clean exit.

    ``estimate`` is the expected number of bytes read (0: unknown, shown as bytes only).
    The callback runs in upload threads and never fails the backup.
    """
    logger = get_run_logger()
    estimate = max(estimate, 1)
    artifact_id = cast(UUID, create_progress_artifact(0.0, description=description))
    last = [0.0]

    def progress(p: Progress) -> None:
        listeners.notify(label, p.bytes_read, estimate, p.elapsed_s)
        now = time.monotonic()
        if now - last[0] < 2.0:
            return
        last[0] = now
        try:
            update_progress_artifact(artifact_id, min(99.0, 100.0 * p.bytes_read / estimate))
        except Exception as e:
            logger.debug("progress update failed: %s", e)

    try:
        yield progress
    finally:
        listeners.notify(label, None, estimate, 0.0)
    update_progress_artifact(artifact_id, 100.0)
