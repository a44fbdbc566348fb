"""Benchmark the performance suite's load generator beside wrk on the same endpoint.

The performance suite must not be the bottleneck of what it measures. Both tools
load the same server (a small uvicorn app answering a short JSON on GET, in its own
process; ``--aischolar`` also GET /health/live of the reference application), with
the same connections and duration, alternating, ``--rounds`` times. The server and
the load tool compete for the machine's cores (2 here), as they do when the suite
runs against a target on the same host: a tool that spends more CPU per request
leaves less to the server, so this measures the tool's cost as well as its speed.
Reported: requests per second of each (median of the rounds, each round shown),
the ratio, and where the CPU went during each tool's runs: the server, the tool, and
the rest of the machine (other processes, and kernel work such as loopback TCP not
charged to a process), printed so that a busy machine is visible.

    uv run python bench/loadgen_bench.py [--connections 8] [--seconds 5] [--rounds 3]
        [--aischolar] [--quiet-wait 60] [--json] [--check]

Target: the load generator reaches at least 80% of wrk's requests per second
(``--check`` exits 1 when missed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

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


@dataclass
class Run:
    rps: float
    #: CPUs (CPU seconds per second) of the server, the tool and everything else
    server_cpus: float
    tool_cpus: float
    other_cpus: float


@dataclass
class Endpoint:
    name: str
    wrk: list[Run] = field(default_factory=list)
    loadgen: list[Run] = field(default_factory=list)

    def median(self, tool: str) -> float:
        runs: list[Run] = getattr(self, tool)
        return statistics.median(r.rps for r in runs) if runs else 0.0

    @property
    def ratio(self) -> float:
        w = self.median("wrk")
        return self.median("loadgen") / w if w else 0.0


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return float(sum(t)) - t.idle - getattr(t, "iowait", 0.0)


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of process ``pid`` and its live descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            c = p.cpu_times()
            total += c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return total


def _children_cpu_s() -> float:
    c = os.times()
    return c.children_user + c.children_system


def _own_cpu_s() -> float:
    c = os.times()
    return c.user + c.system


def wait_quiet(max_wait_s: float, busy_below: float = 0.15, window_s: float = 2.0) -> None:
    """Wait (up to ``max_wait_s``) for a window in which the machine is nearly idle."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait_s:
        before = _machine_busy_s()
        time.sleep(window_s)
        if (_machine_busy_s() - before) / window_s < busy_below:
            return


def _measured(server_pid: int, tool_cpu: Callable[[], float], go: Callable[[], float]) -> Run:
    """Run ``go`` (it returns requests/s) and split the CPU the machine spent meanwhile."""
    m0, s0, t0, w0 = _machine_busy_s(), _tree_cpu_s(server_pid), tool_cpu(), time.monotonic()
    rps = go()
    m1, s1, t1, w1 = _machine_busy_s(), _tree_cpu_s(server_pid), tool_cpu(), time.monotonic()
    wall = max(1e-9, w1 - w0)
    server, tool = (s1 - s0) / wall, (t1 - t0) / wall
    return Run(
        rps, round(server, 2), round(tool, 2), round(max(0.0, (m1 - m0) / wall - server - tool), 2)
    )


def wrk_rps(url: str, connections: int, seconds: float) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    m = _RPS.search(out)
    if m is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{out}")
    if "Non-2xx or 3xx responses" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(m.group(1))


def loadgen_rps(url: str, connections: int, seconds: float) -> float:
    r = run_load(url, concurrency=connections, requests=10_000_000, time_limit=seconds)
    if r.errors:
        raise RuntimeError(f"load generator: {r.errors} errors ({r.first_error})")
    return r.throughput_rps


def measure(name: str, url: str, server_pid: int, args: argparse.Namespace) -> Endpoint:
    ep = Endpoint(name)
    n, s = args.connections, args.seconds
    loadgen_rps(url, n, 1.0)  # warm the server up (imports, caches) before the first round
    for _ in range(args.rounds):
        if args.quiet_wait:
            wait_quiet(args.quiet_wait)
        ep.wrk.append(_measured(server_pid, _children_cpu_s, lambda: wrk_rps(url, n, s)))
        if args.quiet_wait:
            wait_quiet(args.quiet_wait)
        ep.loadgen.append(_measured(server_pid, _own_cpu_s, lambda: loadgen_rps(url, n, s)))
    if not args.json:
        _print(ep)
    return ep


def _print(ep: Endpoint) -> None:
    w, o = ep.median("wrk"), ep.median("loadgen")
    print(f"{ep.name:<28} wrk {w:>7.0f} req/s   loadgen {o:>7.0f} req/s   ratio {ep.ratio:.2f}")
    for tool in ("wrk", "loadgen"):
        runs: list[Run] = getattr(ep, tool)
        print(
            f"  {tool:<8} rounds {', '.join(f'{r.rps:.0f}' for r in runs):<26} CPUs: server "
            f"{statistics.median(r.server_cpus for r in runs):.2f}, tool "
            f"{statistics.median(r.tool_cpus for r in runs):.2f}, rest of the machine "
            f"{statistics.median(r.other_cpus for r in runs):.2f}"
        )


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
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds before each run for the machine to be idle",
    )
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--check", action="store_true", help=f"exit 1 below {TARGET:.0%} of wrk")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk (scripts/install-deps.sh installs it)")
        return 2
    if not args.json:
        print(
            f"{psutil.cpu_count()} cores shared by the server and the load tool; "
            f"{args.connections} connections, {args.seconds:g} s per run, {args.rounds} rounds; "
            f"load average {os.getloadavg()[0]:.2f} at start"
        )
    endpoints: list[Endpoint] = []
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as tmp:
        work = Path(tmp)
        with running_server(
            "bench app",
            lambda port: [sys.executable, "-c", APP, str(port)],
            cwd=work,
            log_path=work / "app.log",
        ) as srv:
            url = f"http://127.0.0.1:{srv.port}/"
            endpoints.append(measure("uvicorn GET (small JSON)", url, srv.pid, args))
        if args.aischolar:
            endpoints.append(_aischolar(work, args))
    worst = min(ep.ratio for ep in endpoints)
    met = worst >= TARGET
    if args.json:
        doc = {
            "cores": psutil.cpu_count(),
            "connections": args.connections,
            "seconds": args.seconds,
            "target": TARGET,
            "worst_ratio": round(worst, 3),
            "met": met,
            "endpoints": [
                {
                    **asdict(ep),
                    "wrk_rps": ep.median("wrk"),
                    "loadgen_rps": ep.median("loadgen"),
                    "ratio": round(ep.ratio, 3),
                }
                for ep in endpoints
            ],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(f"worst ratio {worst:.2f} (target >= {TARGET:.2f}): {'met' if met else 'MISSED'}")
    return 1 if args.check and not met else 0


def _aischolar(work: Path, args: argparse.Namespace) -> Endpoint:
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
        return measure(
            "AI Scholar GET /health/live", f"{app.url}/health/live", app.server.pid, args
        )


if __name__ == "__main__":
    sys.exit(main())
