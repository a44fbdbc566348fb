"""`scholar-ops restore ... --time T | --lsn L | --pitr`: point-in-time recovery of a
physical base backup (sources/postgres/pitr.py) into a new data directory on this machine.

Base backups themselves are an ordinary component (``postgres-base``: `scholar-ops backup
--postgres-base NAME`, the backup flows' ``postgres_base_targets``). The recovery runs the
engine directly, here: it starts a PostgreSQL server from this machine's binaries on a data
directory of this machine, which a flow on some worker could not hand back.
``add_restore_options(parser)`` adds the options to `restore`; ``cmd_restore_pitr(args)``
runs when ``--time``/``--lsn``/``--pitr`` is given or the snapshot is a base backup.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from scholar_ops.cli.common import EXIT_OK, iso_time
from scholar_ops.cli.direct import Profile, open_repository
from scholar_ops.vault.errors import ConfigError


def add_restore_options(r: Any) -> None:
    g = r.add_argument_group("point-in-time recovery (a physical base backup plus the WAL archive)")
    g.add_argument("--time", type=iso_time, metavar="TIME", help="recover to this time")
    g.add_argument("--lsn", metavar="LSN", help="recover to this WAL position (e.g. 0/3000148)")
    g.add_argument(
        "--pitr", action="store_true", help="recover to the latest point in the WAL archive"
    )
    g.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the restored server running on its port (default: stop it once verified)",
    )
    g.add_argument(
        "--archive",
        action="store_true",
        help="keep the restored server's archive_mode (default: off while the restore runs)",
    )
    g.add_argument(
        "--restore-command",
        metavar="CMD",
        help="the restored server's restore_command (default: scholar-ops-wal fetch, with the "
        "repository and key file setup recorded)",
    )


def wants_pitr(args: argparse.Namespace) -> bool:
    return bool(args.time or args.lsn or args.pitr)


def _restore_command(args: argparse.Namespace) -> str:
    from scholar_ops.sources.postgres.pitr import restore_command_for

    if args.restore_command:
        return str(args.restore_command)
    profile = Profile.load(args.repository)
    if profile is None or not profile.local_path or not profile.master_key_file:
        raise ConfigError(
            f"no local repository path and key file recorded for {args.repository!r}: pass "
            "--restore-command 'scholar-ops-wal --repository DIR --key-file FILE --resident fetch %f %p' "
            "(run by the server's OS user)"
        )
    wal_cmd = shutil.which("scholar-ops-wal")
    cmd = restore_command_for(profile.local_path, profile.master_key_file)
    if wal_cmd:
        cmd = cmd.replace(f"{sys.executable} -m scholar_ops.walcmd", wal_cmd, 1)
    return cmd


def cmd_restore_pitr(args: argparse.Namespace) -> int:
    from scholar_ops.sources.postgres.basebackup import COMPONENT
    from scholar_ops.sources.postgres.pitr import RecoveryTarget, choose_base, restore_pitr

    if sum(bool(x) for x in (args.time, args.lsn, args.pitr)) > 1:
        raise ConfigError("give one of --time, --lsn and --pitr (the latest point)")
    target = (
        RecoveryTarget.at_time(args.time)
        if args.time
        else RecoveryTarget.at_lsn(args.lsn)
        if args.lsn
        else RecoveryTarget()
    )
    repo = open_repository(args.repository)
    if args.snapshot == "latest":
        snap = choose_base(repo, target, args.source_target)
    else:
        snap = repo.find_snapshot(args.snapshot, component=COMPONENT)
    to = Path(args.to) if args.to else Path.cwd() / f"pitr-{snap.short_id}"
    result = restore_pitr(
        repo,
        snap,
        to,
        target=target,
        restore_command=_restore_command(args),
        keep_running=args.keep_running,
        archive=args.archive,
    )
    print(result.line())
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return EXIT_OK
