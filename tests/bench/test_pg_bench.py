"""bench/pg_bench.py: its measuring helpers, its verdicts, the restore check that must
fail loudly, and (slow) one tiny end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from scholar_ops.sources.postgres.cluster import PgServer

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "pg_bench.py"
_spec = importlib.util.spec_from_file_location("pg_bench", SCRIPT)
assert _spec is not None and _spec.loader is not None
pg_bench: Any = importlib.util.module_from_spec(_spec)
sys.modules["pg_bench"] = pg_bench  # dataclasses look their module up
_spec.loader.exec_module(pg_bench)

PY = sys.executable


def _measure(tmp_path: Path, pipeline: str, timeout: float = 60) -> Any:
    return pg_bench.measure(
        pg_bench.shell(pipeline), env={"PATH": "/usr/bin:/bin"}, timeout=timeout,
        logdir=tmp_path, name="t",
    )  # fmt: skip


def test_peak_rss_is_the_sum_over_the_pipeline(tmp_path: Path) -> None:
    hold = f"{PY} -c 'import sys, time; x = b\"x\" * 80_000_000; time.sleep(1.0); sys.stdin.read()'"
    m = _measure(tmp_path, f"{hold} < /dev/null | {hold}")
    assert m.peak_rss_mb >= 160, m
    assert 1.0 <= m.wall_s < 20


def test_cpu_seconds_of_the_tree(tmp_path: Path) -> None:
    spin = f"{PY} -c 'import time; t = time.process_time(); exec(\"while time.process_time() - t < 0.6: pass\")'"
    m = _measure(tmp_path, spin)
    assert m.cpu_s >= 0.5, m
    assert m.server_cpu_s == 0.0


def test_a_failing_command_raises_with_its_message(tmp_path: Path) -> None:
    with pytest.raises(pg_bench.BenchError, match=r"exited 3: .*boom"):
        _measure(tmp_path, "echo boom >&2; exit 3")


def test_a_command_past_its_timeout_is_killed_with_its_pipeline(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    started = time.monotonic()
    with pytest.raises(pg_bench.BenchError, match="timed out"):
        _measure(
            tmp_path,
            f"sleep 30 {marker} 2>/dev/null | sleep 31 {marker} 2>/dev/null || sleep 32",
            timeout=0.5,
        )
    assert time.monotonic() - started < 10
    leftovers = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert leftovers.strip() == ""


@pytest.fixture
def two_dbs(pg_server: PgServer) -> Iterator[tuple[str, str]]:
    names = (f"bench_a_{uuid.uuid4().hex[:8]}", f"bench_b_{uuid.uuid4().hex[:8]}")
    for name in names:
        pg_server.create_database(name)
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as c:
            c.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            c.execute("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g")
    try:
        yield names
    finally:
        for name in names:
            pg_server.drop_database(name)


def test_a_restored_database_that_differs_fails_loudly(
    pg_server: PgServer, two_dbs: tuple[str, str], tmp_path: Path
) -> None:
    from scholar_ops.testbed.sample.fingerprint import database_fingerprint

    a, b = two_dbs
    bench = pg_bench.Bench(work=tmp_path, timeout=60, server=pg_server)
    source = database_fingerprint(pg_server.dsn(a), pg_server.tool("pg_dump"))
    bench.assert_identical(source, b)  # equal content: fine
    with psycopg.connect(pg_server.dsn(b), autocommit=True) as c:
        c.execute("UPDATE t SET v = 'changed' WHERE id = 42")
    with pytest.raises(
        pg_bench.BenchError,
        match=r"(?s)RESTORED DATA DIFFERS: database bench_b_.*table public\.t: same 100 rows",
    ):
        bench.assert_identical(source, b)


def _method(key: str, wall: float, stored: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "key": key, "name": key, "wall_s": wall, "cpu_s": wall, "peak_rss_mb": 100.0,
        "stored_bytes": stored, "others_cpu_s": 0.0, "runs_wall_s": [wall],
        "extra": {"server_cpu_s": 1.0, **extra},
    }  # fmt: skip


def _results(*, ours_wall: float, ours_restore: float, ours_incr: int) -> dict[str, Any]:
    ours_extra: dict[str, Any] = {"in_process_s": ours_wall - 0.5, "python_rss_mb": 110.0}
    return {
        "machine": {"cpus": 2, "postgres": "15", "restic": "0.14.0", "zstd": "1.5", "python": "3.11"},
        "database": {
            "pg_database_size": 1_000_000_000, "pgbench_scale": 32, "aischolar_documents": 40_000,
            "table_bytes": {"pgbench_accounts": 500_000_000}, "build_s": 30,
        },
        "full": [
            _method("floor", 10.0),
            _method("fc_enc", 50.0, 260_000_000),
            _method("zstd_enc", 13.0, 250_000_000),
            _method("restic", 18.0, 255_000_000, plain_dump_bytes=1_090_000_000),
            _method("ours", ours_wall, 268_000_000, logical_bytes=1_090_000_000, **ours_extra),
        ],
        "churn": {"changed": {"documents_inserted": 400}},
        "incremental": [
            _method("restic_incr", 13.0, 58_000_000),
            _method("ours_incr", 11.0, ours_incr, chunks_new=191, chunks_total=6698,
                    bytes_new=27_000_000, **ours_extra),
        ],
        "restore": [
            _method("pg_restore", 20.0),
            _method("ours_restore", ours_restore, **ours_extra),
        ],
        "verified": {"tables": 9, "rows": 3_784_268},
        "disturbed": [],
    }  # fmt: skip


def test_targets_pass_and_fail() -> None:
    good = _results(ours_wall=12.0, ours_restore=22.0, ours_incr=9_000_000)
    assert all(t["pass"] for t in pg_bench.targets(good))
    bad = _results(ours_wall=16.0, ours_restore=27.0, ours_incr=60_000_000)
    verdicts = {t["target"].split(" (")[0]: t["pass"] for t in pg_bench.targets(bad)}
    assert not verdicts["full backup wall <= 1.5x floor"]
    assert verdicts["full backup wall below restic's"]
    assert not verdicts["restore wall <= 1.3x pg_restore -j 2"]
    assert not verdicts["incremental stored <= 10% of our full"]
    assert not verdicts["incremental stored <= restic's incremental"]


def test_report_prints_the_tables_and_verdicts() -> None:
    r = _results(ours_wall=16.0, ours_restore=22.0, ours_incr=9_000_000)
    r["targets"] = pg_bench.targets(r)
    r["disturbed"] = ["floor-0 (0.60 CPUs busy elsewhere)"]
    text = pg_bench.report(r)
    assert "ours                                     16.00     1.60" in text
    assert "FAIL  full backup wall <= 1.5x floor" in text
    assert "PASS  restore wall <= 1.3x pg_restore -j 2: 1.10x" in text
    assert "WARNING: other processes used the CPU during floor-0" in text


def test_the_median_run_is_reported() -> None:
    runs = []
    for wall in (12.0, 10.0, 30.0):
        m = pg_bench.Method(key="ours", name="ours", wall_s=wall, cpu_s=1, peak_rss_mb=wall,
                            extra={"python_rss_mb": wall})  # fmt: skip
        runs.append(m)
    pick = pg_bench.combine(runs)
    assert pick.wall_s == 12.0
    assert pick.runs_wall_s == [12.0, 10.0, 30.0]
    assert pick.peak_rss_mb == 30.0 and pick.extra["python_rss_mb"] == 30.0


@pytest.mark.slow
@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("restic", "zstd", "openssl")),
    reason="restic, zstd and openssl are needed",
)
def test_end_to_end_on_a_tiny_database(tmp_path: Path) -> None:
    proc = subprocess.run(
        [PY, str(SCRIPT), "--size-gb", "0.02", "--json", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)
    assert [m["key"] for m in r["full"]] == ["floor", "fc_enc", "zstd_enc", "restic", "ours"]
    assert r["verified"]["identical"] == ["restored_ours_0", "restored_ref_0"]
    assert len(r["targets"]) == 6
    assert list(tmp_path.iterdir()) == []  # the working directory is gone
