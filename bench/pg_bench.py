"""Benchmark PostgreSQL backups: our store against pg_dump pipelines and restic.

In a throwaway cluster, a database of about --size-gb (pg_database_size; pgbench
tables for half, the AI Scholar sample for the other half) is backed up, side by
side, after a warm-up dump that loads it into the page cache, by:

  floor      pg_dump -Fc -Z0 > /dev/null
  fc_enc     pg_dump -Fc | openssl enc -aes-256-cbc > file      (a hand-written backup)
  zstd_enc   pg_dump -Fp | zstd -3 -T0 | openssl enc -aes-256-cbc > file
  restic     pg_dump -Fp | restic backup --stdin                (fresh repository, v2, auto compression)
  ours       scholar_ops.sources.postgres.dump.backup_database, full, into a fresh local repository

Each is timed (wall) with the peak RSS of its process tree (sum over the tree,
sampled every 100 ms; the PostgreSQL server is not counted) and the CPU seconds of
the tree plus the server's processes. Ours runs in a child Python process (start-up
and imports included in its wall time), so its RSS is its own.

Then one typical day of AI Scholar churn (aischolar.apply_daily_churn: 1% new
documents with chunks and embeddings, 0.1% documents rewritten, 2% more query log;
pgbench tables untouched unless --pgbench-transactions) and a VACUUM, and the
second backups of restic and ours (incremental): stored bytes, as a share of each
tool's own full. Last, restores of the churned database: the reference
``createdb && pg_restore -j 2`` of a local ``pg_dump -Fc -Z0`` file, and ours
(restore_database, jobs=2, of the incremental snapshot). Both restored databases are
compared with the source by database fingerprint; any difference fails the run.

    uv run python bench/pg_bench.py [--size-gb 1.0] [--repeat 1] [--json] [--save FILE]
                                    [--keep] [--dir /tmp] [--check]

With --repeat N the full backups (but the slow ``pg_dump -Fc | openssl``) and the
restores run N times in interleaved rounds and the median run is reported: single
runs on a 2-core machine vary by about 10%. Everything lives in one temporary
directory (under --dir), removed at the end unless --keep; every subprocess has a
timeout (--timeout, per step).

Targets: full backup wall <= 1.5x the floor (aim 1.2x) and below restic's; peak RSS
<= 300 MB; restore <= 1.3x pg_restore -j 2; incremental stored <= 10% of our full
and <= restic's incremental. --check exits 1 when a target is missed.

The machine may be shared: CPU time used by other processes during each measurement
is reported (kernel threads and interrupts apart), and a warning printed when it could
have skewed the figures; --quiet-wait S waits up to S seconds before each measurement
for the machine to be idle.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1e6
MASTER_KEY = "benchmark-master-key-0123456789"
RESTIC_PASSWORD = "benchmark-restic-password"
OPENSSL = "openssl enc -aes-256-cbc -pbkdf2 -pass pass:benchmark"
SOURCE_DB = "bench"
# pg_database_size per pgbench scale unit (PostgreSQL 15, after VACUUM; measured)
PGBENCH_BYTES_PER_SCALE = 15_700_000
RSS_SAMPLE_S = 0.1
# CPU seconds per wall second used by other processes above which a figure is suspect
OTHERS_BUSY_WARN = 0.25

TARGET_FULL_VS_FLOOR = 1.5
AIM_FULL_VS_FLOOR = 1.2
TARGET_RSS_MB = 300.0
TARGET_RESTORE_VS_PG_RESTORE = 1.3
TARGET_INCREMENTAL_PCT = 10.0


class BenchError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[pg_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- running and measuring subprocesses -------------------------------------------


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float  # sum over the process tree, sampled
    cpu_s: float  # CPU seconds of the process tree and of the server's processes
    server_cpu_s: float
    kernel_cpu_s: float  # kernel threads, interrupts and softirqs meanwhile
    others_cpu_s: float  # CPU seconds of the other processes on the machine meanwhile
    stdout: str


_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_table() -> dict[int, tuple[int, int, float, float]]:
    """pid -> (parent pid, RSS bytes, CPU seconds, CPU seconds of its reaped children)
    of every process, in one pass over /proc (cheaper than psutil's per-process calls:
    the sampler shares the 2 cores with what it measures)."""
    out: dict[int, tuple[int, int, float, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        out[int(name)] = (
            int(fields[1]),
            int(fields[21]) * _PAGE,
            (int(fields[11]) + int(fields[12])) / _TICK,
            (int(fields[13]) + int(fields[14])) / _TICK,
        )
    return out


def _descendants(table: dict[int, tuple[int, int, float, float]], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, row in table.items():
        children.setdefault(row[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _server_cpu_s(postmaster: int | None) -> float:
    """CPU seconds of the server so far: the postmaster's own and its exited children's
    (it reaps them), plus its live descendants' (backends, background processes)."""
    if postmaster is None:
        return 0.0
    table = _proc_table()
    if postmaster not in table:
        return 0.0
    total = table[postmaster][2] + table[postmaster][3]
    return total + sum(table[p][2] for p in _descendants(table, postmaster) if p != postmaster)


