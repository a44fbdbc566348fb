"""Tasks: copy snapshots (and the WAL archive) to a second repository, and report it.

The work is the engine's (scholar_ops.vault.copy, scholar_ops.sources.postgres.wal.copy);
the task opens both repositories from their blocks (the destination is created the
first time, with its block's settings) and retries storage errors worth retrying: a
re-run copies only what is still missing and adopts the packs a killed run uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from scholar_ops.monitoring.copy_status import copy_status_group
from scholar_ops.sources.postgres.wal import archived_clusters
from scholar_ops.sources.postgres.wal.copy import copy_wal
from scholar_ops.vault.copy import CopyReport, SnapshotCopy, Verify, copy_snapshots
from tasks.common import load_repository, retry_if_transient

_RETRY: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
}


@task(
    name="copy-snapshots",
    task_run_name="copy {source} to {destination}",
    **_RETRY,
)
def copy_to_repository(
    source: str,
    destination: str,
    snapshot_ids: list[str] | None = None,
    component: str | None = None,
    target: str | None = None,
    group: str | None = None,
    wal: bool = True,
    dry_run: bool = False,
    verify: Verify = "full",
) -> CopyReport:
    """Copy the chosen snapshots the destination lacks; a snapshot that fails is in the
    report's ``errors`` (the flow fails after publishing the report)."""
    logger = get_run_logger()
    src = load_repository(source).open()
    dst = load_repository(destination).open(create=not dry_run)

    def log_item(item: SnapshotCopy) -> None:
        (logger.error if item.status == "failed" else logger.info)("%s", item.line())

    report = copy_snapshots(
        src,
        dst,
        ids=snapshot_ids or (),
        component=component,
        target=target,
        group=group,
        dry_run=dry_run,
        verify=verify,
        wait=600,
        on_wait=logger.warning,
        on_snapshot=log_item,
    )
    if wal and archived_clusters(src):
        wal_report = copy_wal(src, dst, dry_run=dry_run)
        logger.info("%s", wal_report.line())
        report.wal_copied, report.wal_bytes = wal_report.copied, wal_report.bytes_transferred
    logger.info("%s", report.total_line())
    report._exceptions.clear()  # the messages stay in report.errors; results stay plain data
    return report


@dataclass
class MoveBack:
    """Moving the snapshots a backup left in the ``fallback`` repository (its primary was
    unreachable) back into the ``primary``: the copy's ``report``, or None when it was not
    done this run and ``problem`` says why. ``failed``: the run fails for it (a snapshot
    not copied, a misconfigured repository), which an unreachable repository does not."""

    fallback: str
    primary: str
    report: CopyReport | None = None
    problem: str = ""
    failed: bool = False

    def line(self) -> str:
        """One line for the log and the run's failure."""
        if self.report is None:
            return (
                f"nothing moved back from the fallback repository {self.fallback} into "
                f"{self.primary} this run: {self.problem}"
            )
        r = self.report
        moved = "would move back" if r.dry_run else "moved back"
        n = sum(1 for s in r.snapshots if s.status in ("copied", "would copy"))
        failed = f", {r.failed} failed ({'; '.join(r.errors)})" if r.errors else ""
        return (
            f"{moved} {n} snapshot(s) from the fallback repository {self.fallback} into "
            f"{self.primary}{failed}"
        )

    def markdown(self) -> str:
        """The report's section on it: a verdict, then one row per snapshot moved back."""
        lines = [f"## Moved back from the fallback `{self.fallback}` → `{self.primary}`", ""]
        if self.report is None:
            lines.append(f"**Not moved back this run**: {self.problem}. The next run tries again.")
            return "\n".join(lines) + "\n"
        r = self.report
        sentence = self.line()
        lines += [sentence[0].upper() + sentence[1:] + ".", ""]
        lines += [f"- {e}" for e in r.errors]
        moved = [s for s in r.snapshots if s.status != "skipped"]
        if moved:
            lines += [
                "| snapshot | component/target | time | status | in the primary |",
                "| --- | --- | --- | --- | --- |",
            ]
            lines += [
                f"| `{s.short_id}` | {s.component}/{s.target} | {s.timestamp[:19]} | "
                f"{s.status} | `{(s.destination_id or '')[:8]}` |"
                for s in moved
            ]
            lines.append("")
        lines.append(
            "The fallback keeps its snapshots until its own retention removes them; a "
            "snapshot moved back is not moved again."
        )
        return "\n".join(lines) + "\n"


