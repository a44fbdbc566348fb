"""`scholar-ops metrics`: run the metrics export once; forget a retired target's groups."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scholar_ops.cli.common import COMPONENTS, DEFAULT_MONITORING, EXIT_OK
from scholar_ops.vault.errors import ConfigError


def register(sub: Any) -> None:
    mt = sub.add_parser("metrics", help="metrics: export them now, forget a retired target")
    msub = mt.add_subparsers(dest="metrics_verb", required=True, metavar="ACTION")
    mex = msub.add_parser(
        "export", help="run the metrics-export flow once and print what it pushed"
    )
    mfg = msub.add_parser(
        "forget",
        help="delete a retired target's backup, drill and database groups from the Pushgateway "
        "(its stale-backup alerts stop)",
    )
    mfg.add_argument("--component", required=True, choices=COMPONENTS)
    mfg.add_argument("--target", required=True, help="the target's name in snapshots (its label)")
    for mp in (mex, mfg):
        mp.add_argument(
            "--monitoring",
            default=DEFAULT_MONITORING,
            metavar="NAME",
            help="MonitoringSettings block (default %(default)s; or SCHOLAR_OPS_PUSHGATEWAY_URL)",
        )
    mex.set_defaults(func=cmd_metrics_export)
    mfg.set_defaults(func=cmd_metrics_forget)


def cmd_metrics_export(args: argparse.Namespace) -> int:
    from flows.monitoring.metrics_export import metrics_export

    result = metrics_export(monitoring=args.monitoring)
    for group in result["groups"]:
        print(f"pushed   {group}")
    for name, ok in sorted(result["collectors"].items()):
        print(f"collector {name}: {'ok' if ok else 'FAILED'}")
    for name, error in sorted(result["errors"].items()):
        print(f"scholar-ops metrics export: collector {name}: {error}", file=sys.stderr)
    return EXIT_OK


def cmd_metrics_forget(args: argparse.Namespace) -> int:
    from scholar_ops.monitoring import names
    from scholar_ops.monitoring.push import delete_group
    from tasks.metrics import load_monitoring

    settings = load_monitoring(args.monitoring)
    if settings is None:
        raise ConfigError(
            f"no MonitoringSettings block {args.monitoring!r} and no SCHOLAR_OPS_PUSHGATEWAY_URL: "
            "nothing to forget"
        )
    key = {"component": args.component, "target": args.target}
    for job in (names.JOB_BACKUP, names.JOB_DRILL, names.JOB_DATABASES):
        delete_group(settings.pushgateway_url, job, key, auth=settings.push_auth)
        print(f"deleted  {job}{{component={args.component},target={args.target}}}")
    return EXIT_OK
