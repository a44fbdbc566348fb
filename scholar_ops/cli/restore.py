"""`scholar-ops restore`: restore one snapshot of any component, through the restore flows."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from scholar_ops.cli import pitr
from scholar_ops.cli.common import COMPONENTS, DEFAULT_TARGET, EXIT_OK, iso_time
from scholar_ops.cli.direct import open_repository
from scholar_ops.cli.errors import find_in_chain

if TYPE_CHECKING:
    from scholar_ops.vault.summary import RestoreSummary
from scholar_ops.vault.errors import ConfigError, TargetNotEmpty


def register(sub: Any) -> None:
    r = sub.add_parser(
        "restore",
        help="restore a snapshot (a database, a Redis server, a Chroma store or files)",
        description=(
            "Restore one snapshot. Its component is read from the snapshot (or --component; "
            "'latest' without --component means PostgreSQL). postgres: --to DATABASE [--target]; "
            "postgres-base (point-in-time recovery): --to DATADIR (new or empty) [--time T | --lsn "
            "L | --pitr] [--keep-running]; "
            "redis: --target NAME (into that running server) or --to DIR (dump.rdb for a new "
            "server); chroma: --target NAME or --to DIR (a new embedded store); files: --to DIR."
        ),
    )
    r.add_argument("snapshot", help="snapshot id (or unique prefix) or 'latest'")
    r.add_argument(
        "--component",
        choices=COMPONENTS,
        help="the snapshot's component (default: read from the snapshot; with 'latest': postgres)",
    )
    r.add_argument(
        "--to",
        dest="to",
        metavar="DATABASE|DIR",
        help="postgres: database to restore into (created if missing); redis: directory for "
        "dump.rdb; chroma: a new embedded store directory; files: directory to restore into",
    )
    r.add_argument(
        "--target",
        metavar="NAME",
        help=f"target block to restore into: postgres: its server (default {DEFAULT_TARGET}); "
        "redis, chroma: that server or store",
    )
    r.add_argument(
        "--from-target",
        dest="source_target",
        metavar="NAME",
        help="with 'latest': the backed-up target to pick from (the snapshots' target name)",
    )
    r.add_argument(
        "--before",
        type=iso_time,
        metavar="TIME",
        help="with 'latest': the latest before this ISO date/time (default time zone: local)",
    )
    pr = r.add_argument_group("postgres")
    pr.add_argument(
        "--clean", action="store_true", help="drop and recreate the database if it holds objects"
    )
    pr.add_argument(
        "--schema", action="append", dest="schemas", help="restore only this schema (repeatable)"
    )
    pr.add_argument(
        "--table", action="append", dest="tables", help="restore only schema.table (repeatable)"
    )
    pr.add_argument("--jobs", type=int, help="parallel restore jobs (default 2)")
    pr.add_argument("--no-owner", action="store_true", help="skip ownership and privileges")
    pr.add_argument(
        "--roles",
        choices=["create", "skip", "fail"],
        help="the backup's roles the server lacks: create them (default; never alters a role "
        "that exists), skip (create none: owners and privileges are then left out), or fail "
        "before anything is written",
    )
    rr = r.add_argument_group("redis and chroma")
    rr.add_argument(
        "--existing",
        choices=["fail", "skip", "replace", "flush"],
        help="what happens to keys (redis --target) or collections (chroma) already there: "
        "fail (default), skip, replace, or flush (redis only: empty those databases first)",
    )
    rr.add_argument(
        "--db",
        type=int,
        action="append",
        dest="dbs",
        metavar="N",
        help="redis with --target: restore only this database (repeatable)",
    )
    rr.add_argument(
        "--collection",
        action="append",
        dest="collections",
        metavar="NAME",
        help="chroma: restore only this collection (repeatable)",
    )
    fr = r.add_argument_group("files")
    fr.add_argument(
        "--path",
        action="append",
        dest="paths",
        metavar="P",
        help="restore only this path of the snapshot (repeatable)",
    )
    fr.add_argument(
        "--overwrite",
        action="store_true",
        help="files: restore into a non-empty directory; redis with --to: replace its dump.rdb",
    )
    pitr.add_restore_options(r)
    r.set_defaults(func=cmd_restore)


# Options of `restore` that only some components take: dest -> (flag, components).
_RESTORE_ONLY = {
    "clean": ("--clean", ("postgres",)),
    "schemas": ("--schema", ("postgres",)),
    "tables": ("--table", ("postgres",)),
    "jobs": ("--jobs", ("postgres",)),
    "no_owner": ("--no-owner", ("postgres",)),
    "roles": ("--roles", ("postgres",)),
    "existing": ("--existing", ("redis", "chroma")),
    "dbs": ("--db", ("redis",)),
    "collections": ("--collection", ("chroma",)),
    "paths": ("--path", ("files",)),
    "overwrite": ("--overwrite", ("redis", "files")),
    "keep_running": ("--keep-running", ("postgres-base",)),
    "archive": ("--archive", ("postgres-base",)),
    "restore_command": ("--restore-command", ("postgres-base",)),
}


def _restore_component(args: argparse.Namespace) -> str:
    """--component, else the snapshot's own (opening the repository), else postgres for 'latest'
    (postgres-base with --time, --lsn or --pitr)."""
    if args.snapshot == "latest":
        return str(args.component or ("postgres-base" if pitr.wants_pitr(args) else "postgres"))
    snap = open_repository(args.repository).find_snapshot(args.snapshot)
    if args.component and args.component != snap.component:
        raise ConfigError(
            f"snapshot {snap.short_id} is a {snap.component} snapshot, not {args.component}: "
            "drop --component or pick another snapshot"
        )
    return snap.component


def _check_only_options(args: argparse.Namespace, component: str) -> None:
    for dest, (flag, components) in _RESTORE_ONLY.items():
        if getattr(args, dest) not in (None, False) and component not in components:
            raise ConfigError(
                f"{flag} does not apply to a {component} restore (only {'/'.join(components)})"
            )


def _check_restore_options(args: argparse.Namespace, component: str) -> None:
    _check_only_options(args, component)
    if component == "postgres":
        if not args.to:
            raise ConfigError(
                "restoring a postgres snapshot needs --to DATABASE (the database to restore "
                "into; created if missing)"
            )
        return
    if component == "files":
        if not args.to or args.target:
            raise ConfigError(
                "restoring a files snapshot needs --to DIR (a missing or empty directory, or "
                "--overwrite), and no --target"
            )
        return
    if bool(args.to) == bool(args.target):
        where = (
            "--target NAME (a Redis target block: restore into that running server) or --to DIR "
            "(write dump.rdb there for a new server)"
            if component == "redis"
            else "--target NAME (a Chroma target block: restore into that store) or --to DIR "
            "(a new embedded Chroma directory)"
        )
        raise ConfigError(f"restoring a {component} snapshot needs exactly one of {where}")
    if component == "redis":
        if args.to and (args.existing is not None or args.dbs):
            raise ConfigError(
                "--existing and --db are for a restore into a running server (--target); "
                "a dump.rdb written with --to holds every database"
            )
        if args.target and args.overwrite:
            raise ConfigError(
                "--overwrite replaces a dump.rdb written with --to; into a server, use --existing"
            )
    if component == "chroma" and args.existing == "flush":
        raise ConfigError("--existing for chroma is fail, skip or replace (flush is for redis)")


def _not_empty_message(args: argparse.Namespace, component: str, msg: str) -> str:
    """The restore's TargetNotEmpty message, with the command-line option that overrides it.

    The restore functions' advice names their own arguments (``existing='replace'``,
    ``overwrite=True``): it is replaced by the option to pass here."""
    if component == "postgres" or "--" in msg:
        return msg  # it names the option already (postgres: --clean)
    if "existing=" in msg or (component == "redis" and args.target):
        hint = (
            "pass --existing skip (keep its keys), replace (overwrite keys of the same name) "
            "or flush (empty those databases first)"
            if component == "redis"
            else "pass --existing replace (delete and recreate those collections) or skip, "
            "or restore elsewhere"
        )
    elif "overwrite=" in msg:
        hint = (
            "pass --overwrite to replace it, or --to another directory"
            if component == "redis"
            else "pass --overwrite to restore over what is there, or --to an empty directory"
        )
    else:
        return msg  # nothing overrides it (e.g. a physical Chroma copy needs a new directory)
    found = [i for i in (msg.find("existing="), msg.find("overwrite=")) if i >= 0]
    if found:  # drop the restore function's own advice: the sentence holding it
        cut = max(msg.rfind(sep, 0, min(found)) for sep in (". ", "; ", ": "))
        if cut > 0:
            msg = msg[:cut]
    return f"{msg.rstrip('. ')}; {hint}"


def cmd_restore(args: argparse.Namespace) -> int:
    component = _restore_component(args)
    if component == "postgres-base" or pitr.wants_pitr(args):
        if component != "postgres-base":
            raise ConfigError(
                f"--time, --lsn and --pitr recover a PostgreSQL base backup (postgres-base), "
                f"not a {component} snapshot: pick a base backup, or restore this one without them"
            )
        _check_only_options(args, component)
        return pitr.cmd_restore_pitr(args)
    _check_restore_options(args, component)
    snapshot, before, source_target = args.snapshot, args.before, args.source_target
    if component != "postgres" and snapshot == "latest" and before is not None:
        # Only the postgres flow takes `before`: pick the snapshot here for the others.
        snap = open_repository(args.repository).find_snapshot(
            "latest", component=component, target=source_target, before=before
        )
        snapshot, source_target = snap.backup_id, None
    to = args.to if component == "postgres" or not args.to else os.path.abspath(args.to)
    try:
        result = _run_restore(args, component, snapshot, to, source_target)
    except Exception as e:
        not_empty = find_in_chain(e, TargetNotEmpty)
        if not_empty is None:
            raise
        msg = str(not_empty).strip().splitlines()[0] if str(not_empty).strip() else "not empty"
        raise TargetNotEmpty(_not_empty_message(args, component, msg)) from e
    _print_restore(result)
    return EXIT_OK


def _run_restore(
    args: argparse.Namespace,
    component: str,
    snapshot: str,
    to: str | None,
    source_target: str | None,
) -> RestoreSummary:
    from flows.backup.restore_chroma import restore_chroma
    from flows.backup.restore_files import restore_files
    from flows.backup.restore_postgres import restore_postgres
    from flows.backup.restore_redis import restore_redis

    repository = args.repository
    if component == "postgres":
        assert to is not None
        return restore_postgres(
            target=args.target or DEFAULT_TARGET,
            database=to,
            before=args.before,
            clean=args.clean,
            schemas=args.schemas,
            tables=args.tables,
            jobs=args.jobs if args.jobs is not None else 2,
            no_owner=args.no_owner,
            roles=args.roles or "create",
            snapshot=snapshot,
            repository=repository,
            source_target=source_target,
        )
    if component == "redis":
        return restore_redis(
            target=args.target,
            rdb_dir=to,
            existing=args.existing or "fail",
            dbs=args.dbs,
            overwrite=args.overwrite,
            snapshot=snapshot,
            repository=repository,
            source_target=source_target,
        )
    if component == "chroma":
        return restore_chroma(
            target=args.target,
            directory=to,
            collections=args.collections,
            existing=args.existing or "fail",
            snapshot=snapshot,
            repository=repository,
            source_target=source_target,
        )
    assert to is not None
    return restore_files(
        destination=to,
        paths=args.paths,
        overwrite=args.overwrite,
        snapshot=snapshot,
        repository=repository,
        source_target=source_target,
    )


def _print_restore(result: RestoreSummary) -> None:
    print(result.line())
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
