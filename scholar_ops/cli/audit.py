"""`scholar-ops audit`: the repository's audit trail (scholar_ops.vault.audit), read-only.

Lists who backed up, restored, checked, pruned, copied, rotated the key, unlocked or
migrated, when and how it went; ``--verify`` walks the hash chain and exits 3 naming the
first record that is missing, edited or out of place. Like ``snapshots`` and ``check``
it reads the repository directly, without Prefect (scholar_ops.cli.direct).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta
from typing import Any

from scholar_ops.cli.common import EXIT_DAMAGED, EXIT_OK, iso_time
from scholar_ops.cli.direct import open_repository

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_value(value: str) -> datetime:
    """An ISO date/time, or a duration back from now (``30m``, ``12h``, ``7d``, ``2w``)."""
    m = _DURATION_RE.match(value.strip())
    if m:
        return datetime.now().astimezone() - timedelta(
            seconds=float(m.group(1)) * _UNITS[m.group(2)]
        )
    try:
        return iso_time(value)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither an ISO date/time nor a duration like 12h, 7d or 2w"
        ) from None


def register(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="the audit trail: who did what to the backups, when, and how it went",
        description="List the repository's audit records, oldest first: every backup, "
        "restore, check, prune, copy, key rotation, init, unlock and migration, with who "
        "(user, host, Prefect flow run), which snapshots, when and the outcome. --verify "
        "walks the hash chain: a record deleted, edited or swapped is named (exit 3).",
    )
    p.add_argument("--since", type=since_value, metavar="DATE|DURATION",
                   help="only records since this ISO date/time or this long ago (12h, 7d, 2w)")  # fmt: skip
    p.add_argument("--verify", action="store_true", help="verify the chain (exit 3 if broken)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from scholar_ops.vault import audit

    repo = open_repository(args.repository)
    if args.verify:
        report = audit.verify(repo)
        records, problems = report.records, report.problems
    else:
        records, problems = audit.read_all(repo)
    chosen = [r for r in records if args.since is None or r.when >= args.since]
    if args.json:
        print(json.dumps([r.to_dict() for r in chosen], indent=2))
    else:
        _print_table(chosen)
    for problem in problems:
        print(f"damaged: {problem}", file=sys.stderr)
    if problems:
        print(
            f"scholar-ops audit: the audit trail is damaged at {problems[0].object_name} "
            f"({len(problems)} problem(s), above)",
            file=sys.stderr,
        )
        return EXIT_DAMAGED
    if args.verify and not args.json:
        tip = report.tip
        forks = f"; {len(report.tips)} unmerged branches" if len(report.tips) > 1 else ""
        print(
            f"audit trail verified: {len(records)} records"
            + (f", tip {tip.seq} ({tip.sha256[:16]})" if tip else "")
            + forks
        )
    return EXIT_OK


def _print_table(records: list[Any]) -> None:
    cols = ["seq", "time", "operation", "outcome", "who", "snapshots", "flow_run", "error"]
    rows = [
        {
            "seq": str(r.seq),
            "time": r.time[:19],
            "operation": r.operation,
            "outcome": r.outcome,
            "who": f"{r.user}@{r.host}",
            "snapshots": ",".join(s[:8] for s in r.snapshots[:4])
            + (f",+{len(r.snapshots) - 4}" if len(r.snapshots) > 4 else ""),
            "flow_run": (r.flow_run_id or "")[:8],
            "error": r.error or "",
        }
        for r in records
    ]
    widths = {c: max([len(c), *(len(row[c]) for row in rows)]) for c in cols[:-1]}
    print("  ".join(c.ljust(widths.get(c, 0)) for c in cols).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths.get(c, 0)) for c in cols).rstrip())
    print(f"{len(rows)} records")
