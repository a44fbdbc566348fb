"""A second copy (3-2-1): copy the snapshots a second repository lacks into it.

Snapshots are re-encrypted for the destination's keys, only the chunks it lacks are
transferred, each copy is read back and compared with the source before it is
committed, and a re-run copies nothing twice. The WAL archive the destination's base
backups need goes along. Each repository keeps its own retention (run apply-retention
on each). The markdown report is the ``copy-report`` artifact; the run fails, after
publishing it, when a snapshot could not be copied.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from blocks.names import DEFAULT_MONITORING_BLOCK, DEFAULT_REPOSITORY_BLOCK
from scholar_ops.vault.copy import CopyReport, Verify
from scholar_ops.vault.errors import OperationFailed
from tasks.copies import (
    copy_to_repository,
    publish_copy_report,
    push_copy_status,
    repository_block_exists,
)


class CopyFailed(OperationFailed):
    """Some snapshots were not copied; the message names each one and why."""


@flow(name="copy-snapshots", log_prints=True)
def copy_snapshots(
    destination: str,
    source: str = DEFAULT_REPOSITORY_BLOCK,
    snapshot_ids: list[str] | None = None,
    component: str | None = None,
    target: str | None = None,
    group: str | None = None,
    wal: bool = True,
    dry_run: bool = False,
    verify: Verify = "full",
    monitoring: str | None = DEFAULT_MONITORING_BLOCK,
) -> CopyReport | None:
    """Copy from repository block ``source`` to repository block ``destination`` every
    snapshot it lacks (or only ``snapshot_ids``, or those of ``component``/``target``/
    ``group``), and, with ``wal``, the WAL archive its base backups need. ``verify``: read
    each copy back whole before committing it (``full``), only what it uploaded (``new``),
    or not at all (``none``).

    The outcome goes to the Pushgateway (job scholar-ops-copy, key ``destination``) when
    ``monitoring`` settings exist. Without a ``destination`` block (no second copy configured) the run completes at once
    and says so (None, and in its report and log)."""
    if not repository_block_exists(destination):
        get_run_logger().warning(
            "no backup repository block %r: the second copy is not configured, nothing copied",
            destination,
        )
        publish_copy_report(None, source, destination)
        return None
    try:
        report = copy_to_repository(
            source,
            destination,
            snapshot_ids=snapshot_ids,
            component=component,
            target=target,
            group=group,
            wal=wal,
            dry_run=dry_run,
            verify=verify,
        )
    except Exception:
        if not dry_run:
            push_copy_status(monitoring, destination, ok=False)
        raise
    publish_copy_report(report, source, destination)
    if not dry_run:
        push_copy_status(monitoring, destination, report.ok, report.bytes_transferred)
    if not report.ok:
        raise CopyFailed(
            f"{len(report.errors)} snapshot(s) not copied to {destination}: "
            + "; ".join(report.errors)
        )
    return report
