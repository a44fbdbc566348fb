"""Verbs on the repository itself: snapshots, check, key, unlock, migrate.

They read (or, for unlock, migrate and key rotation, administer) the
repository directly, as restic does: no flow runs, and Prefect is imported only
when the repository's blocks cannot be read otherwise (scholar_ops.cli.direct).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from scholar_ops.cli.common import (
    COMPONENTS,
    EXIT_DAMAGED,
    EXIT_OK,
    iso_time,
)
from scholar_ops.cli.direct import locate, open_repository


def register(sub: Any) -> None:
    ls = sub.add_parser(
        "snapshots",
        help="list snapshots",
        description="List the snapshots, oldest first. A damaged snapshot object is named on "
        "stderr after the others are listed (exit 3).",
    )
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--component", choices=COMPONENTS)
    ls.add_argument("--target", help="only this target (its name in snapshots)")
    ls.add_argument("--type", choices=["full", "incremental"])
    ls.add_argument("--since", type=iso_time, help="ISO date/time (default time zone: local)")
    ls.set_defaults(func=cmd_snapshots)

    c = sub.add_parser(
        "check",
        help="verify the repository",
        description="Verify the repository: every object opens under its own name and every "
        "snapshot's data is there; --read-data also reads the data back. Snapshots this host "
        "saw before that vanished without a prune are reported (a rollback); the audit "
        "trail's chain is verified too (`scholar-ops audit --verify`). Exit 3 when anything "
        "is damaged.",
    )
    c.add_argument("--read-data", nargs="?", type=float, const=1.0, default=0.0, metavar="FRACTION",
                   help="also read back all (or this fraction, 0-1) of the data")  # fmt: skip
    c.add_argument(
        "--accept-missing",
        action="store_true",
        help="stop reporting snapshots seen before that are gone (after investigating)",
    )
    c.set_defaults(func=cmd_check)

    key = sub.add_parser("key", help="master key operations")
    ksub = key.add_subparsers(dest="key_verb", required=True, metavar="ACTION")
    kl = ksub.add_parser("list", help="the repository's key sets and the master key they open with")
    kl.set_defaults(func=cmd_key_list)
    rot = ksub.add_parser(
        "rotate", help="rewrap the data keys with a new master key (no data is rewritten)"
    )
    rot.add_argument(
        "--new-key-file", help="the new key (default: generate one and write it to --write-to)"
    )
    rot.add_argument("--write-to", default="scholar-ops-master.new.key")
    rot.set_defaults(func=cmd_key_rotate)

    un = sub.add_parser(
        "unlock",
        help="remove stale locks (of processes gone, or not refreshed for 30 minutes)",
        description="Remove the repository's stale locks: those of processes that are gone from "
        "this host, and those not refreshed for 30 minutes. --force removes every lock, live "
        "ones too: only when you know no scholar-ops process uses the repository.",
    )
    un.add_argument("--force", action="store_true", help="remove live and unreadable locks too")
    un.set_defaults(func=cmd_unlock)

    mg = sub.add_parser(
        "migrate",
        help="upgrade the repository to the current format, in place",
        description="Upgrade a repository written by an earlier scholar-ops to the current "
        "format (docs/design.md): re-seals pack headers, index objects, snapshots and the "
        "config under an exclusive lock; no backed-up data changes. Safe to run again.",
    )
    mg.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                    help="wait this long for other processes' locks")  # fmt: skip
    mg.set_defaults(func=cmd_migrate)


def cmd_snapshots(args: argparse.Namespace) -> int:
    from scholar_ops.vault.summary import catalog_row

    repo = open_repository(args.repository)
    snaps, errors = repo.scan_snapshots()
    chosen = [
        s
        for s in snaps
        if (args.component is None or s.component == args.component)
        and (args.target is None or s.target == args.target)
        and (args.type is None or s.backup_type == args.type)
        and (args.since is None or s.time >= args.since)
    ]
    if args.json:
        print(json.dumps([s.metadata() for s in chosen], indent=2, default=str))
    else:
        _print_table([catalog_row(s) for s in chosen])
    for e in errors:
        print(f"damaged: {e}", file=sys.stderr)
    if errors:
        print(
            f"scholar-ops snapshots: {len(errors)} snapshot object(s) cannot be used (above); "
            "run `scholar-ops check` for the whole picture",
            file=sys.stderr,
        )
        return EXIT_DAMAGED
    return EXIT_OK


def _print_table(rows: list[dict[str, Any]]) -> None:
    cols = [
        "id",
        "time",
        "component",
        "target",
        "type",
        "size",
        "stored",
        "retention_until",
        "group",
    ]
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols).rstrip())
    print(f"{len(rows)} snapshots")


def cmd_check(args: argparse.Namespace) -> int:
    from scholar_ops.vault import progress
    from scholar_ops.vault.checker import check
    from scholar_ops.vault.known import default_state_dir

    repo = open_repository(args.repository)

    started = time.monotonic()

    def show(done: int, total: int) -> None:
        progress.notify("check: packs read", done, total, time.monotonic() - started, "items")

    report = check(
        repo,
        read_data=args.read_data,
        known_state=default_state_dir(),
        accept_missing=args.accept_missing,
        progress=show,
    )
    if args.read_data:
        progress.notify("check: packs read", None, None, time.monotonic() - started, "items")
    snapshots, _ = repo.scan_snapshots()  # a damaged one is in the report already
    if any(s.component == "postgres-base" for s in snapshots):
        from scholar_ops.sources.postgres.archive import check_wal_archives

        report.problems += check_wal_archives(repo, snapshots)
    for notice in report.notices:
        print(f"notice: {notice}", file=sys.stderr)
    if not report.ok:
        for problem in report.problems:
            print(f"damaged: {problem}", file=sys.stderr)
        print(
            f"scholar-ops check: repository damaged: {len(report.problems)} problem(s) in "
            f"{repo.location} (above)",
            file=sys.stderr,
        )
        return EXIT_DAMAGED
    print(
        f"no errors: {report.snapshots} snapshots, {report.packs} packs; "
        f"{report.packs_read} packs and {report.chunks_read} chunks read back"
    )
    return EXIT_OK


def cmd_key_list(args: argparse.Namespace) -> int:
    repo = open_repository(args.repository)
    print("key set           created                    master key id     ")
    for info in sorted(repo.storage.list("keys/"), key=lambda o: o.name):
        kid = info.name.removeprefix("keys/")
        try:
            doc = json.loads(repo.storage.get(info.name))
            created, mkid = str(doc.get("created", "?")), str(doc.get("master_key_id", "?"))
        except ValueError:
            created, mkid = "?", "? (damaged)"
        opens = "" if bytes.fromhex(kid) in repo.keys else "  (not opened by this master key)"
        current = "  current" if kid == repo.config.current_key_id else ""
        print(f"{kid}  {created[:25]:<25}  {mkid}{current}{opens}")
    return EXIT_OK


def cmd_key_rotate(args: argparse.Namespace) -> int:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    from flows.backup.rotate_master_key import rotate_master_key
    from scholar_ops.cli.setup import write_key_file
    from tasks.common import load_repository

    block = load_repository(args.repository)
    if args.new_key_file:
        new = Path(args.new_key_file).read_text().strip()
    else:
        new = secrets.token_hex(32)
        write_key_file(Path(args.write_to), new)
        print(f"generated a new master key in {args.write_to}: keep a copy offline")
    waiting = f"{block.master_key_secret}-rotating"
    Secret(value=SecretStr(new)).save(waiting, overwrite=True)
    rewrapped = rotate_master_key(new_master_key_secret=waiting, repository=args.repository)
    print(
        f"rewrapped {len(rewrapped)} key set(s); Secret block {block.master_key_secret!r} holds "
        "the new key"
    )
    return EXIT_OK


def cmd_unlock(args: argparse.Namespace) -> int:
    from scholar_ops.vault.lock import remove_locks

    repo = open_repository(args.repository)
    removed = remove_locks(repo.storage, repo, force=args.force)
    for r in removed:
        if r.live:
            print(f"warning: removed a lock that was not stale: {r.description}", file=sys.stderr)
        else:
            print(f"removed {r.description}")
    if not removed:
        live = repo.locks()
        held = len(live.locks) + len(live.unreadable)
        print(
            "no stale locks"
            + (f" ({held} live lock(s) kept; --force removes them too)" if held else "")
        )
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from scholar_ops.vault.migrate import migrate

    storage, master = locate(args.repository)
    started = datetime.now()
    report = migrate(storage, master, wait=args.wait, progress=print)
    if not report.changed:
        print(f"{storage.location} is already format {report.to_version}: nothing to do")
        return EXIT_OK
    took = (datetime.now() - started).total_seconds()
    print(
        f"upgraded {storage.location} from format {report.from_version} to {report.to_version} "
        f"in {took:.1f} s: {report.packs} packs, {report.index_objects} index objects, "
        f"{report.snapshots} snapshots re-sealed"
    )
    return EXIT_OK
