"""`scholar-ops test`: run the functionality-tests (or smoke-tests) flow and print the report.

Exit codes: 0 every suite passed; 1 a test failed or a suite could not run
(unavailable, error, timed out); 2 the plan is invalid or missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from blocks.names import DEFAULT_TEST_PLAN
from scholar_ops.cli.common import DEFAULT_MONITORING, EXIT_FAILED, EXIT_OK, env
from scholar_ops.functest.suites import SUITE_NAMES
from scholar_ops.vault.errors import ConfigError

DEFAULT_PLAN = DEFAULT_TEST_PLAN
SUITES = SUITE_NAMES


def register(sub: Any) -> None:
    tp = sub.add_parser(
        "test",
        help="functionality tests: run the test plan's suites against the application",
        description="Run the functionality-tests flow (or smoke-tests with --smoke) and "
        "print its report. Exit 0 when every suite passed, 1 when a test failed or a suite "
        "could not run, 2 when the plan is invalid.",
    )
    tp.add_argument(
        "--config",
        "--plan",
        dest="plan",
        default=env("SCHOLAR_OPS_TEST_PLAN", DEFAULT_PLAN),
        metavar="FILE|BLOCK",
        help="test plan: a YAML file, or the name of a test plan block "
        "(env SCHOLAR_OPS_TEST_PLAN; default %(default)s)",
    )
    tp.add_argument(
        "--suite",
        action="append",
        metavar="NAMES",
        help=f"suites to run, comma-separated (of {', '.join(SUITES)}); default: all configured",
    )
    tp.add_argument("--smoke", action="store_true", help="run the plan's smoke subset")
    tp.add_argument(
        "--output",
        metavar="DIR",
        help="where the run's files go (report.json, junit.xml, screenshots); "
        "default: the state directory",
    )
    tp.add_argument(
        "--monitoring",
        default=DEFAULT_MONITORING,
        metavar="NAME",
        help="MonitoringSettings block to push results to (default %(default)s)",
    )
    tp.add_argument("--json", action="store_true", help="print the report as JSON")
    tp.set_defaults(func=cmd_test)


def suite_list(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    for n in names:
        if n not in SUITES:
            raise ConfigError(f"--suite {n!r}: choose from {', '.join(SUITES)}")
    return names


def cmd_test(args: argparse.Namespace) -> int:
    suites = suite_list(args.suite)
    if args.smoke and suites:
        raise ConfigError("--smoke runs the plan's smoke suites: leave out --suite")
    if args.plan.endswith((".yaml", ".yml", ".json")) or "/" in args.plan:
        # A plan file is checked before Prefect starts: a typo costs no server start-up.
        from scholar_ops.functest.config import load_plan

        plan = load_plan(args.plan)
        plan.select(suites, smoke=args.smoke)
        args.plan = str(Path(args.plan).resolve())
    output = Path(args.output) if args.output else None
    scratch = None
    if output is None:
        scratch = tempfile.mkdtemp(prefix="scholar-ops-test-")
        output = Path(scratch)
    before = set(output.iterdir()) if output.is_dir() else set()

    from flows.testing.functionality_tests import TestsFailed, functionality_tests
    from flows.testing.smoke_tests import smoke_tests

    failed: TestsFailed | None = None
    try:
        if args.smoke:
            smoke_tests(plan=args.plan, monitoring=args.monitoring, artifact_dir=str(output))
        else:
            functionality_tests(
                plan=args.plan, suites=suites, monitoring=args.monitoring, artifact_dir=str(output)
            )
    except TestsFailed as e:
        failed = e
    runs = sorted(
        (p for p in output.iterdir() if p not in before and p.is_dir()),
        key=lambda p: p.stat().st_mtime,
    )
    report_path = runs[-1] / "report.json" if runs else None
    if report_path is None or not report_path.exists():
        if failed is not None:
            raise failed
        raise ConfigError(f"the test run wrote no report under {output}")
    doc = json.loads(report_path.read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(render(doc))
        print(f"\nfiles: {report_path} and {report_path.with_name('junit.xml')}")
    if failed is not None:
        print(f"scholar-ops test: {failed}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def render(doc: dict[str, Any]) -> str:
    """The report for a terminal: verdict, suites, failures, recommendations."""
    lines = [
        f"{doc['kind']} tests of {doc['target']} ({doc['base_url']}): "
        f"{doc['overall_status'].upper()}, system_health_score {doc['system_health_score']:g}",
        "",
        f"{'suite':<12} {'status':<12} {'tests':>5} {'failed':>6} {'time':>8}  note",
    ]
    for s in doc["test_suites"]:
        lines.append(
            f"{s['suite_name']:<12} {s['status']:<12} {s['total_tests']:>5} "
            f"{s['failed_tests']:>6} {s['execution_time']:>7.1f}s  {s.get('reason') or ''}"
        )
    failures = [
        (s["suite_name"], t)
        for s in doc["test_suites"]
        for t in s["tests"]
        if t["status"] in ("failed", "error")
    ]
    if failures:
        lines += ["", "failures:"]
        for suite, t in failures:
            lines.append(f"  [{t['severity']}] {suite}: {t['test_name']}: {t['error_message']}")
    if doc["recommendations"]:
        lines += ["", "recommendations:"]
        lines += [f"  - {r}" for r in doc["recommendations"]]
    return "\n".join(lines)
