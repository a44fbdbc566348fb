"""Benchmark point-in-time recovery: our WAL archive and base backups against pgBackRest.

On the benchmark database of bench/pg_bench.py (about --size-gb by pg_database_size:
pgbench tables and the AI Scholar sample), in one throwaway cluster archiving WAL
(wal_level replica, archive_mode on), side by side with pgBackRest (Debian package;
repository encrypted with aes-256-cbc, zstd compression, archive-async off, one
process: the same work ours does). Ours runs as the README's archive_command does,
``scholar-ops-wal --resident ... push %p`` (and ``fetch %f %p``): the first call starts the
resident archiver (scholar_ops.walserver), later ones hand it the work; its peak RSS and
its CPU count in ours:

1. archiving under a write load. For each tool alone, archive_command = that tool, and
   pgbench (tpcb-like plus a bulk update, --clients) writes for --load-seconds: WAL
   generated, segments archived meanwhile, the archiver's lag (segments between the
   server's current WAL file and pg_stat_archiver.last_archived_wal, sampled every
   0.5 s; the largest and the one at the end of the load), failures (failed_count), the
   seconds to catch up once the load stops. Then the **same WAL** goes to both: the
   archive_command runs both tools on every segment (the order alternates by segment)
   while pgbench writes again; each push is timed by /usr/bin/time (wall, peak RSS, CPU
   of that one command). Throughput = segments / summed push wall time (segments/s, MB/s
   of 16 MB segments): what one archiver process can push. The check compares the
   median push wall time on the same segments.
2. restore to a time. With that archive_command (both archives get the same WAL),
   ``pgbackrest backup --type=full`` and ours (``backup_base``, full, in a child process)
   run back to back on the idle server; pgbench writes for --load-seconds, the time T
   is noted half way, the WAL is switched and archived. Then, --repeat interleaved rounds:
   ``pgbackrest restore --type=time --target=T`` + ``pg_ctl start`` until recovery ends,
   and ours (``restore_pitr`` to T, in a child process, which starts the server and
   waits for recovery to end), each into a new data directory. Timed: the whole wall
   time, peak RSS of the process tree, CPU of the tree and of the restored server (its
   restore_command included); every fetch (restore_command) timed by /usr/bin/time.
   Each restored server is queried (pgbench_history rows, their sum, the accounts'
   balance sum): the two must be equal, and lie strictly between the database at the
   base backups and at the end of the load (T is in the middle of the WAL).
3. recovery point age. archive_timeout = --archive-timeout (60 s), a trickle of writes
   (one small insert every second), archive_command = each tool alone in turn: the age
   ``clock_timestamp() - pg_stat_archiver.last_archived_time`` sampled every second for
   --age-seconds: maximum, mean, median.

    uv run python bench/pitr_bench.py [--size-gb 1.0] [--repeat 3] [--load-seconds 30]
        [--age-seconds 135] [--archive-timeout 60] [--clients 2] [--json] [--save FILE]
        [--keep] [--dir /tmp] [--check]

Targets (--check exits 1 when one is missed): push of a segment (median, same WAL)
<= 1.5x pgBackRest's; restore to a time (median wall) <= 1.5x pgBackRest's; recovery
point age: mean < 60 s, and the largest <= archive_timeout + 5 s (an archive_timeout of
60 s switches the segment 60 s after the last one: just before the switch's segment is
stored, the age is 60 s plus its push, so "under 60 s" can hold for the mean, and the
largest exceeds archive_timeout by the push time only); our peak RSS <= 300 MB (every
push and fetch, base backup and restore process trees); no archive failure.

As root the PostgreSQL server, and so archive_command and restore_command, runs as the
``postgres`` OS user: the working directory (repositories, pgBackRest's configuration,
the timing logs) is made where that user can reach it (the system temp dir when --dir is
out of its reach) and given to it; our command runs with an interpreter that user can
execute (this one, else the system's python3.X with this environment's packages on
PYTHONPATH). Every subprocess has a timeout (--timeout, per step).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import pwd
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load_pg_bench() -> Any:
    if "pg_bench" in sys.modules:
        return sys.modules["pg_bench"]
    spec = importlib.util.spec_from_file_location(
        "pg_bench", Path(__file__).with_name("pg_bench.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pg_bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


pg_bench = _load_pg_bench()
BenchError = pg_bench.BenchError
MB = 1e6
MASTER_KEY = "pitr-benchmark-master-key-0123456789"
PGBR_CIPHER_PASS = "pitr-benchmark-pgbackrest-cipher-pass"
STANZA = "bench"
PG_OS_USER = "postgres"
TIME = "/usr/bin/time"
TIME_FORMAT = "%e,%M,%U,%S"  # wall s, peak RSS KB, user s, system s
TOOLS = ("pgbackrest", "ours")
NAMES = {"pgbackrest": "pgBackRest", "ours": "scholar-ops"}

TARGET_VS_PGBACKREST = 1.5
TARGET_AGE_MEAN_S = 60.0
AGE_ALLOWANCE_S = 5.0
TARGET_RSS_MB = 300.0


def log(msg: str) -> None:
    print(f"[pitr_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the postgres OS user ---------------------------------------------------------


def _pg_ids() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam(PG_OS_USER)
    return pw.pw_uid, pw.pw_gid


def as_pg() -> list[str]:
    """argv prefix running a command as the server's OS user (nothing unless root)."""
    if _pg_ids() is None:
        return []
    return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", PG_OS_USER, "--"]


def give_to_pg(path: Path) -> None:
    """Hand ``path`` and everything under it to the server's OS user."""
    ids = _pg_ids()
    if ids is None:
        return
    os.chown(path, *ids)
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(dirpath, name), *ids, follow_symlinks=False)


def reachable(path: Path) -> bool:
    """Whether the server's OS user can enter ``path`` (every parent searchable)."""
    if os.geteuid() != 0:
        return True
    return all(os.stat(p).st_mode & 0o001 for p in [path.resolve(), *path.resolve().parents])


