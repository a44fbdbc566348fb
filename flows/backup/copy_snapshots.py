"""A second copy (3-2-1): copy the snapshots a second repository lacks into it.

Snapshots are re-encrypted for the destination's keys, only the chunks it lacks are
transferred, each copy is read back and compared with the source before it is
committed, and a re-run copies nothing twice. The WAL archive the destination's base
backups need goes along. Each repository keeps its own retention (run apply-retention
on each). The markdown report is the ``copy-report`` artifact; the run fails, after
publishing it, when a snapshot could not be copied.

First, when the source repository block names a ``fallback_repository`` (where backups
go while it is unreachable, tasks/targets.py), the snapshots the fallback holds and the
source lacks are copied back into the source (the same copy: incremental, verified,
idempotent), so they reach the destination too. The fallback keeps them until its own
retention removes them. A source or fallback still unreachable skips that step with a
warning (the next run tries again); the copy from the source then fails as it would.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, get_run_logger
from prefect.exceptions import MissingContextError

from blocks.names import DEFAULT_MONITORING_BLOCK, DEFAULT_REPOSITORY_BLOCK
from scholar_ops.vault.copy import CopyReport, Verify
from scholar_ops.vault.errors import ConfigError, OperationFailed
from tasks.common import load_repository
from tasks.copies import (
    MoveBack,
    copy_to_repository,
    publish_copy_report,
    push_copy_status,
    repository_block_exists,
)
from tasks.targets import storage_unreachable


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
    and says so (None, and in its report and log).

    Before that, the snapshots ``source``'s fallback repository holds and it lacks are
    moved back into it (all of them, whatever the selection; see the module's doc)."""
    moved_back = move_back_from_fallback(source, wal=wal, dry_run=dry_run, verify=verify)
    if not repository_block_exists(destination):
        get_run_logger().warning(
            "no backup repository block %r: the second copy is not configured, nothing copied",
            destination,
        )
        publish_copy_report(None, source, destination, moved_back)
        if moved_back is not None and moved_back.failed:
            raise CopyFailed(moved_back.line())
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
    publish_copy_report(report, source, destination, moved_back)
    if not dry_run:
        push_copy_status(monitoring, destination, report.ok, report.bytes_transferred)
    problems = []
    if not report.ok:
        problems.append(
            f"{len(report.errors)} snapshot(s) not copied to {destination}: "
            + "; ".join(report.errors)
        )
    if moved_back is not None and moved_back.failed:
        problems.append(moved_back.line())
    if problems:
        raise CopyFailed("; ".join(problems))
    return report


def move_back_from_fallback(
    source: str, wal: bool = True, dry_run: bool = False, verify: Verify = "full"
) -> MoveBack | None:
    """Copy into repository block ``source`` the snapshots (and WAL) its fallback repository
    holds and it lacks; None when it names no fallback. An unreachable repository (the
    source still down, or the fallback) is a warning and nothing is moved this run; any
    other error, or a snapshot not copied, fails the run after the copy to the destination.
    """
    logger: Any
    try:
        logger = get_run_logger()
    except MissingContextError:  # called outside a flow run (``copy_snapshots.fn``)
        logger = logging.getLogger("flows.backup.copy_snapshots")
    try:
        fallback = load_repository(source).fallback_repository
    except ConfigError:
        return None  # no source block: the copy from it says so
    if fallback is None:
        return None
    if not repository_block_exists(fallback):
        logger.warning(
            "repository block %r names the fallback repository %r, which does not exist: "
            "nothing to move back",
            source,
            fallback,
        )
        return None
    moved = MoveBack(fallback, source)
    try:
        # Not retried here: the storage retried already, and the next run tries again.
        moved.report = copy_to_repository.with_options(retries=0)(
            fallback, source, wal=wal, dry_run=dry_run, verify=verify
        )
    except Exception as e:
        unreachable = storage_unreachable(e)
        moved.problem = f"{'unreachable' if unreachable else 'failed'} ({e})"
        moved.failed = not unreachable
        (logger.warning if unreachable else logger.error)("%s", moved.line())
        return moved
    moved.failed = not moved.report.ok
    (logger.error if moved.failed else logger.info)("%s", moved.line())
    return moved
