"""bench/pitr_bench.py: its timing-log reader, verdicts, report and row check, and one
end-to-end run at a tiny scale (side by side with pgBackRest)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "pitr_bench.py"
_spec = importlib.util.spec_from_file_location("pitr_bench", SCRIPT)
assert _spec is not None and _spec.loader is not None
pitr_bench: Any = importlib.util.module_from_spec(_spec)
sys.modules["pitr_bench"] = pitr_bench  # dataclasses look their module up
_spec.loader.exec_module(pitr_bench)

PY = sys.executable
SEGMENT = 16 << 20


def test_timing_log_is_read_per_command_and_incrementally(tmp_path: Path) -> None:
    log = tmp_path / "ours-push.log"
    log.write_text(
        "0.30,61440,0.20,0.05\nCommand exited with non-zero status 10\n0.10,20480,0.05,0.01\n"
    )
    timed, seen = pitr_bench.read_times(log)
    assert seen == 2 and timed.count == 2
    assert timed.wall_s == [0.30, 0.10]
    assert timed.peak_rss_mb == pytest.approx(61440 * 1024 / 1e6)
    assert timed.cpu_s == pytest.approx(0.31)
    s = timed.summary(SEGMENT)
    assert s["segments_per_s"] == pytest.approx(2 / 0.4, abs=0.01)
    assert s["mb_per_s"] == pytest.approx(2 * SEGMENT / 1e6 / 0.4, abs=0.1)
    with log.open("a") as f:
        f.write("0.50,30720,0.30,0.02\n")
    later, seen = pitr_bench.read_times(log, skip=2)
    assert seen == 3 and later.wall_s == [0.50]
    missing, seen = pitr_bench.read_times(tmp_path / "none.log")
    assert missing.count == 0 and seen == 0 and missing.summary(SEGMENT)["median_s"] is None


def test_segment_numbers_and_settings() -> None:
    assert pitr_bench._segno("00000001000000020000000A", SEGMENT) == 2 * 256 + 10
    assert pitr_bench._normal("archive_timeout", "60s") == "1min"
    assert pitr_bench._normal("archive_timeout", "5s") == "5s"
    assert pitr_bench._normal("archive_timeout", "0") == "0"
    assert pitr_bench._pg_time("2024-05-01T10:00:00.5+02:00") == "2024-05-01 08:00:00.500000+00"
    assert pitr_bench._literal("it's") == "'it''s'"


def _push(median: float, rss: float = 60.0, count: int = 40) -> dict[str, Any]:
    return {
        "count": count, "median_s": median, "p90_s": median * 1.5, "max_s": median * 2,
        "total_s": median * count, "segments_per_s": 1 / median, "mb_per_s": 16.8 / median,
        "peak_rss_mb": rss, "cpu_s": 0.2 * count, "cpu_s_per_command": 0.2,
    }  # fmt: skip


def _load(push: float) -> dict[str, Any]:
    return {
        "seconds": 30.0, "tps": 900.0, "wal_mb": 600.0, "wal_mb_per_s": 20.0,
        "segments_written": 36, "segments_archived": 35, "failed": 0, "lag_max_segments": 2,
        "lag_at_end_segments": 1, "catch_up_s": 0.4, "midway": None, "push": _push(push),
    }  # fmt: skip


def _method(key: str, wall: float, rss: float = 80.0, **extra: Any) -> dict[str, Any]:
    return {
        "key": key, "name": f"{pitr_bench.NAMES[key]} restore to a time", "wall_s": wall, "cpu_s": wall,
        "peak_rss_mb": rss, "stored_bytes": 250_000_000, "others_cpu_s": 0.0,
        "runs_wall_s": [wall, wall + 1, wall - 1], "extra": {"server_cpu_s": 1.0, **extra},
    }  # fmt: skip


def _results(
    *, push: float = 0.15, restore: float = 40.0, age_max: float = 61.0, rss: float = 90.0
) -> dict[str, Any]:
    same = _load(0.1)
    same.update(push_pgbackrest=_push(0.12, rss=22), push_ours=_push(push, rss=rss))
    age = {"max_s": age_max, "mean_s": 30.5, "median_s": 30.0, "samples": 135,
           "segments_archived": 2, "failed": 0}  # fmt: skip
    return {
        "machine": {"cpus": 2, "postgres": "15.20", "pgbackrest": "2.45", "python": "3.11"},
        "clients": 2,
        "database": {
            "pg_database_size": 1_000_000_000,
            "pgbench_scale": 32,
            "aischolar_documents": 40_000,
        },
        "archiving_alone": {"pgbackrest": _load(0.12), "ours": _load(push)},
        "same_wal": same,
        "base_backup": [_method("pgbackrest", 30.0), _method("ours", 25.0)],
        "restore": [
            _method("pgbackrest", 30.0, fetch=_push(0.05, rss=20)),
            _method("ours", restore, fetch=_push(0.2, rss=70)),
        ],
        "target_time": "2026-01-01T00:00:15+00:00",
        "rows_at_base_backups": {"history_rows": 100},
        "rows_at_end": {"history_rows": 300},
        "restored_rows": {"history_rows": 200, "restores": ["ours-0", "pgbackrest-0"]},
        "recovery_point_age": {
            "archive_timeout_s": 60.0,
            "seconds": 135.0,
            "pgbackrest": dict(age),
            "ours": dict(age),
        },
        "disturbed": [],
    }


def test_targets_pass_and_fail() -> None:
    assert all(t["pass"] for t in pitr_bench.targets(_results()))
    bad = _results(push=0.4, restore=50.0, age_max=70.0, rss=350.0)
    bad["same_wal"]["failed"] = 1
    verdicts = {t["target"]: t for t in pitr_bench.targets(bad)}
    assert not verdicts["push of a segment (median, same WAL) <= 1.5x pgBackRest"]["pass"]
    assert verdicts["push of a segment (median, same WAL) <= 1.5x pgBackRest"]["value"].startswith(
        "3.33x"
    )
    assert not verdicts["restore to a time (median wall) <= 1.5x pgBackRest"]["pass"]
    assert verdicts["recovery point age mean < 60 s"]["pass"]
    assert not verdicts["recovery point age max <= archive_timeout + 5 s"]["pass"]
    assert not verdicts["our peak RSS <= 300 MB"]["pass"]
    assert not verdicts["no archive_command failure"]["pass"]


def test_our_peak_rss_counts_fetches_too() -> None:
    r = _results()
    r["restore"][1]["extra"]["fetch"]["peak_rss_mb"] = 301.0
    assert pitr_bench.ours_peak_rss_mb(r) == 301.0


def test_report_prints_every_table_and_verdict() -> None:
    r = _results(push=0.4)
    r["targets"] = pitr_bench.targets(r)
    text = pitr_bench.report(r)
    for heading in (
        "archiving under pgbench, each tool alone",
        "the same WAL pushed by both",
        "base backup (full, idle server)",
        "restore to 2026-01-01T00:00:15+00:00",
        "recovery point age, archive_timeout 60 s",
    ):
        assert heading in text
    assert re.search(r"scholar-ops restore to a time\s+40\.00\s+1\.33", text)
    assert "FAIL  push of a segment (median, same WAL) <= 1.5x pgBackRest: 3.33x" in text
    assert "PASS  recovery point age max <= archive_timeout + 5 s: 61.0 s" in text


def test_restores_that_differ_fail_loudly(tmp_path: Path) -> None:
    bench = pitr_bench.PitrBench(work=tmp_path, timeout=60)
    bench.results.update(
        rows_at_base_backups={"history_rows": 100},
        rows_at_end={"history_rows": 300},
        target_time="2026-01-01T00:00:15+00:00",
    )
    same = {"history_rows": 200, "history_delta_sum": 7, "accounts_balance_sum": 7}
    ok = bench.check_rows({"pgbackrest-0": dict(same), "ours-0": dict(same)})
    assert ok["identical"] and ok["history_rows"] == 200
    with pytest.raises(pitr_bench.BenchError, match=r"RESTORED DATA DIFFERS: ours-0"):
        bench.check_rows({"pgbackrest-0": same, "ours-0": {**same, "history_delta_sum": 8}})
    at_end = {**same, "history_rows": 300}
    with pytest.raises(pitr_bench.BenchError, match="not strictly between 100"):
        bench.check_rows({"pgbackrest-0": at_end, "ours-0": at_end})


@pytest.mark.skipif(
    not (shutil.which("pgbackrest") and Path(pitr_bench.TIME).exists()),
    reason="pgbackrest and /usr/bin/time are needed (make deps)",
)
def test_end_to_end_at_a_tiny_scale(tmp_path: Path) -> None:
    proc = subprocess.run(
        [PY, str(SCRIPT), "--size-gb", "0.02", "--repeat", "1", "--load-seconds", "2",
         "--age-seconds", "4", "--archive-timeout", "2", "--json", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)
    for tool in ("pgbackrest", "ours"):
        alone = r["archiving_alone"][tool]
        assert alone["push"]["count"] >= 1 and alone["push"]["segments_per_s"] > 0
        assert alone["failed"] == 0 and alone["wal_mb"] > 0
        assert r["same_wal"][f"push_{tool}"]["median_s"] > 0
        age = r["recovery_point_age"][tool]
        assert age["samples"] >= 3 and 0 <= age["max_s"] <= 2 + 5
        assert age["segments_archived"] >= 1
    # the same WAL: every file went through both
    assert r["same_wal"]["push_ours"]["count"] == r["same_wal"]["push_pgbackrest"]["count"] > 0
    assert [m["key"] for m in r["base_backup"]] == ["pgbackrest", "ours"]
    assert [m["key"] for m in r["restore"]] == ["pgbackrest", "ours"]
    for m in r["restore"]:
        assert m["wall_s"] > 0 and m["extra"]["fetch"]["count"] >= 1
    rows = r["restored_rows"]
    assert rows["identical"] and rows["restores"] == ["ours-0", "pgbackrest-0"]
    assert r["rows_at_base_backups"]["history_rows"] < rows["history_rows"]
    assert rows["history_rows"] < r["rows_at_end"]["history_rows"]
    assert len(r["targets"]) == 6
    text = pitr_bench.report(r)
    assert "the same WAL pushed by both" in text and "targets" in text
    work = re.search(r"working in (\S+)", proc.stderr)
    assert work is not None and not Path(work.group(1)).exists()