def walcmd_prefix(pycache: Path, runtime: Path | None = None, timeout: float = 60) -> list[str]:
    """argv running ``python -m scholar_ops.walcmd`` as the server's OS user: this
    interpreter when that user can run it, else the system's python3.X with this
    environment's packages on PYTHONPATH (an interpreter under /root is out of reach).

    Its bytecode is cached in ``pycache`` (PYTHONPYCACHEPREFIX, writable by that user;
    PYTHONDONTWRITEBYTECODE unset): a command run once per segment must not compile its
    modules from source every time. An installation has its bytecode compiled (pip does
    it, uv with UV_COMPILE_BYTECODE=1 as in docker/worker.Dockerfile); this checkout's
    root-owned tree does not, and the postgres user cannot write there."""
    probe = ["-c", "import scholar_ops.walcmd, zstandard, cryptography"]
    env = ["env", "-u", "PYTHONDONTWRITEBYTECODE", f"PYTHONPYCACHEPREFIX={pycache}"]
    env += [f"SCHOLAR_OPS_WAL_RUNTIME_DIR={runtime}"] if runtime else []

    def works(argv: list[str]) -> bool:
        try:
            proc = subprocess.run(
                [*as_pg(), *argv, *probe], capture_output=True, timeout=timeout, cwd="/"
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0

    if works([*env, sys.executable]):
        return [*env, sys.executable, "-m", "scholar_ops.walcmd"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = shutil.which(version, path="/usr/bin:/usr/local/bin")
    env.append(f"PYTHONPATH={ROOT}:{sysconfig.get_paths()['purelib']}")
    if system_python and works([*env, system_python]):
        return [*env, system_python, "-m", "scholar_ops.walcmd"]
    raise BenchError(
        f"the {PG_OS_USER} OS user can run neither {sys.executable} nor a system {version} "
        "with this environment's packages: install the project where that user can reach it"
    )


# -- timing logs of archive_command / restore_command ------------------------------


@dataclass
class Timed:
    """Per-command figures out of a /usr/bin/time log."""

    count: int
    wall_s: list[float]
    peak_rss_mb: float
    cpu_s: float

    @property
    def total_s(self) -> float:
        return sum(self.wall_s)

    def summary(self, segment_bytes: int) -> dict[str, Any]:
        walls = sorted(self.wall_s)
        n = len(walls)
        return {
            "count": n,
            "median_s": round(statistics.median(walls), 3) if walls else None,
            "p90_s": round(walls[min(n - 1, int(0.9 * n))], 3) if walls else None,
            "max_s": round(walls[-1], 3) if walls else None,
            "total_s": round(self.total_s, 2),
            "segments_per_s": round(n / self.total_s, 2) if self.total_s else None,
            "mb_per_s": round(n * segment_bytes / MB / self.total_s, 1) if self.total_s else None,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_s_per_command": round(self.cpu_s / n, 3) if n else None,
        }


def read_times(path: Path, skip: int = 0) -> tuple[Timed, int]:
    """The commands timed in ``path`` after the first ``skip``; and the new total."""
    rows: list[tuple[float, float, float, float]] = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(",")
            if len(parts) != 4:
                continue  # "Command exited with non-zero status N"
            try:
                wall, rss, user, system = (float(x) for x in parts)
            except ValueError:
                continue
            rows.append((wall, rss, user, system))
    new = rows[skip:]
    return (
        Timed(
            count=len(new),
            wall_s=[r[0] for r in new],
            peak_rss_mb=max((r[1] * 1024 / MB for r in new), default=0.0),
            cpu_s=sum(r[2] + r[3] for r in new),
        ),
        len(rows),
    )


# -- the benchmark -----------------------------------------------------------------


@dataclass
class PitrBench:
    work: Path
    timeout: float
    repeat: int = 1
    clients: int = 2
    server: Any = None  # PgServer
    pgb: Any = None  # pg_bench.Bench, for build(), sql() and measure()
    walcmd: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    segment_bytes: int = 16 << 20
    _times_seen: dict[str, int] = field(default_factory=dict)
    _resident_cpu: dict[int, float] = field(default_factory=dict)
    _last_lag: int = 0

    # paths
    @property
    def ours_repo(self) -> Path:
        return self.work / "ours-repo"

    @property
    def key_file(self) -> Path:
        return self.work / "master.key"

    @property
    def pgbr_conf(self) -> Path:
        return self.work / "pgbackrest" / "pgbackrest.conf"

    @property
    def times_dir(self) -> Path:
        return self.work / "times"

    def times_log(self, tool: str, op: str) -> Path:
        return self.times_dir / f"{tool}-{op}.log"

    # -- set-up ---------------------------------------------------------------------

    def setup_tools(self) -> None:
        from scholar_ops.vault.crypto.keys import MasterKey
        from scholar_ops.vault.repository import Repository
        from scholar_ops.vault.storage import LocalStorage

        Repository.init(LocalStorage(self.ours_repo), MasterKey.from_string(MASTER_KEY))
        self.key_file.write_text(MASTER_KEY + "\n")
        self.key_file.chmod(0o600)
        for d in ("times", "keycache", "state", "sock", "pycache", "pgbackrest", "pgbackrest/repo"):
            (self.work / d).mkdir(exist_ok=True)
        for d in ("log", "lock", "spool"):
            (self.work / "pgbackrest" / d).mkdir()
        s = self.server
        self.pgbr_conf.write_text(
            "[global]\n"
            f"repo1-path={self.work / 'pgbackrest' / 'repo'}\n"
            "repo1-cipher-type=aes-256-cbc\n"
            f"repo1-cipher-pass={PGBR_CIPHER_PASS}\n"
            "repo1-retention-full=99\n"
            "compress-type=zst\n"
            "compress-level=3\n"
            "process-max=1\n"
            "archive-async=n\n"
            "start-fast=y\n"
            f"log-path={self.work / 'pgbackrest' / 'log'}\n"
            f"lock-path={self.work / 'pgbackrest' / 'lock'}\n"
            f"spool-path={self.work / 'pgbackrest' / 'spool'}\n"
            "log-level-console=warn\n"
            "log-level-stderr=warn\n"
            "log-level-file=info\n"
            f"\n[{STANZA}]\n"
            f"pg1-path={s.datadir}\n"
            f"pg1-port={s.port}\n"
            f"pg1-socket-path={s.sockdir}\n"
            f"pg1-user={s.user}\n"
        )
        self.pgbr_conf.chmod(0o600)
        give_to_pg(self.work)
        self.walcmd = walcmd_prefix(self.work / "pycache", self.resident_dir)
        log(f"our command runs as: {shlex.join(self.walcmd)}")
        self.pgbackrest("stanza-create")
        # One segment through each tool before anything is measured: our command's
        # bytecode is compiled then (as an installation has it), pgBackRest's archive made.
        for tool in TOOLS:
            self.set_config(archive_command=self.tool_command(tool, "push"))
            self.pgb.sql(
                pg_bench.SOURCE_DB,
                "CREATE TABLE IF NOT EXISTS warmup (t int)",
                "INSERT INTO warmup VALUES (1)",
            )
            self.wait_archived()
            self.new_times(tool, "push")
        name = str(self.archiver()["last_archived"])
        fetch = self.tool_command("ours", "fetch")
        fetch = fetch.replace("%f", name).replace("%p", str(self.work / "state" / name))
        pg_bench.run([*as_pg(), "sh", "-c", fetch], timeout=self.timeout)
        (self.work / "state" / name).unlink()
        self.new_times("ours", "fetch")

    def pgbackrest(self, *args: str, timeout: float | None = None) -> str:
        return str(
            pg_bench.run(
                [*as_pg(), "pgbackrest", f"--config={self.pgbr_conf}", f"--stanza={STANZA}", *args],
                timeout=timeout or self.timeout,
            )
        )

    def tool_command(self, tool: str, op: str, datadir: Path | None = None) -> str:
        """The archive_command (op push) / restore_command (op fetch) of a tool, timed;
        pgBackRest's archive-get checks that it runs in its pg1-path (``datadir``)."""
        timed = [TIME, "-f", TIME_FORMAT, "-a", "-o", str(self.times_log(tool, op))]
        if tool == "ours":
            argv = [
                *timed,
                *self.walcmd,
                "--repository", str(self.ours_repo),
                "--key-file", str(self.key_file),
                "--status-file", str(self.work / "state" / "wal-status.json"),
                "--key-cache-dir", str(self.work / "keycache"),
            ]  # fmt: skip
            tail = "--resident push %p" if op == "push" else "--resident fetch %f %p"
        else:
            argv = [*timed, "pgbackrest", f"--config={self.pgbr_conf}", f"--stanza={STANZA}"]
            argv += [f"--pg1-path={datadir}"] if datadir else []
            tail = "archive-push %p" if op == "push" else 'archive-get %f "%p"'
        return shlex.join(argv) + " " + tail

    def both_command(self) -> str:
        """One archive_command running both tools on each segment, in an order that
        alternates with the segment (the first reads it from disk, when not cached).
        Its name contains "pgbackrest": pgBackRest's backup checks archive_command for it."""
        script = self.work / "archive-both-pgbackrest.sh"
        script.write_text(
            "#!/bin/sh\n# $1 = %p, $2 = %f\nset -e\n"
            'case "$2" in\n'
            f"  *[02468ACE]) {self.tool_command('ours', 'push').replace('%p', '$1')}\n"
            f"     {self.tool_command('pgbackrest', 'push').replace('%p', '$1')} ;;\n"
            f"  *) {self.tool_command('pgbackrest', 'push').replace('%p', '$1')}\n"
            f"     {self.tool_command('ours', 'push').replace('%p', '$1')} ;;\n"
            "esac\n"
        )
        script.chmod(0o755)
        give_to_pg(script)
        return f"{shlex.quote(str(script))} %p %f"

    def new_times(self, tool: str, op: str) -> Timed:
        """The commands timed since the last call for this log (our pushes: with the
        resident archiver's peak RSS)."""
        key = f"{tool}-{op}"
        timed, total = read_times(self.times_log(tool, op), self._times_seen.get(key, 0))
        self._times_seen[key] = total
        if tool == "ours" and op in ("push", "fetch"):
            # the resident archiver's memory and its CPU since the last call count as ours
            # (/usr/bin/time sees only the client); a server gone meanwhile is not counted
            timed.peak_rss_mb = max(timed.peak_rss_mb, self.resident_peak_rss_mb())
            timed.cpu_s += self.resident_cpu_delta()
        return timed

    def resident_cpu_delta(self) -> float:
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.resident_pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
                total += cpu - self._resident_cpu.get(pid, 0.0)
                self._resident_cpu[pid] = cpu
        return total

    @property
    def resident_dir(self) -> Path:
        return self.work / "walrt"  # made by the first push, as the postgres user, mode 0700

    def resident_pids(self) -> list[int]:
        pids = []
        for pid_file in self.resident_dir.glob("*.pid") if self.resident_dir.exists() else ():
            with contextlib.suppress(OSError, ValueError):
                pids.append(int(pid_file.read_text()))
        return pids

    def resident_peak_rss_mb(self) -> float:
        peak = 0.0
        for pid in self.resident_pids():
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024 / MB)
        return peak

    # -- the server -------------------------------------------------------------------

    def sql(self, *statements: str) -> list[Any]:
        return list(self.pgb.sql("postgres", *statements))

    def one(self, statement: str, dbname: str = "postgres") -> Any:
        return self.pgb.sql(dbname, statement)[0][0][0]

    def set_config(self, **settings: str) -> None:
        import psycopg

        with psycopg.connect(self.server.dsn(), autocommit=True, connect_timeout=10) as c:
            for k, v in settings.items():
                c.execute(f"ALTER SYSTEM SET {k} = {_literal(v)}")
            c.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the reload is asynchronous
            if all(
                str(self.one(f"SELECT current_setting('{k}')")) == _normal(k, v)
                for k, v in settings.items()
            ):
                time.sleep(0.5)  # the archiver reads it at its next wake-up
                return
            time.sleep(0.1)
        raise BenchError(f"the server did not take the settings {sorted(settings)}")

    def archiver(self) -> dict[str, Any]:
        row = self.sql(
            "SELECT archived_count, failed_count, last_archived_wal, last_failed_wal, "
            "pg_walfile_name(pg_current_wal_lsn()), pg_current_wal_lsn() - '0/0'::pg_lsn, "
            "extract(epoch FROM clock_timestamp() - last_archived_time) FROM pg_stat_archiver"
        )[0][0]
        keys = ("archived", "failed", "last_archived", "last_failed", "current", "lsn", "age_s")
        return dict(zip(keys, row, strict=True))

    def lag_segments(self, a: dict[str, Any]) -> int:
        """Segments between the server's current WAL file and the last one archived (a
        ``.backup`` file counts as its segment; a ``.history`` file says nothing)."""
        current = _segno(a["current"], self.segment_bytes)
        last = str(a["last_archived"] or "")
        if len(last) < 24 or not all(c in "0123456789ABCDEF" for c in last[:24]):
            return self._last_lag
        self._last_lag = current - _segno(last[:24], self.segment_bytes)
        return self._last_lag

    def wait_archived(self, timeout: float | None = None) -> float:
        """Switch to a new WAL file and wait until everything before it is archived;
        returns the seconds waited."""
        started = time.monotonic()
        want = str(self.one("SELECT pg_walfile_name(pg_switch_wal())"))
        deadline = started + (timeout or self.timeout)
        while True:
            a = self.archiver()
            done = a["last_archived"]
            if done and len(done) >= 24 and done[:24] >= want and not done.endswith(".history"):
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise BenchError(
                    f"WAL {want} not archived after {time.monotonic() - started:.0f} s "
                    f"(last archived {done}, failed {a['failed']}, last failed "
                    f"{a['last_failed']}): see {self.server.datadir.parent / 'postgres.log'}"
                )
            time.sleep(0.1)

    def load_script(self) -> Path:
        """pgbench's custom script: a bulk update of 100 accounts (WAL volume)."""
        path = self.work / "bulk.sql"
        if not path.exists():
            accounts = int(self.one("SELECT count(*) FROM pgbench_accounts", pg_bench.SOURCE_DB))
            path.write_text(
                f"\\set aid random(1, {max(1, accounts - 100)})\n"
                "UPDATE pgbench_accounts SET abalance = abalance + 1 "
                "WHERE aid BETWEEN :aid AND :aid + 99;\n"
            )
        return path

    def pgbench_argv(self, seconds: float) -> list[str]:
        return [
            self.server.tool("pgbench"), "-n", "-c", str(self.clients), "-j", str(self.clients),
            "-T", str(max(1, round(seconds))), "-b", "tpcb-like@1",
            "-f", f"{self.load_script()}@1", pg_bench.SOURCE_DB,
        ]  # fmt: skip

    def write_load(self, seconds: float, midway: bool = False) -> dict[str, Any]:
        """pgbench for ``seconds`` while the archiver is sampled every 0.5 s; with
        ``midway`` the server's clock half way (the recovery target) is noted."""
        a0 = self.archiver()
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                with contextlib.suppress(Exception):
                    samples.append(self.lag_segments(self.archiver()))

        thread = threading.Thread(target=sample, daemon=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            self.pgbench_argv(seconds),
            env=self.pgb.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        thread.start()
        mid: str | None = None
        try:
            if midway:
                time.sleep(seconds / 2)
                mid_ts = self.one("SELECT clock_timestamp()")
                mid = mid_ts.astimezone(UTC).isoformat()
            out, err = proc.communicate(timeout=seconds + self.timeout)
        except BaseException:
            proc.kill()
            proc.wait(timeout=30)
            raise
        finally:
            stop.set()
            thread.join()
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            raise BenchError(f"pgbench exited {proc.returncode}: {err[-2000:]}")
        a1 = self.archiver()
        tps = next(
            (ln.split("=")[1].split()[0] for ln in out.splitlines() if ln.startswith("tps")), "?"
        )
        wal_bytes = int(a1["lsn"]) - int(a0["lsn"])
        return {
            "seconds": round(wall, 1),
            "tps": float(tps) if tps != "?" else None,
            "wal_mb": round(wal_bytes / MB, 1),
            "wal_mb_per_s": round(wal_bytes / MB / wall, 1),
            "segments_written": _segno(a1["current"], self.segment_bytes)
            - _segno(a0["current"], self.segment_bytes),
            "segments_archived": int(a1["archived"]) - int(a0["archived"]),
            "failed": int(a1["failed"]) - int(a0["failed"]),
            "lag_max_segments": max([*samples, self.lag_segments(a1)]),
            "lag_at_end_segments": self.lag_segments(a1),
            "midway": mid,
        }

    # -- 1. archiving ---------------------------------------------------------------------

    def archiving_alone(self, seconds: float) -> None:
        out: dict[str, Any] = {}
        for tool in TOOLS:
            self.wait_archived()
            self.set_config(archive_command=self.tool_command(tool, "push"))
            self.new_times(tool, "push")
            log(f"archiving with {NAMES[tool]} alone under pgbench for {seconds:.0f} s")
            load = self.write_load(seconds)
            load["catch_up_s"] = round(self.wait_archived(), 1)
            load["push"] = self.new_times(tool, "push").summary(self.segment_bytes)
            log(f"  {tool}: {_brief(load)}")
            out[tool] = load
        self.results["archiving_alone"] = out

    # -- 2. base backups, the same WAL, restores ------------------------------------------

    def child(self, name: str, spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        spec = {**spec, "repo": str(self.ours_repo), "bin_dir": str(self.server.bin_dir),
                "timeout": self.timeout}  # fmt: skip
        m = self.pgb.measure(name, [sys.executable, __file__, "--child", json.dumps(spec)])
        give_to_pg(self.ours_repo)  # what the child (root) wrote: the server's user pushes there
        return m, json.loads(m.stdout.strip().splitlines()[-1])

    def base_backups(self) -> None:
        self.wait_archived()
        self.set_config(archive_command=self.both_command())
        self.wait_archived()
        for tool in TOOLS:
            self.new_times(tool, "push")
        before = self.history_state()
        log("base backups, back to back")
        m = self.pgb.measure(
            "pgbackrest-backup",
            [*as_pg(), "pgbackrest", f"--config={self.pgbr_conf}", f"--stanza={STANZA}",
             "--type=full", "backup"],
        )  # fmt: skip
        pgbr = pg_bench.Method.of("pgbackrest", "pgbackrest backup --type=full", m)
        info = json.loads(self.pgbackrest("--output=json", "info"))
        backup = info[0]["backup"][-1]
        pgbr.stored_bytes = int(backup["info"]["repository"]["delta"])
        pgbr.extra["label"] = backup["label"]
        m, out = self.child(
            "ours-backup", {"op": "backup", "conn": self.pgb.conn_kwargs("postgres")}
        )
        ours = pg_bench.Method.of(
            "ours", "ours: backup_base full", m, out["stored_bytes"], **{
                k: out[k] for k in ("backup_id", "tar_bytes", "in_process_s", "python_rss_mb")
            }
        )  # fmt: skip
        self.results["base_backup"] = [asdict(pgbr), asdict(ours)]
        self.results["rows_at_base_backups"] = before
        self._ours_backup_id = out["backup_id"]

    def same_wal(self, seconds: float) -> None:
        log(f"both tools archive the same WAL; pgbench for {seconds:.0f} s, target time half way")
        load = self.write_load(seconds, midway=True)
        load["catch_up_s"] = round(self.wait_archived(), 1)
        for tool in TOOLS:
            load[f"push_{tool}"] = self.new_times(tool, "push").summary(self.segment_bytes)
        self.results["same_wal"] = load
        self.results["target_time"] = load["midway"]
        self.results["rows_at_end"] = self.history_state()
        log(f"  {_brief(load)}; target time {load['midway']}")

    def history_state(self, dsn: str | None = None) -> dict[str, Any]:
        import psycopg

        with psycopg.connect(dsn or self.server.dsn(pg_bench.SOURCE_DB), autocommit=True,
                             connect_timeout=10) as c:  # fmt: skip
            h = c.execute(
                "SELECT count(*), coalesce(sum(delta), 0), max(mtime) FROM pgbench_history"
            ).fetchone()
            a = c.execute("SELECT sum(abalance) FROM pgbench_accounts").fetchone()
        assert h is not None and a is not None
        return {
            "history_rows": int(h[0]),
            "history_delta_sum": int(h[1]),
            "history_last": h[2].isoformat() if h[2] else None,
            "accounts_balance_sum": int(a[0]),
        }

    def restore_pgbackrest(self, i: int) -> tuple[Any, dict[str, Any]]:
        datadir = self.work / f"restored-pgbackrest-{i}"
        sock = self.work / "sock" / f"pgbr-{i}"
        for d in (datadir, sock):
            d.mkdir(mode=0o700)
            give_to_pg(d)
        from scholar_ops.sources.process import free_port

        port = free_port()
        bin_dir = self.server.bin_dir
        target = _pg_time(self.results["target_time"])
        pg = shlex.join(as_pg())
        restore = shlex.join([
            "pgbackrest", f"--config={self.pgbr_conf}", f"--stanza={STANZA}",
            f"--pg1-path={datadir}", "--type=time", f"--target={target}",
            "--target-action=promote",
            f"--recovery-option=restore_command={self.tool_command('pgbackrest', 'fetch', datadir)}",
            "restore",
        ])  # fmt: skip
        opts = f"-p {port} -k {sock} -c listen_addresses='' -c archive_mode=off"
        # -W: pg_ctl returns at once (as ours starts it), so the restored server is not in
        # the measured process tree (its RSS is not pgBackRest's); the loop below waits.
        start = shlex.join([str(bin_dir / "pg_ctl"), "start", "-D", str(datadir), "-W",
                            "-l", str(datadir / "restore.log"), "-o", opts])  # fmt: skip
        status = shlex.join([str(bin_dir / "pg_ctl"), "status", "-D", str(datadir)])
        psql = shlex.join([self.server.tool("psql"), "-h", str(sock), "-p", str(port), "-U",
                           self.server.user, "-d", "postgres", "-XAtc",
                           "SELECT pg_is_in_recovery()"])  # fmt: skip
        script = (
            f"{pg} {restore}\n{pg} {start} >/dev/null\n"
            f'n=0; until [ "$({psql} 2>/dev/null)" = f ]; do\n'
            "  n=$((n + 1))\n"  # the postmaster needs a moment to write its pid file
            f'  if [ "$n" -gt 25 ] && ! {pg} {status} >/dev/null; then\n'
            f"    tail -5 {datadir}/restore.log >&2; exit 1\n  fi\n"
            "  sleep 0.2\ndone\n"
        )
        m = self.pgb.measure(f"pgbackrest-restore-{i}", pg_bench.shell(script))
        return m, {"datadir": str(datadir), "port": port, "socket_dir": str(sock)}

    def restore_ours(self, i: int) -> tuple[Any, dict[str, Any]]:
        datadir = self.work / f"restored-ours-{i}"
        spec = {
            "op": "restore",
            "backup_id": self._ours_backup_id,
            "datadir": str(datadir),
            "target_time": self.results["target_time"],
            "restore_command": self.tool_command("ours", "fetch"),
        }
        m, out = self.child(f"ours-restore-{i}", spec)
        return m, out

    def restores(self) -> None:
        rounds: dict[str, list[Any]] = {t: [] for t in TOOLS}
        states: dict[str, dict[str, Any]] = {}
        for i in range(self.repeat):
            for tool in TOOLS if i % 2 == 0 else TOOLS[::-1]:
                self.new_times(tool, "fetch")
                run = self.restore_pgbackrest if tool == "pgbackrest" else self.restore_ours
                try:
                    m, where = run(i)
                except BaseException:
                    self.cleanup()
                    raise
                datadir = Path(where["datadir"])
                try:
                    server_cpu = pg_bench._server_cpu_s(_postmaster(datadir))
                    state = self.history_state(
                        f"host={where['socket_dir']} port={where['port']} "
                        f"user={self.server.user} dbname={pg_bench.SOURCE_DB}"
                    )
                finally:
                    self.stop_restored(datadir)
                fetch = self.new_times(tool, "fetch").summary(self.segment_bytes)
                method = pg_bench.Method.of(
                    tool, f"{NAMES[tool]} restore to a time", m,
                    restored_server_cpu_s=round(server_cpu, 2), fetch=fetch,
                    **{k: where[k] for k in ("in_process_s", "python_rss_mb", "end_lsn",
                                            "end_time") if k in where},
                )  # fmt: skip
                method.cpu_s = round(method.cpu_s + server_cpu, 2)
                rounds[tool].append(method)
                states[f"{tool}-{i}"] = state
                shutil.rmtree(datadir, ignore_errors=True)
        self.results["restore"] = [asdict(pg_bench.combine(rounds[t])) for t in TOOLS]
        self.results["restored_rows"] = self.check_rows(states)

    def check_rows(self, states: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Every restore shows the same rows, strictly between the database at the base
        backups and at the end of the load."""
        first_key, first = next(iter(states.items()))
        for key, state in states.items():
            if state != first:
                raise BenchError(
                    f"RESTORED DATA DIFFERS: {key} has {state}, {first_key} has {first}"
                )
        lo = self.results["rows_at_base_backups"]["history_rows"]
        hi = self.results["rows_at_end"]["history_rows"]
        if not lo < first["history_rows"] < hi:
            raise BenchError(
                f"the restores to {self.results['target_time']} have {first['history_rows']} "
                f"pgbench_history rows, not strictly between {lo} (base backups) and {hi} "
                "(end of the load): the target was not reached in the middle of the WAL"
            )
        log(f"restored rows identical in {len(states)} restores: {first}")
        return {**first, "restores": sorted(states), "identical": True}

    def cleanup(self) -> None:
        """Stop every restored server still running, and the resident archiver."""
        for datadir in self.work.glob("restored-*"):
            self.stop_restored(datadir)
        for pid in self.resident_pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)

    def stop_restored(self, datadir: Path) -> None:
        if not (datadir / "postmaster.pid").exists():
            return
        for mode in ("fast", "immediate"):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc = subprocess.run(
                    [*as_pg(), str(self.server.bin_dir / "pg_ctl"), "stop", "-D", str(datadir),
                     "-m", mode, "-w", "-t", "60"],
                    capture_output=True, timeout=90,
                )  # fmt: skip
                if proc.returncode == 0:
                    return

    # -- 3. recovery point age --------------------------------------------------------------

    def recovery_point_age(self, seconds: float, archive_timeout: float) -> None:
        import psycopg

        self.pgb.sql(pg_bench.SOURCE_DB, "CREATE TABLE IF NOT EXISTS trickle (t timestamptz)")
        stop = threading.Event()

        def trickle() -> None:
            with psycopg.connect(self.server.dsn(pg_bench.SOURCE_DB), autocommit=True) as c:
                while not stop.wait(1.0):
                    c.execute("INSERT INTO trickle VALUES (clock_timestamp())")

        out: dict[str, Any] = {"archive_timeout_s": archive_timeout, "seconds": seconds}
        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            for tool in TOOLS:
                self.wait_archived()
                self.set_config(
                    archive_command=self.tool_command(tool, "push"),
                    archive_timeout=f"{archive_timeout:g}s",
                )
                self.wait_archived()
                log(
                    f"recovery point age with {NAMES[tool]}: {seconds:.0f} s of a trickle of writes"
                )
                a0 = self.archiver()
                ages: list[float] = []
                t0 = time.monotonic()
                while time.monotonic() - t0 < seconds:
                    time.sleep(1.0)
                    age = self.archiver()["age_s"]
                    if age is not None:
                        ages.append(float(age))
                a1 = self.archiver()
                out[tool] = {
                    "max_s": round(max(ages), 2),
                    "mean_s": round(statistics.fmean(ages), 2),
                    "median_s": round(statistics.median(ages), 2),
                    "samples": len(ages),
                    "segments_archived": int(a1["archived"]) - int(a0["archived"]),
                    "failed": int(a1["failed"]) - int(a0["failed"]),
                }
                log(f"  {tool}: {out[tool]}")
        finally:
            stop.set()
            thread.join()
            self.set_config(archive_timeout="0")
        self.results["recovery_point_age"] = out


# -- the child process that runs ours -------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    from scholar_ops.sources.postgres.basebackup import BaseBackupOptions, backup_base
    from scholar_ops.sources.postgres.conninfo import PgConnInfo
    from scholar_ops.sources.postgres.pitr import RecoveryTarget, restore_pitr
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import LocalStorage

    repo = Repository.open(LocalStorage(spec["repo"]), MasterKey.from_string(MASTER_KEY))
    t0 = time.perf_counter()
    out: dict[str, Any]
    if spec["op"] == "backup":
        before = pg_bench.dir_bytes(Path(spec["repo"]))
        snap = backup_base(
            repo,
            PgConnInfo(**spec["conn"]),
            backup_type="full",
            options=BaseBackupOptions(pg_bin_dir=spec["bin_dir"], timeout_s=spec["timeout"]),
        )
        out = {
            "backup_id": snap.backup_id,
            "tar_bytes": snap.details.get("tar_bytes"),
            "stored_bytes": pg_bench.dir_bytes(Path(spec["repo"])) - before,
        }
    else:
        res = restore_pitr(
            repo,
            repo.load_snapshot(spec["backup_id"]),
            Path(spec["datadir"]),
            target=RecoveryTarget.at_time(datetime.fromisoformat(spec["target_time"])),
            restore_command=spec["restore_command"],
            keep_running=True,
            timeout_s=spec["timeout"],
            pg_bin_dir=spec["bin_dir"],
        )
        out = {
            "datadir": res.datadir,
            "port": res.port,
            "socket_dir": res.socket_dir,
            "end_lsn": res.end_lsn,
            "end_time": res.end_time,
        }
    out["in_process_s"] = round(time.perf_counter() - t0, 3)
    out["python_rss_mb"] = round(pg_bench._own_peak_rss() / MB, 1)
    return out


# -- verdicts and the report ------------------------------------------------------------


def _by_key(methods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in methods}


def ours_peak_rss_mb(r: dict[str, Any]) -> float:
    """Ours, everywhere: every push and fetch, the base backup's and restores' trees."""
    values = [r["same_wal"]["push_ours"]["peak_rss_mb"]]
    values += [r["archiving_alone"]["ours"]["push"]["peak_rss_mb"]]
    values += [_by_key(r["base_backup"])["ours"]["peak_rss_mb"]]
    restore = _by_key(r["restore"])["ours"]
    values += [restore["peak_rss_mb"], restore["extra"]["fetch"]["peak_rss_mb"]]
    return max(values)


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    push = r["same_wal"]
    push_ratio = push["push_ours"]["median_s"] / push["push_pgbackrest"]["median_s"]
    restore = _by_key(r["restore"])
    restore_ratio = restore["ours"]["wall_s"] / restore["pgbackrest"]["wall_s"]
    age = r["recovery_point_age"]["ours"]
    timeout = r["recovery_point_age"]["archive_timeout_s"]
    rss = ours_peak_rss_mb(r)
    failures = push["failed"] + sum(
        r["archiving_alone"][t]["failed"] + r["recovery_point_age"][t]["failed"] for t in TOOLS
    )
    return [
        {
            "target": f"push of a segment (median, same WAL) <= {TARGET_VS_PGBACKREST}x pgBackRest",
            "value": f"{push_ratio:.2f}x ({push['push_ours']['median_s']:.3f} s vs "
            f"{push['push_pgbackrest']['median_s']:.3f} s)",
            "pass": push_ratio <= TARGET_VS_PGBACKREST,
        },
        {
            "target": f"restore to a time (median wall) <= {TARGET_VS_PGBACKREST}x pgBackRest",
            "value": f"{restore_ratio:.2f}x ({restore['ours']['wall_s']:.1f} s vs "
            f"{restore['pgbackrest']['wall_s']:.1f} s)",
            "pass": restore_ratio <= TARGET_VS_PGBACKREST,
        },
        {
            "target": f"recovery point age mean < {TARGET_AGE_MEAN_S:.0f} s",
            "value": f"{age['mean_s']:.1f} s (archive_timeout {timeout:g} s)",
            "pass": age["mean_s"] < TARGET_AGE_MEAN_S,
        },
        {
            "target": f"recovery point age max <= archive_timeout + {AGE_ALLOWANCE_S:.0f} s",
            "value": f"{age['max_s']:.1f} s (archive_timeout {timeout:g} s)",
            "pass": age["max_s"] <= timeout + AGE_ALLOWANCE_S,
        },
        {
            "target": f"our peak RSS <= {TARGET_RSS_MB:.0f} MB",
            "value": f"{rss:.0f} MB",
            "pass": rss <= TARGET_RSS_MB,
        },
        {"target": "no archive_command failure", "value": str(failures), "pass": failures == 0},
    ]


def report(r: dict[str, Any]) -> str:
    db = r["database"]
    mach = r["machine"]
    lines = [
        f"PITR benchmark: database {db['pg_database_size'] / MB:.0f} MB (pgbench scale "
        f"{db['pgbench_scale']}, AI Scholar {db['aischolar_documents']} documents); "
        f"PostgreSQL {mach['postgres']}, pgBackRest {mach['pgbackrest']}, {mach['cpus']} CPUs; "
        f"pgbench -c {r['clients']} tpcb-like + 100-row bulk update",
        "",
        "archiving under pgbench, each tool alone",
        f"{'tool':<12} {'WAL MB/s':>9} {'segs':>5} {'archived':>9} {'lag max':>8} {'lag end':>8} "
        f"{'catch-up s':>10} {'failed':>6} {'push med s':>10} {'seg/s':>6} {'MB/s':>6} "
        f"{'RSS MB':>7}",
    ]
    for tool in TOOLS:
        a = r["archiving_alone"][tool]
        p = a["push"]
        lines.append(
            f"{NAMES[tool]:<12} {a['wal_mb_per_s']:>9.1f} {a['segments_written']:>5} "
            f"{a['segments_archived']:>9} {a['lag_max_segments']:>8} {a['lag_at_end_segments']:>8} "
            f"{a['catch_up_s']:>10.1f} {a['failed']:>6} {_f(p['median_s'], 3):>10} "
            f"{_f(p['segments_per_s'], 2):>6} {_f(p['mb_per_s'], 1):>6} {p['peak_rss_mb']:>7.0f}"
        )
    s = r["same_wal"]
    lines += [
        "",
        f"the same WAL pushed by both, segment by segment ({s['push_ours']['count']} files; "
        f"pgbench wrote {s['wal_mb_per_s']:.1f} MB/s for {s['seconds']:.0f} s, archiver lag "
        f"max {s['lag_max_segments']} segments)",
        f"{'tool':<12} {'median s':>9} {'p90 s':>7} {'max s':>7} {'seg/s':>6} {'MB/s':>6} "
        f"{'CPU s/seg':>9} {'peak RSS MB':>12}",
    ]
    for tool in TOOLS:
        p = s[f"push_{tool}"]
        lines.append(
            f"{NAMES[tool]:<12} {_f(p['median_s'], 3):>9} {_f(p['p90_s'], 3):>7} "
            f"{_f(p['max_s'], 3):>7} {_f(p['segments_per_s'], 2):>6} {_f(p['mb_per_s'], 1):>6} "
            f"{_f(p['cpu_s_per_command'], 3):>9} {p['peak_rss_mb']:>12.0f}"
        )
    lines += [
        "",
        "base backup (full, idle server)",
        f"{'tool':<38} {'wall s':>7} {'stored MB':>10} {'peak RSS MB':>12} {'CPU s':>6}",
    ]
    for m in r["base_backup"]:
        lines.append(
            f"{m['name']:<38} {m['wall_s']:>7.2f} {(m['stored_bytes'] or 0) / MB:>10.1f} "
            f"{m['peak_rss_mb']:>12.0f} {m['cpu_s']:>6.1f}"
        )
    rows = r["restored_rows"]
    lines += [
        "",
        f"restore to {r['target_time']} into a new data directory, started, until recovery "
        f"ends ({len(rows['restores'])} restores, identical rows: "
        f"{rows['history_rows']} pgbench_history rows; {r['rows_at_base_backups']['history_rows']}"
        f" at the base backups, {r['rows_at_end']['history_rows']} at the end)",
        f"{'tool':<38} {'wall s':>7} {'x pgBackRest':>13} {'peak RSS MB':>12} {'CPU s':>6} "
        f"{'fetches':>7} {'fetch med s':>11} {'fetch RSS MB':>12}  runs",
    ]
    base = _by_key(r["restore"])["pgbackrest"]["wall_s"]
    for m in r["restore"]:
        f = m["extra"]["fetch"]
        lines.append(
            f"{m['name']:<38} {m['wall_s']:>7.2f} {m['wall_s'] / base:>13.2f} "
            f"{m['peak_rss_mb']:>12.0f} {m['cpu_s']:>6.1f} {f['count']:>7} "
            f"{_f(f['median_s'], 3):>11} {f['peak_rss_mb']:>12.0f}  "
            + ", ".join(f"{w:.2f}" for w in m["runs_wall_s"])
        )
    age = r["recovery_point_age"]
    lines += [
        "",
        f"recovery point age, archive_timeout {age['archive_timeout_s']:g} s, one insert a second, "
        f"sampled every second for {age['seconds']:.0f} s",
        f"{'tool':<12} {'max s':>7} {'mean s':>7} {'median s':>8} {'segments':>8} {'failed':>6}",
    ]
    for tool in TOOLS:
        a = age[tool]
        lines.append(
            f"{NAMES[tool]:<12} {a['max_s']:>7.1f} {a['mean_s']:>7.1f} {a['median_s']:>8.1f} "
            f"{a['segments_archived']:>8} {a['failed']:>6}"
        )
    lines += ["", "targets"]
    for t in r["targets"]:
        lines.append(f"  {'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['value']}")
    if r.get("disturbed"):
        lines += [
            "",
            "WARNING: other processes used the CPU during " + ", ".join(r["disturbed"])
            + ": those figures are suspect; rerun on a quiet machine",
        ]  # fmt: skip
    return "\n".join(lines)


# -- small helpers ------------------------------------------------------------------------


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _brief(load: dict[str, Any]) -> str:
    keys = ("wal_mb_per_s", "segments_written", "segments_archived", "lag_max_segments",
            "lag_at_end_segments", "catch_up_s", "failed")  # fmt: skip
    return ", ".join(f"{k} {load[k]}" for k in keys if k in load)


def _segno(name: str, segment_bytes: int) -> int:
    """A WAL file name's segment number (timeline apart)."""
    return int(name[8:16], 16) * (0x100000000 // segment_bytes) + int(name[16:24], 16)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _normal(key: str, value: str) -> str:
    if key == "archive_timeout":
        seconds = int(float(value.rstrip("s")))
        return (
            "0" if seconds == 0 else (f"{seconds // 60}min" if seconds % 60 == 0 else f"{seconds}s")
        )
    return value


def _pg_time(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _postmaster(datadir: Path) -> int | None:
    try:
        return int((datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def machine_info(server: Any) -> dict[str, Any]:
    info = dict(pg_bench.machine_info(server))
    try:
        info["pgbackrest"] = pg_bench.run(["pgbackrest", "version"], timeout=30).split()[-1]
    except (BenchError, OSError, IndexError):
        info["pgbackrest"] = "?"
    return {
        k: info[k] for k in ("cpus", "python", "postgres", "pgbackrest", "load_avg_1m_at_start")
    }


def _work_dir(parent: str | None) -> Path:
    base = Path(parent) if parent else Path(tempfile.gettempdir())
    if not reachable(base):
        log(f"{base} is out of the {PG_OS_USER} user's reach: working under the system temp dir")
        base = Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="pitr-bench-", dir=base))
    work.chmod(0o755)
    return work


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-gb", type=float, default=1.0, help="database size (pg_database_size)")
    ap.add_argument("--repeat", type=int, default=3, help="restore rounds; the median is reported")
    ap.add_argument("--load-seconds", type=float, default=30.0, help="each pgbench write load")
    ap.add_argument("--clients", type=int, default=2, help="pgbench clients")
    ap.add_argument("--age-seconds", type=float, default=135.0,
                    help="recovery point age: sampling time per tool")  # fmt: skip
    ap.add_argument("--archive-timeout", type=float, default=60.0, help="seconds")
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
    for tool in ("pgbackrest", TIME):
        if not shutil.which(tool):
            print(f"pitr_bench: {tool} not found: run `make deps` (scripts/install-deps.sh)",
                  file=sys.stderr)  # fmt: skip
            sys.exit(2)

    from scholar_ops.sources.postgres.cluster import throwaway_cluster

    timeout = args.timeout or max(600.0, 1800.0 * args.size_gb)
    work = _work_dir(args.dir)
    log(f"working in {work}")
    bench = PitrBench(work=work, timeout=timeout, repeat=max(1, args.repeat), clients=args.clients)
    bench.results["clients"] = args.clients
    settings = {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": "/bin/true",  # nothing archived while the database is built
        "archive_timeout": "0",
        "max_wal_size": "4GB",  # checkpoints by time, not by the load's WAL volume
    }
    try:
        with throwaway_cluster(work / "pg", keep_data=args.keep, settings=settings) as server:
            bench.server = server
            bench.pgb = pg_bench.Bench(work=work, timeout=timeout, server=server)
            bench.pgb.logdir.mkdir()
            bench.results["machine"] = machine_info(server)
            bench.results["size_gb"] = args.size_gb
            bench.pgb.build(int(args.size_gb * 1e9), 0.5)
            bench.results["database"] = bench.pgb.results["database"]
            bench.segment_bytes = int(
                bench.one("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
            )
            bench.setup_tools()
            bench.archiving_alone(args.load_seconds)
            bench.base_backups()
            bench.same_wal(args.load_seconds)
            bench.restores()
            bench.recovery_point_age(args.age_seconds, args.archive_timeout)
        bench.results["targets"] = targets(bench.results)
        bench.results["disturbed"] = bench.pgb.disturbed
    finally:
        if bench.server is not None:
            bench.cleanup()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
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
