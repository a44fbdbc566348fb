"""`scholar-ops backup` and `scholar-ops drill`: run the backup and restore-drill flows."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from scholar_ops.cli.common import (
    DEFAULT_MONITORING,
    DEFAULT_TARGET,
    EXIT_FAILED,
    EXIT_OK,
    chosen_targets,
    flow_parameters,
    target_options,
)
from scholar_ops.vault.summary import human_bytes, human_duration, human_elapsed

if TYPE_CHECKING:
    from scholar_ops.sources.drill import DrillOutcome
    from scholar_ops.vault.summary import BackupSummary


def register(sub: Any) -> None:
    b = sub.add_parser(
        "backup",
        help="back up targets of any component, as one snapshot group",
        description=(
            "Back up the named target blocks, all in parallel, as one snapshot group. Without "
            f"any target option: the PostgreSQL target {DEFAULT_TARGET}. When some targets "
            "fail, the snapshots of the others are printed, then the failures (exit 1)."
        ),
    )
    b.add_argument(
        "--full", action="store_true", help="a full backup (independent of earlier ones)"
    )
    target_options(b)
    b.add_argument("--retention-days", type=float, default=None)
    b.set_defaults(func=cmd_backup)

    dr = sub.add_parser(
        "drill",
        help="restore drills: restore the latest snapshot of targets into scratch places and verify",
        description=(
            "Restore the latest snapshot of each named target block into a scratch place (a new "
            "throwaway PostgreSQL cluster, a throwaway redis-server, a new Chroma directory, a scratch "
            "directory), verify it against the snapshot, remove it; all in parallel. One line per "
            "target; exit 1 when any drill failed. Without any target option: the PostgreSQL "
            f"target {DEFAULT_TARGET}."
        ),
    )
    target_options(dr)
    dr.add_argument(
        "--scratch-dir",
        metavar="DIR",
        help="where scratch directories are made (default: the system's temporary directory)",
    )
    dr.add_argument(
        "--monitoring",
        default=DEFAULT_MONITORING,
        metavar="NAME",
        help="MonitoringSettings block: where the drill status is pushed (default "
        "%(default)s; without it and SCHOLAR_OPS_PUSHGATEWAY_URL nothing is pushed)",
    )
    dr.set_defaults(func=cmd_drill)


def backup_line(r: BackupSummary) -> str:
    return (
        f"snapshot {r.short_id} {r.component}/{r.target} {r.backup_type}: {r.items}; "
        f"{human_bytes(r.size_bytes)} read, {human_bytes(r.new_bytes)} new, "
        f"{human_bytes(r.stored_bytes)} stored"
        + (f" (dedup {r.dedup})" if r.dedup else "")
        + f" in {r.timing()}"
        + (
            f" (into the fallback repository {r.fallback}: the primary was unreachable)"
            if r.fallback
            else ""
        )
    )


def drill_line(o: DrillOutcome) -> str:
    """One line about one drilled target."""
    name = f"{o.component}/{o.target}"
    r = o.result
    if r is None:
        error = (o.error or "").strip().splitlines() or [""]
        return f"{name}: FAILED ({o.reason or 'unexpected_error'}): {error[0]}"
    snap = f"snapshot {r.short_id} ({human_duration(r.snapshot_age_s)} old)"
    if o.ok:
        what = r.checked[0] if r.checked else "verified"
        return f"{name}: ok, {snap}: {what} in {human_elapsed(r.duration_s)}"
    return (
        f"{name}: FAILED (verification_failed), {snap}: {len(r.mismatches)} mismatch(es): "
        + "; ".join(r.mismatches[:3])
    )


def cmd_backup(args: argparse.Namespace) -> int:
    from flows.backup.full_backup import full_backup
    from flows.backup.group import BackupFailed
    from flows.backup.incremental_backup import incremental_backup

    targets = chosen_targets(args)
    flow = full_backup if args.full else incremental_backup
    kwargs: dict[str, Any] = {**flow_parameters(targets), "repository": args.repository}
    if args.retention_days is not None:
        kwargs["retention_days"] = args.retention_days
    try:
        results = flow(**kwargs)
    except BackupFailed as e:
        # The targets that succeeded have valid snapshots: shown as usual, then the failures.
        for r in e.results:
            print(backup_line(r))
        total = len(e.failures) + len(e.results)
        for key, message in e.failures.items():
            first = message.strip().splitlines()[0] if message.strip() else "failed"
            print(f"scholar-ops backup: {key} failed: {first}", file=sys.stderr)
        if total > 1:
            print(
                f"scholar-ops backup: {len(e.failures)} of {total} targets failed", file=sys.stderr
            )
        return EXIT_FAILED
    for r in results:
        print(backup_line(r))
    return EXIT_OK


def cmd_drill(args: argparse.Namespace) -> int:
    from flows.backup.restore_drill import DrillFailed, restore_drill

    targets = chosen_targets(args)
    try:
        outcomes = restore_drill(
            **flow_parameters(targets),
            repository=args.repository,
            monitoring=args.monitoring,
            scratch_dir=args.scratch_dir,
        )
    except DrillFailed as e:
        for o in e.outcomes:
            print(drill_line(o))
        failed = [f"{o.component}/{o.target}" for o in e.outcomes if not o.ok]
        print(
            f"scholar-ops drill: {len(failed)} of {len(e.outcomes)} restore drills failed: "
            + ", ".join(failed),
            file=sys.stderr,
        )
        return EXIT_FAILED
    for o in outcomes:
        print(drill_line(o))
    return EXIT_OK
