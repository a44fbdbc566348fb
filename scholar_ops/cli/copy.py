"""`scholar-ops copy --to BLOCK`: copy snapshots (and the WAL archive) to a second repository.

The source is the global ``--repository``; both are opened from their blocks as the
read-only verbs open them (scholar_ops.cli.direct), each with its own master key. The
engine (scholar_ops.vault.copy) does the work directly, as ``check`` and ``migrate`` do:
one line per snapshot as it is handled, then the WAL line and the total. A snapshot
that fails is reported and the others are still copied; the exit code is then 3 for
damaged data (naming the object) and 1 otherwise.
"""

from __future__ import annotations

import argparse
from typing import Any

from scholar_ops.cli.common import EXIT_OK, check_block_name
from scholar_ops.cli.direct import open_repository


def register(sub: Any) -> None:
    p = sub.add_parser(
        "copy",
        help="copy snapshots to a second repository (3-2-1)",
        description="Copy the snapshots the destination repository lacks (all, or those chosen "
        "by id, component or target) from the repository of --repository to the one of --to, "
        "re-encrypted with the destination's keys; only chunks the destination lacks are "
        "transferred. Each copy is read back from the destination and compared with the "
        "source before it is committed. Copies keep the backup's identity (component, target, "
        "time, checksum) and record where they came from; running it again copies nothing "
        "twice. Each repository keeps its own retention. The WAL archive the destination's "
        "base backups need is copied too.",
    )
    p.add_argument("--to", required=True, metavar="REPOSITORY_BLOCK",
                   help="the destination's backup repository block")  # fmt: skip
    p.add_argument("--snapshot", action="append", default=[], metavar="ID",
                   help="a snapshot id or unique prefix (repeatable; default: every snapshot)")  # fmt: skip
    p.add_argument("--component", help="only snapshots of this component")
    p.add_argument("--target", help="only snapshots of this target (its name in snapshots)")
    p.add_argument("--group", help="only the snapshots of this backup run (group id)")
    p.add_argument("--dry-run", action="store_true", help="say what would be copied, copy nothing")
    p.add_argument("--verify", choices=["full", "new", "none"], default="full",
                   help="before committing each copy read back from the destination: all of "
                        "it, compared with the source (full, the default); only the data this "
                        "copy uploaded (new); nothing (none)")  # fmt: skip
    p.add_argument("--no-wal", action="store_true", help="do not copy the WAL archive")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for other processes' locks")  # fmt: skip
    p.set_defaults(func=cmd_copy)


def cmd_copy(args: argparse.Namespace) -> int:
    from scholar_ops.vault.copy import SnapshotCopy, copy_snapshots

    check_block_name(args.to, "--to")
    source = open_repository(args.repository)
    destination = open_repository(args.to)

    def show(item: SnapshotCopy) -> None:
        print(item.line(), flush=True)

    report = copy_snapshots(
        source,
        destination,
        ids=args.snapshot,
        component=args.component,
        target=args.target,
        group=args.group,
        dry_run=args.dry_run,
        verify=args.verify,
        wait=args.wait,
        on_snapshot=show,
    )
    if not args.no_wal:
        from scholar_ops.sources.postgres.wal import archived_clusters
        from scholar_ops.sources.postgres.wal.copy import copy_wal

        if archived_clusters(source):
            wal = copy_wal(source, destination, dry_run=args.dry_run)
            print(wal.line())
            report.wal_copied, report.wal_bytes = wal.copied, wal.bytes_transferred
    print(report.total_line())
    report.raise_for_errors()
    return EXIT_OK