def _machine_busy_s() -> tuple[float, float]:
    """(busy CPU seconds of the machine, of which interrupts and softirqs: loopback
    TCP between the clients and the server, I/O completion)."""
    t = psutil.cpu_times()
    irq = getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return float(sum(t)) - t.idle - getattr(t, "iowait", 0.0), irq


def _kernel_threads_cpu() -> dict[int, float]:
    """pid -> CPU seconds of each kernel thread (kthreadd's children: writeback...)."""
    table = _proc_table()
    return {p: table[p][2] for p in _descendants(table, 2)}


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings by the processes alive at the second one."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def wait_quiet(max_wait_s: float, busy_below: float = 0.15, window_s: float = 2.0) -> float:
    """Wait (up to ``max_wait_s``) for a window in which the machine is nearly idle;
    returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait_s:
        before = _machine_busy_s()[0]
        time.sleep(window_s)
        if (_machine_busy_s()[0] - before) / window_s < busy_below:
            break
    return time.monotonic() - started


def _own_peak_rss() -> int:
    """This process's peak RSS (VmHWM). Not getrusage's ru_maxrss: on Linux that keeps
    the high-water mark of the forked copy of the parent across exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def measure(
    argv: list[str],
    *,
    env: dict[str, str],
    timeout: float,
    logdir: Path,
    name: str,
    postmaster: int | None = None,
) -> Measured:
    """Run ``argv`` to completion in its own process group and measure it. Raises
    BenchError (with the end of stderr) on a non-zero exit or a timeout."""
    out_path, err_path = logdir / f"{name}.out", logdir / f"{name}.err"
    server0, (machine0, irq0), own0 = _server_cpu_s(postmaster), _machine_busy_s(), _own_cpu_s()
    kthreads0 = _kernel_threads_cpu()
    peak_rss = [0]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
    done = threading.Event()
    timed_out = threading.Event()

    def sample() -> None:
        while not done.is_set():
            table = _proc_table()
            rss = sum(table[p][1] for p in _descendants(table, proc.pid))
            peak_rss[0] = max(peak_rss[0], rss)
            if time.perf_counter() - started > timeout:
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                return
            done.wait(RSS_SAMPLE_S)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    thread.join()
    server_cpu = _server_cpu_s(postmaster) - server0
    machine, irq = (b - a for a, b in zip((machine0, irq0), _machine_busy_s(), strict=True))
    kernel = irq + _delta(kthreads0, _kernel_threads_cpu())
    own = _own_cpu_s() - own0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if timed_out.is_set():
        raise BenchError(f"{name} timed out after {timeout:.0f} s: {_tail(err_path)}")
    if proc.returncode != 0:
        raise BenchError(f"{name} exited {proc.returncode}: {_tail(err_path)}")
    tree_cpu = usage.ru_utime + usage.ru_stime
    return Measured(
        wall_s=wall,
        peak_rss_mb=peak_rss[0] / MB,
        cpu_s=tree_cpu + server_cpu,
        server_cpu_s=server_cpu,
        kernel_cpu_s=kernel,
        others_cpu_s=max(0.0, machine - tree_cpu - server_cpu - own - kernel),
        stdout=out_path.read_text(errors="replace"),
    )


def shell(pipeline: str) -> list[str]:
    return ["bash", "-c", f"set -euo pipefail; {pipeline}"]


def run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float) -> str:
    try:
        proc = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{argv[0]} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise BenchError(
            f"{shlex.join(argv)} exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc.stdout.decode(errors="replace")


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / f).stat().st_size
    return total


