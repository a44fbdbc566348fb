"""`scholar-ops automations`: check, list and apply the Prefect automations of automations.yaml.

The parser is built without Prefect; the verbs import scholar_ops.automations when run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from scholar_ops.automation_defaults import DEFAULT_FILE, DEFAULT_WEBHOOK_BLOCK
from scholar_ops.cli.common import EXIT_OK


def register(sub: Any) -> None:
    auto = sub.add_parser(
        "automations",
        help="Prefect automations of automations.yaml (alerts to AlertManager, metrics export)",
    )
    asub = auto.add_subparsers(dest="automations_verb", required=True, metavar="ACTION")
    add_subcommands(asub)


def add_subcommands(sub: Any) -> None:
    """Add ``apply``, ``list`` and ``check`` to an argparse subparsers object (``func`` set)."""

    def file_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--file",
            "-f",
            type=Path,
            default=None,
            help=f"the automations file (default ./{DEFAULT_FILE}, else the repository's)",
        )

    def block_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--webhook-block",
            default=os.environ.get("SCHOLAR_OPS_WEBHOOK_BLOCK") or DEFAULT_WEBHOOK_BLOCK,
            help="the AlertManager Webhook block (env SCHOLAR_OPS_WEBHOOK_BLOCK; default %(default)s)",
        )

    a = sub.add_parser("apply", help="create or update the automations of the file")
    file_option(a)
    a.add_argument(
        "--alertmanager-url",
        default=os.environ.get("SCHOLAR_OPS_ALERTMANAGER_URL") or None,
        help="create/update the Webhook block posting to URL/api/v2/alerts "
        "(env SCHOLAR_OPS_ALERTMANAGER_URL)",
    )
    block_option(a)
    a.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    a.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out automations whose deployment or Webhook block does not exist",
    )
    a.set_defaults(func=cmd_apply)

    ls = sub.add_parser("list", help="the automations on the server and those of the file")
    file_option(ls)
    block_option(ls)
    ls.set_defaults(func=cmd_list)

    c = sub.add_parser("check", help="validate the file (no server needed)")
    file_option(c)
    c.set_defaults(func=cmd_check)


def cmd_apply(args: argparse.Namespace) -> int:
    from scholar_ops.automations import apply_automations, default_file

    results = apply_automations(
        args.file or default_file(),
        alertmanager_url=args.alertmanager_url,
        webhook_block=args.webhook_block,
        dry_run=args.dry_run,
        skip_missing=args.skip_missing,
    )
    suffix = " (dry run)" if args.dry_run else ""
    for name, status in results:
        print(f"{status:<10} {name}{suffix}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from scholar_ops.automations import default_file, list_automations

    rows = list_automations(args.file or default_file(), webhook_block=args.webhook_block)
    for r in rows:
        enabled = "-" if r.enabled is None else ("enabled" if r.enabled else "paused")
        print(f"{r.id or '-'!s:<36}  {enabled:<7}  {r.state:<11}  {r.name}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from scholar_ops.automations import default_file, load_automations

    path = args.file or default_file()
    specs = load_automations(path)
    print(f"{path}: {len(specs)} automations OK: " + ", ".join(s.name for s in specs))
    return EXIT_OK