def repository_block_exists(name: str) -> bool:
    """Whether repository block ``name`` exists (the second copy is configured)."""
    from scholar_ops.vault.errors import ConfigError

    try:
        load_repository(name)
    except ConfigError:
        return False
    return True


def not_configured_markdown(source: str, destination: str) -> str:
    return (
        f"# Second copy: `{source}` → `{destination}`\n\n"
        f"**Second copy not configured**: there is no backup repository block "
        f"`{destination}`, so nothing was copied. Create it (`scholar-ops --repository "
        f"{destination} setup --repository-only` with another location and its own key), "
        "or pause the automation 'scholar-ops copy after backup'.\n"
    )


def copy_markdown(report: CopyReport, source: str, destination: str) -> str:
    """The run's report: verdict first, then one row per snapshot."""
    verdict = (
        "**Copy succeeded**"
        if report.ok
        else f"**Copy failed** for {len(report.errors)} snapshot(s)"
    )
    lines = [
        f"# Second copy: `{source}` → `{destination}`",
        "",
        verdict + (" (dry run)" if report.dry_run else ""),
        "",
    ]
    lines += [f"- {e}" for e in report.errors]
    if report.errors:
        lines.append("")
    lines += [
        f"{report.total_line()}",
        "",
        "| snapshot | component/target | time | status | chunks new/total | transferred |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in report.snapshots:
        status = s.status if not s.reason or s.status == "failed" else f"{s.status}: {s.reason}"
        if s.status == "failed":
            status = "failed"
        lines.append(
            f"| `{s.short_id}` | {s.component}/{s.target} | {s.timestamp[:19]} | {status} | "
            f"{s.chunks_new}/{s.chunks_total} | {s.bytes_transferred} B |"
        )
    if report.wal_copied:
        lines += ["", f"WAL files copied: {report.wal_copied} ({report.wal_bytes} B)."]
    checked = {
        "full": "Every copy was read back from the destination and compared with the source "
        "(size and SHA-256 of each entry) before it was committed.",
        "new": "The data each copy uploaded was read back from the destination (every blob "
        "authenticated and re-hashed) before it was committed.",
        "none": "Copies were not read back (verify=none).",
    }[report.verify]
    lines += ["", checked + " Each repository keeps its own retention."]
    return "\n".join(lines) + "\n"


@task(name="push-copy-status", timeout_seconds=120, cache_policy=NO_CACHE)
def push_copy_status(
    monitoring: str | None, destination: str, ok: bool, bytes_transferred: int = 0
) -> int:
    """Push the copy's status (job scholar-ops-copy, key destination): 1 group, or 0 when
    monitoring is not configured or the push failed (a warning: the copy's result never
    depends on the Pushgateway)."""
    from tasks.metrics import _push_status, load_monitoring

    try:
        settings = load_monitoring(monitoring)
        if settings is None:
            get_run_logger().info("copy status not pushed: no monitoring settings")
            return 0
        group = copy_status_group(destination, ok, bytes_transferred)
        return _push_status(settings, [group], "copy status")
    except Exception as e:
        get_run_logger().warning("the copy status was not pushed: %s", e)
        return 0


@task(name="publish-copy-report", cache_policy=NO_CACHE)
def publish_copy_report(
    report: CopyReport | None,
    source: str,
    destination: str,
    moved_back: MoveBack | None = None,
) -> None:
    """The report as the ``copy-report`` artifact (None: the destination is not configured),
    followed by what was moved back from the source's fallback repository, if it has one."""
    text = (
        copy_markdown(report, source, destination)
        if report is not None
        else not_configured_markdown(source, destination)
    )
    if moved_back is not None:
        text += "\n" + moved_back.markdown()
    create_markdown_artifact(
        text,
        key="copy-report",
        description=f"Last copy to {destination}",
    )
