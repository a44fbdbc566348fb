"""Benchmark the performance suite's load generator beside wrk on the same endpoint.

The performance suite must not be the bottleneck of what it measures. Both tools
load the same server (a small uvicorn app answering a short JSON on GET, in its own
process; ``--aischolar`` also GET /health/live of the reference application), with
the same connections and duration, alternating, ``--rounds`` times; the server and
the load tool share the machine's cores, as they do when the suite runs. Reported:
requests per second of each (median), and the ratio.

    uv run python bench/loadgen_bench.py [--connections 8] [--seconds 5] [--rounds 3] [--check]

Target: the load generator reaches at least 80% of wrk's requests per second
(``--check`` exits 1 when missed).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scholar_ops.functest.loadgen import run_load  # noqa: E402
from scholar_ops.sources.process import running_server  # noqa: E402

TARGET = 0.80

APP = """
import sys
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b'{"status":"ok","items":[1,2,3]}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""

_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")


def wrk_rps(url: str, connections: int, seconds: float) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    m = _RPS.search(out)
    if m is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{out}")
    return float(m.group(1))


def loadgen_rps(url: str, connections: int, seconds: float) -> float:
    r = run_load(url, concurrency=connections, requests=10_000_000, time_limit=seconds)
    if r.errors:
        raise RuntimeError(f"load generator: {r.errors} errors ({r.first_error})")
    return r.throughput_rps


def measure(name: str, url: str, args: argparse.Namespace) -> float:
    wrk, ours = [], []
    for _ in range(args.rounds):
        wrk.append(wrk_rps(url, args.connections, args.seconds))
        ours.append(loadgen_rps(url, args.connections, args.seconds))
    w, o = statistics.median(wrk), statistics.median(ours)
    ratio = o / w if w else 0.0
    print(
        f"{name:<28} wrk {w:>8.0f} req/s   loadgen {o:>8.0f} req/s   ratio {ratio:.2f} "
        f"(rounds: wrk {', '.join(f'{x:.0f}' for x in wrk)}; loadgen "
        f"{', '.join(f'{x:.0f}' for x in ours)})"
    )
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--aischolar",
        action="store_true",
        help="also the reference application's /health/live (needs PostgreSQL, Redis)",
    )
    ap.add_argument("--check", action="store_true", help=f"exit 1 below {TARGET:.0%} of wrk")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk (scripts/install-deps.sh installs it)")
        return 2
    ratios = []
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as tmp:
        work = Path(tmp)
        with running_server(
            "bench app",
            lambda port: [sys.executable, "-c", APP, str(port)],
            cwd=work,
            log_path=work / "app.log",
        ) as srv:
            ratios.append(
                measure("uvicorn GET (small JSON)", f"http://127.0.0.1:{srv.port}/", args)
            )
        if args.aischolar:
            ratios.append(_aischolar(work, args))
    worst = min(ratios)
    print(
        f"worst ratio {worst:.2f} (target >= {TARGET:.2f}): {'met' if worst >= TARGET else 'MISSED'}"
    )
    return 1 if args.check and worst < TARGET else 0


def _aischolar(work: Path, args: argparse.Namespace) -> float:
    from scholar_ops.sources.postgres.cluster import throwaway_cluster
    from scholar_ops.sources.redis.server import throwaway_redis
    from scholar_ops.testbed.aischolar import running_aischolar

    with (
        throwaway_cluster() as pg,
        throwaway_redis(work / "redis") as rd,
        running_aischolar(
            database_url=pg.create_database("aischolar"),
            redis_url=rd.url,
            chroma=str(work / "chroma"),
            admin_token="bench",
            workdir=work / "app",
        ) as app,
    ):
        return measure("AI Scholar GET /health/live", f"{app.url}/health/live", args)


if __name__ == "__main__":
    sys.exit(main())
