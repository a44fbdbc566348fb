"""Time from a failed backup to its notification, with the test configuration.

Runs the end-to-end alerting test (tests/scholar_ops/monitoring/test_alerting_e2e.py: a real
Pushgateway, Prometheus with 1 s scrape and evaluation intervals, AlertManager with a
1 s group_wait, an SMTP sink and a webhook receiver, the Prefect test harness) --runs
times and reports what it measured: failure -> webhook, failure -> email, a failed flow
run -> Prefect automation -> AlertManager -> webhook, success -> resolved, and the
number of notifications an alert storm of 1,000 failing targets made.

    uv run python bench/alert_latency.py [--runs 3] [--json]

Target: every latency <= 30 s (the test fails above that).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    measures: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "latency.jsonl"
        for i in range(args.runs):
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "tests/scholar_ops/monitoring/test_alerting_e2e.py"],
                cwd=ROOT,
                env={**os.environ, "SCHOLAR_OPS_ALERT_LATENCY_OUT": str(out)},
                capture_output=True,
                text=True,
                timeout=900,
            )  # fmt: skip
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
                print(f"run {i + 1}: the end-to-end test failed", file=sys.stderr)
                return 1
        for line in out.read_text().splitlines():
            m = json.loads(line)
            measures[m["measure"]].append(m["seconds"])
    summary = {
        k: {"median": statistics.median(v), "max": max(v), "runs": len(v)}
        for k, v in measures.items()
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{'measure':<55} {'median':>8} {'max':>8}")
        for k, v in summary.items():
            unit = "" if k.startswith("alert storm") else " s"
            print(f"{k:<55} {v['median']:>6.1f}{unit:2} {v['max']:>6.1f}{unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