# -- the child process that runs our store ----------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    from scholar_ops.sources.postgres.conninfo import PgConnInfo
    from scholar_ops.sources.postgres.dump import DumpOptions, backup_database
    from scholar_ops.sources.postgres.restore import RestoreOptions, restore_database
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import LocalStorage

    repo = Repository.open(LocalStorage(spec["repo"]), MasterKey.from_string(MASTER_KEY))
    conn = PgConnInfo(**spec["conn"])
    t0 = time.perf_counter()
    out: dict[str, Any]
    if spec["op"] == "backup":
        snap = backup_database(
            repo,
            conn,
            backup_type=spec["type"],
            options=DumpOptions(pg_bin_dir=spec["bin_dir"], timeout_s=spec["timeout"]),
        )
        out = {"backup_id": snap.backup_id, "size_bytes": snap.size_bytes, "stats": snap.stats}
    else:
        res = restore_database(
            repo,
            repo.load_snapshot(spec["backup_id"]),
            conn,
            RestoreOptions(
                jobs=spec["jobs"], pg_bin_dir=spec["bin_dir"], timeout_s=spec["timeout"]
            ),
        )
        out = {
            "rows": res.rows,
            "bytes": res.bytes,
            "mismatches": res.mismatches,
            "warnings": res.warnings,
        }
    out["in_process_s"] = round(time.perf_counter() - t0, 3)
    out["python_rss_mb"] = round(_own_peak_rss() / MB, 1)
    return out


# -- the benchmark ----------------------------------------------------------------


@dataclass
class Method:
    key: str
    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stored_bytes: int | None = None
    others_cpu_s: float = 0.0
    kernel_cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    runs_wall_s: list[float] = field(default_factory=list)  # every run, with --repeat

    @classmethod
    def of(
        cls, key: str, name: str, m: Measured, stored: int | None = None, **extra: Any
    ) -> Method:
        return cls(
            key=key,
            name=name,
            wall_s=round(m.wall_s, 3),
            cpu_s=round(m.cpu_s, 2),
            peak_rss_mb=round(m.peak_rss_mb, 1),
            stored_bytes=stored,
            others_cpu_s=round(m.others_cpu_s, 2),
            kernel_cpu_s=round(m.kernel_cpu_s, 2),
            extra={"server_cpu_s": round(m.server_cpu_s, 2), **extra},
            runs_wall_s=[round(m.wall_s, 3)],
        )


def combine(runs: list[Method]) -> Method:
    """The run with the median wall time (the lower one of an even count), carrying
    every run's wall time and the highest peak RSS and disturbance of them all."""
    ordered = sorted(runs, key=lambda m: m.wall_s)
    pick = ordered[(len(ordered) - 1) // 2]
    pick.runs_wall_s = [m.wall_s for m in runs]
    if "in_process_s" in pick.extra:
        pick.extra["runs_in_process_s"] = [m.extra["in_process_s"] for m in runs]
    pick.peak_rss_mb = max(m.peak_rss_mb for m in runs)
    pick.others_cpu_s = max(m.others_cpu_s for m in runs)
    if "python_rss_mb" in pick.extra:
        pick.extra["python_rss_mb"] = max(m.extra["python_rss_mb"] for m in runs)
    return pick


@dataclass
class Bench:
    work: Path
    timeout: float
    repeat: int = 1
    quiet_wait_s: float = 0.0
    server: Any = None  # scholar_ops.sources.postgres.cluster.PgServer
    results: dict[str, Any] = field(default_factory=dict)
    disturbed: list[str] = field(default_factory=list)

    @property
    def logdir(self) -> Path:
        return self.work / "logs"

    def conn_kwargs(self, dbname: str) -> dict[str, Any]:
        s = self.server
        return {
            "host": s.host,
            "port": s.port,
            "user": s.user,
            "dbname": dbname,
            "sslmode": "disable",
        }

    def env(self, dbname: str = SOURCE_DB, **extra: str) -> dict[str, str]:
        from scholar_ops.sources.postgres.conninfo import PgConnInfo

        env = PgConnInfo(**self.conn_kwargs(dbname)).env()
        env.update(extra)
        return env

    def tool(self, name: str) -> str:
        return shlex.quote(str(self.server.tool(name)))

    def postmaster(self) -> int | None:
        try:
            return int((self.server.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def measure(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Measured:
        os.sync()  # what earlier steps left dirty is not written back during this one
        if self.quiet_wait_s:
            waited = wait_quiet(self.quiet_wait_s)
            if waited > 2 * 2.0:
                log(f"waited {waited:.0f} s for the machine to be quiet")
        m = measure(
            argv,
            env=env or self.env(),
            timeout=self.timeout,
            logdir=self.logdir,
            name=name,
            postmaster=self.postmaster(),
        )
        others = m.others_cpu_s / m.wall_s
        log(
            f"{name}: {m.wall_s:.2f} s, {m.cpu_s:.1f} CPU s (server {m.server_cpu_s:.1f}), "
            f"peak RSS {m.peak_rss_mb:.0f} MB; kernel {m.kernel_cpu_s:.1f} CPU s; "
            f"other processes {others:.2f} CPU"
        )
        if others > OTHERS_BUSY_WARN and m.others_cpu_s > 0.5:
            self.disturbed.append(f"{name} ({others:.2f} CPUs busy elsewhere)")
        return m

    def sql(self, dbname: str, *statements: str) -> list[Any]:
        import psycopg

        out = []
        with psycopg.connect(self.server.dsn(dbname), autocommit=True, connect_timeout=10) as c:
            c.execute(f"SET statement_timeout = {int(self.timeout * 1000)}")
            for st in statements:
                cur = c.execute(st)
                out.append(cur.fetchall() if cur.description else None)
        return out

    def db_size(self, dbname: str = SOURCE_DB) -> int:
        return int(self.sql(dbname, "SELECT pg_database_size(current_database())")[0][0][0])

    # -- setup --------------------------------------------------------------------

    def build(self, size_bytes: int, pgbench_share: float) -> None:
        import psycopg

        from scholar_ops.testbed.sample import aischolar

        scale = max(1, round(size_bytes * pgbench_share / PGBENCH_BYTES_PER_SCALE))
        documents = aischolar.scale_for_bytes(size_bytes - scale * PGBENCH_BYTES_PER_SCALE)
        self.server.create_database(SOURCE_DB)
        t0 = time.perf_counter()
        log(f"building the database: pgbench -i -s {scale}, AI Scholar {documents} documents")
        run(
            [self.server.tool("pgbench"), "-i", "-s", str(scale), "--no-vacuum", "-q", SOURCE_DB],
            env=self.env(),
            timeout=self.timeout,
        )
        with psycopg.connect(self.server.dsn(SOURCE_DB), connect_timeout=10) as conn:
            aischolar.create_schema(conn)
            counts = aischolar.load_sample(conn, documents=documents, seed=0)
        self.sql(SOURCE_DB, "VACUUM ANALYZE", "CHECKPOINT")
        size = self.db_size()
        tables = self.sql(
            SOURCE_DB,
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC",
        )[0]
        self.results["database"] = {
            "pg_database_size": size,
            "pgbench_scale": scale,
            "aischolar_documents": documents,
            "aischolar_rows": counts,
            "table_bytes": {r[0]: int(r[1]) for r in tables},
            "build_s": round(time.perf_counter() - t0, 1),
        }
        log(f"database: {size / MB:.0f} MB in {time.perf_counter() - t0:.0f} s")

    # -- backups ------------------------------------------------------------------

    @property
    def vault_repo(self) -> Path:
        """Our repository (of the last round of full backups)."""
        return self.work / f"vault-repo-{self.repeat - 1}"

    @property
    def restic_repo(self) -> Path:
        return self.work / f"restic-repo-{self.repeat - 1}"

    def ours(
        self, name: str, spec: dict[str, Any], repo: Path | None = None
    ) -> tuple[Measured, dict[str, Any]]:
        spec = {
            **spec,
            "repo": str(repo or self.vault_repo),
            "bin_dir": str(self.server.bin_dir),
            "timeout": self.timeout,
        }
        m = self.measure(name, [sys.executable, __file__, "--child", json.dumps(spec)])
        return m, json.loads(m.stdout.strip().splitlines()[-1])

    def ours_backup(
        self, key: str, name: str, backup_type: str, repo: Path, label: str | None = None
    ) -> Method:
        before = dir_bytes(repo)
        spec = {"op": "backup", "conn": self.conn_kwargs(SOURCE_DB), "type": backup_type}
        m, out = self.ours(label or key, spec, repo)
        stats = out["stats"]
        return Method.of(
            key,
            name,
            m,
            dir_bytes(repo) - before,
            in_process_s=out["in_process_s"],
            python_rss_mb=out["python_rss_mb"],
            backup_id=out["backup_id"],
            logical_bytes=out["size_bytes"],
            bytes_new=stats["bytes_new"],
            chunks_new=stats["chunks_new"],
            chunks_total=stats["chunks_total"],
        )

    def restic_env(self, repo: Path) -> dict[str, str]:
        return self.env(
            RESTIC_REPOSITORY=str(repo),
            RESTIC_PASSWORD=RESTIC_PASSWORD,
            RESTIC_CACHE_DIR=str(self.work / "restic-cache"),
        )

    def restic_backup(self, key: str, name: str, repo: Path, label: str | None = None) -> Method:
        before = dir_bytes(repo)
        env = self.restic_env(repo)
        m = self.measure(
            label or key,
            shell(
                f"{self.tool('pg_dump')} -Fp | restic backup --json --stdin --stdin-filename db.sql"
            ),
            env,
        )
        summary = _restic_summary(m.stdout)
        return Method.of(
            key,
            name,
            m,
            dir_bytes(repo) - before,
            plain_dump_bytes=summary.get("total_bytes_processed"),
        )

    def file_backup(self, key: str, name: str, pipeline: str, label: str | None = None) -> Method:
        out = self.work / f"{key}.out"
        m = self.measure(label or key, shell(f"{pipeline} > {out}"))
        size = out.stat().st_size
        out.unlink()
        return Method.of(key, name, m, size)

    def full_backups(self) -> None:
        """Full backups, each method ``repeat`` times in interleaved rounds (fresh
        repositories every round); the median run is reported. The hand-written
        ``pg_dump -Fc | openssl`` runs once: at 4-5x the floor it is nowhere near a target."""
        from scholar_ops.vault.crypto.keys import MasterKey
        from scholar_ops.vault.repository import Repository
        from scholar_ops.vault.storage import LocalStorage

        pg_dump = self.tool("pg_dump")
        self.measure("warmup", shell(f"{pg_dump} -Fc -Z0 > /dev/null"))
        fc_enc = self.file_backup("fc_enc", "pg_dump -Fc | openssl", f"{pg_dump} -Fc | {OPENSSL}")
        rounds: dict[str, list[Method]] = {}
        for i in range(self.repeat):
            vault_repo, restic_repo = self.work / f"vault-repo-{i}", self.work / f"restic-repo-{i}"
            Repository.init(LocalStorage(vault_repo), MasterKey.from_string(MASTER_KEY))
            run(["restic", "init"], env=self.restic_env(restic_repo), timeout=120)
            for m in (
                Method.of(
                    "floor",
                    "floor: pg_dump -Fc -Z0 > /dev/null",
                    self.measure(f"floor-{i}", shell(f"{pg_dump} -Fc -Z0 > /dev/null")),
                ),
                self.file_backup(
                    "zstd_enc",
                    "pg_dump -Fp | zstd -3 -T0 | openssl",
                    f"{pg_dump} -Fp | zstd -q -3 -T0 | {OPENSSL}",
                    f"zstd_enc-{i}",
                ),
                self.restic_backup(
                    "restic", "pg_dump -Fp | restic backup --stdin", restic_repo, f"restic-{i}"
                ),
                self.ours_backup(
                    "ours", "ours: backup_database full", "full", vault_repo, f"ours-{i}"
                ),
            ):
                rounds.setdefault(m.key, []).append(m)
        full = [combine(rounds["floor"]), fc_enc]
        full += [combine(rounds[k]) for k in ("zstd_enc", "restic", "ours")]
        self.results["full"] = [asdict(x) for x in full]

    def churn(self, pgbench_transactions: int) -> None:
        import psycopg

        from scholar_ops.testbed.sample import aischolar

        t0 = time.perf_counter()
        with psycopg.connect(self.server.dsn(SOURCE_DB), connect_timeout=10) as conn:
            changed = aischolar.apply_daily_churn(conn, seed=1)
        if pgbench_transactions:
            clients = 2
            run(
                [
                    self.server.tool("pgbench"),
                    "-n",
                    "-c",
                    str(clients),
                    "-t",
                    str(max(1, pgbench_transactions // clients)),
                    SOURCE_DB,
                ],
                env=self.env(),
                timeout=self.timeout,
            )
            changed["pgbench_transactions"] = pgbench_transactions
        self.sql(SOURCE_DB, "VACUUM", "CHECKPOINT")
        self.results["churn"] = {
            "changed": changed,
            "pg_database_size_after": self.db_size(),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        log(f"churn: {changed}")

    def incrementals(self) -> None:
        self.results["incremental"] = [
            asdict(self.restic_backup("restic_incr", "restic: 2nd backup", self.restic_repo)),
            asdict(
                self.ours_backup(
                    "ours_incr", "ours: backup_database incremental", "incremental", self.vault_repo
                )
            ),
        ]

    # -- restores -----------------------------------------------------------------

    def assert_identical(self, source: Any, db: str) -> None:
        """Raise BenchError unless database ``db`` has the fingerprint ``source``."""
        from scholar_ops.testbed.sample.fingerprint import database_fingerprint

        fp = database_fingerprint(
            self.server.dsn(db), self.server.tool("pg_dump"), timeout=self.timeout
        )
        diff = source.diff(fp)
        if diff:
            raise BenchError(
                f"RESTORED DATA DIFFERS: database {db} is not the source database:\n  "
                + "\n  ".join(diff[:20])
            )

    def restores(self) -> None:
        """``repeat`` interleaved rounds of the reference restore and ours, each into a
        new database. Every database ours restored, and the first reference one, is
        compared with the source by fingerprint; each is dropped before the next restore."""
        from scholar_ops.testbed.sample.fingerprint import database_fingerprint

        pg_dump = self.server.tool("pg_dump")
        dump = self.work / "reference.dump"
        run(
            [pg_dump, "-Fc", "-Z0", "-f", str(dump), SOURCE_DB],
            env=self.env(),
            timeout=self.timeout,
        )
        t0 = time.perf_counter()
        source = database_fingerprint(self.server.dsn(SOURCE_DB), pg_dump, timeout=self.timeout)
        fingerprint_s = time.perf_counter() - t0
        snapshot = self.results["incremental"][1]["extra"]["backup_id"]

        def settle() -> None:
            # Each restore starts on a quiet server: the previous restored database is
            # dropped (which stops its autovacuum: a freshly loaded GB is vacuumed and
            # analyzed right away, and that CPU would land on the next measurement),
            # and a checkpoint writes out what is left dirty.
            self.sql("postgres", "CHECKPOINT")

        refs, ours = [], []
        for i in range(self.repeat):
            ref_db, ours_db = f"restored_ref_{i}", f"restored_ours_{i}"
            settle()
            m = self.measure(
                f"pg_restore-{i}",
                shell(
                    f"{self.tool('createdb')} {ref_db} && "
                    f"{self.tool('pg_restore')} -j 2 --exit-on-error -d {ref_db} {dump}"
                ),
            )
            refs.append(Method.of("pg_restore", "pg_restore -j 2 (local -Fc -Z0 file)", m))
            if i == 0:
                log(f"comparing {ref_db} with the source")
                self.assert_identical(source, ref_db)
            self.server.drop_database(ref_db)
            settle()
            m, out = self.ours(
                f"ours_restore-{i}",
                {
                    "op": "restore",
                    "conn": self.conn_kwargs(ours_db),
                    "backup_id": snapshot,
                    "jobs": 2,
                },
            )
            if out["mismatches"]:
                raise BenchError(f"RESTORED DATA DIFFERS: restore_database: {out['mismatches']}")
            ours.append(
                Method.of(
                    "ours_restore",
                    "ours: restore_database jobs=2",
                    m,
                    in_process_s=out["in_process_s"],
                    python_rss_mb=out["python_rss_mb"],
                    copy_bytes=out["bytes"],
                    warnings=out["warnings"],
                )
            )
            log(f"comparing {ours_db} with the source")
            self.assert_identical(source, ours_db)
            self.server.drop_database(ours_db)
        dump.unlink()
        self.results["restore"] = [asdict(combine(refs)), asdict(combine(ours))]
        self.results["verified"] = {
            "tables": len(source.tables),
            "rows": source.total_rows,
            "fingerprint_s": round(fingerprint_s, 1),
            "identical": [f"restored_ours_{i}" for i in range(self.repeat)] + ["restored_ref_0"],
        }
        log("restores verified: fingerprints identical to the source")


def _restic_summary(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            msg = json.loads(line)
            if isinstance(msg, dict) and msg.get("message_type") == "summary":
                return msg
    return {}


# -- report -----------------------------------------------------------------------


def _by_key(methods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in methods}


def ratio(m: dict[str, Any], ref: dict[str, Any], runs: str = "runs_wall_s") -> float:
    """``m``'s time over ``ref``'s: with repeated rounds, the median of the per-round
    ratios (the two ran back to back, under the same conditions)."""
    a = m.get(runs) or m["extra"].get(runs) or []
    b = ref.get("runs_wall_s") or []
    if len(a) >= 2 and len(a) == len(b):
        return float(statistics.median(x / y for x, y in zip(a, b, strict=True)))
    mine = m["wall_s"] if runs == "runs_wall_s" else m["extra"]["in_process_s"]
    return float(mine / ref["wall_s"])


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    full = _by_key(r["full"])
    incr = _by_key(r["incremental"])
    restore = _by_key(r["restore"])
    ours, restic = full["ours"], full["restic"]
    full_x = ratio(ours, full["floor"])
    inside = ratio(ours, full["floor"], "runs_in_process_s")
    ours_runs = (ours, incr["ours_incr"], restore["ours_restore"])
    # the sampled tree sum can miss a short spike; the Python process's VmHWM cannot
    rss = max(max(m["peak_rss_mb"], m["extra"]["python_rss_mb"]) for m in ours_runs)
    rest = ratio(restore["ours_restore"], restore["pg_restore"])
    rest_inside = ratio(restore["ours_restore"], restore["pg_restore"], "runs_in_process_s")
    incr_pct = 100 * incr["ours_incr"]["stored_bytes"] / ours["stored_bytes"]
    ours_i, restic_i = incr["ours_incr"]["stored_bytes"], incr["restic_incr"]["stored_bytes"]
    return [
        {
            "target": f"full backup wall <= {TARGET_FULL_VS_FLOOR}x floor (aim {AIM_FULL_VS_FLOOR}x)",
            "value": f"{full_x:.2f}x ({inside:.2f}x without the child's Python start-up)",
            "pass": full_x <= TARGET_FULL_VS_FLOOR,
        },
        {
            "target": "full backup wall below restic's",
            "value": f"{ours['wall_s']:.1f} s vs {restic['wall_s']:.1f} s",
            "pass": ours["wall_s"] < restic["wall_s"],
        },
        {
            "target": f"peak RSS of our process tree (backups, restore) <= {TARGET_RSS_MB:.0f} MB",
            "value": f"{rss:.0f} MB",
            "pass": rss <= TARGET_RSS_MB,
        },
        {
            "target": f"restore wall <= {TARGET_RESTORE_VS_PG_RESTORE}x pg_restore -j 2",
            "value": f"{rest:.2f}x ({rest_inside:.2f}x without the child's Python start-up)",
            "pass": rest <= TARGET_RESTORE_VS_PG_RESTORE,
        },
        {
            "target": f"incremental stored <= {TARGET_INCREMENTAL_PCT:.0f}% of our full",
            "value": f"{incr_pct:.2f}%",
            "pass": incr_pct <= TARGET_INCREMENTAL_PCT,
        },
        {
            "target": "incremental stored <= restic's incremental",
            "value": f"{ours_i / MB:.2f} MB vs {restic_i / MB:.2f} MB",
            "pass": ours_i <= restic_i,
        },
    ]


def _runs(m: dict[str, Any]) -> str:
    runs = m.get("runs_wall_s") or []
    return "" if len(runs) < 2 else " ".join(f"{w:.2f}" for w in runs)


def report(r: dict[str, Any]) -> str:
    db, mach = r["database"], r["machine"]
    size = db["pg_database_size"]
    full = _by_key(r["full"])
    lines = [
        f"database {size / MB:.0f} MB (pg_database_size): pgbench scale {db['pgbench_scale']}, "
        f"AI Scholar {db['aischolar_documents']} documents (built in {db['build_s']} s)",
        "  " + ", ".join(f"{k} {v / MB:.0f}" for k, v in db["table_bytes"].items() if v >= MB),
        f"machine: {mach['cpus']} CPUs, PostgreSQL {mach['postgres']}, restic {mach['restic']}, "
        f"zstd {mach['zstd']}, Python {mach['python']}",
        "",
        "full backup   (wall: median run; x floor: median of the per-round ratios; "
        "MB/s = pg_database_size / wall;",
        "               peak RSS: the tool's process tree, server excluded; CPU: tree + server)",
        f"{'method':<38} {'wall s':>7} {'x floor':>8} {'MB/s':>6} {'stored MB':>10} "
        f"{'peak RSS MB':>12} {'CPU s':>6}  {'runs':<}",
    ]
    for m in r["full"]:
        stored = "-" if m["stored_bytes"] is None else f"{m['stored_bytes'] / MB:.1f}"
        lines.append(
            f"{m['name']:<38} {m['wall_s']:>7.2f} {ratio(m, full['floor']):>8.2f} "
            f"{size / MB / m['wall_s']:>6.0f} {stored:>10} {m['peak_rss_mb']:>12.0f} "
            f"{m['cpu_s']:>6.1f}  {_runs(m)}"
        )
    ours = full["ours"]["extra"]
    plain = full["restic"]["extra"].get("plain_dump_bytes")
    lines.append(
        f"  ours: {ours['in_process_s']:.2f} s inside the child (the rest: Python start-up, "
        f"imports, opening the repository); Python process peak (VmHWM) "
        f"{ours['python_rss_mb']:.0f} MB; COPY text {ours['logical_bytes'] / MB:.0f} MB"
        + (f" (plain pg_dump {plain / MB:.0f} MB)" if plain else "")
    )
    changed = r["churn"]["changed"]
    lines += [
        "",
        "incremental after one day of churn ("
        + ", ".join(f"{k} {v}" for k, v in changed.items())
        + "; VACUUM)",
        f"{'method':<38} {'wall s':>7} {'stored MB':>10} {'% own full':>11} {'peak RSS MB':>12}",
    ]
    for m, own in zip(r["incremental"], (full["restic"], full["ours"]), strict=True):
        lines.append(
            f"{m['name']:<38} {m['wall_s']:>7.2f} {m['stored_bytes'] / MB:>10.2f} "
            f"{100 * m['stored_bytes'] / own['stored_bytes']:>10.2f}% {m['peak_rss_mb']:>12.0f}"
        )
    incr = _by_key(r["incremental"])["ours_incr"]["extra"]
    lines.append(
        f"  ours: {incr['chunks_new']} of {incr['chunks_total']} chunks new "
        f"({incr['bytes_new'] / MB:.1f} MB before compression); "
        f"{incr['in_process_s']:.2f} s inside the child; Python peak {incr['python_rss_mb']:.0f} MB"
    )
    v = r["verified"]
    lines += [
        "",
        f"restore of the churned database from the incremental snapshot (verified: "
        f"{v['tables']} tables, {v['rows']} rows, fingerprints identical to the source)",
        f"{'method':<38} {'wall s':>7} {'x pg_restore':>13} {'MB/s':>6} {'peak RSS MB':>12} "
        f"{'CPU s':>6}  {'runs':<}",
    ]
    for m in r["restore"]:
        lines.append(
            f"{m['name']:<38} {m['wall_s']:>7.2f} {ratio(m, r['restore'][0]):>13.2f} "
            f"{size / MB / m['wall_s']:>6.0f} {m['peak_rss_mb']:>12.0f} {m['cpu_s']:>6.1f}  "
            f"{_runs(m)}"
        )
    ours_r = r["restore"][1]["extra"]
    lines.append(
        f"  ours: {ours_r['in_process_s']:.2f} s inside the child; "
        f"Python peak {ours_r['python_rss_mb']:.0f} MB"
    )
    lines += ["", "targets"]
    for t in r["targets"]:
        lines.append(f"  {'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['value']}")
    if r["disturbed"]:
        lines += [
            "",
            "WARNING: other processes used the CPU during "
            + ", ".join(r["disturbed"])
            + ": those figures are suspect; rerun on a quiet machine",
        ]
    return "\n".join(lines)


def _reachable_by_server(path: Path) -> bool:
    """Whether the postgres OS user (which runs the server when we are root) can reach
    ``path``: every parent directory must be searchable by others."""
    if os.geteuid() != 0:
        return True
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in path.resolve().parents)


def machine_info(server: Any) -> dict[str, Any]:
    def version(argv: list[str], word: int) -> str:
        try:
            return run(argv, timeout=30).split()[word].lstrip("v").rstrip(",")
        except (BenchError, OSError, IndexError):
            return "?"

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgres": version([server.tool("pg_dump"), "--version"], 2),
        "restic": version(["restic", "version"], 1),
        "zstd": version(["zstd", "--version"], 4),
        "openssl": version(["openssl", "version"], 1),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-gb", type=float, default=1.0, help="database size (pg_database_size)")
    ap.add_argument("--pgbench-share", type=float, default=0.5, help="part of it in pgbench tables")
    ap.add_argument(
        "--pgbench-transactions",
        type=int,
        default=0,
        help="pgbench transactions added to the day of churn (default none: AI Scholar only)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the full backups and the restores this many times (interleaved); "
        "the median is reported",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for the machine to be idle "
        "(a shared machine)",
    )
    ap.add_argument("--dir", default=None, help="where to make the temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--save", help="also write the results as JSON to this file")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per step")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return

    from scholar_ops.sources.postgres.cluster import throwaway_cluster

    timeout = args.timeout or max(600.0, 1800.0 * args.size_gb)
    work = Path(tempfile.mkdtemp(prefix="pg-bench-", dir=args.dir))
    work.chmod(0o755)  # the cluster below it may run as the postgres OS user
    bench = Bench(
        work=work, timeout=timeout, repeat=max(1, args.repeat), quiet_wait_s=args.quiet_wait
    )
    bench.logdir.mkdir()
    log(f"working in {work}")
    cluster_dir = work / "pg"
    if not _reachable_by_server(work):
        # the server runs as the postgres OS user, which cannot enter a 0700 parent
        cluster_dir = Path(tempfile.mkdtemp(prefix="pg-bench-cluster-"))
        log(f"{work} is out of the postgres user's reach: the cluster goes to {cluster_dir}")
    try:
        with throwaway_cluster(cluster_dir, keep_data=args.keep) as server:
            bench.server = server
            bench.results["machine"] = machine_info(server)
            bench.results["size_gb"] = args.size_gb
            bench.build(int(args.size_gb * 1e9), args.pgbench_share)
            bench.full_backups()
            bench.churn(args.pgbench_transactions)
            bench.incrementals()
            bench.restores()
        bench.results["targets"] = targets(bench.results)
        bench.results["disturbed"] = bench.disturbed
    finally:
        if args.keep:
            log(f"kept {work}" + ("" if cluster_dir.parent == work else f" and {cluster_dir}"))
        else:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(cluster_dir, ignore_errors=True)
    if args.save:
        Path(args.save).write_text(json.dumps(bench.results, indent=2) + "\n")
    if args.json:
        print(json.dumps(bench.results, indent=2))
    else:
        print(report(bench.results))
    if args.check and not all(t["pass"] for t in bench.results["targets"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
