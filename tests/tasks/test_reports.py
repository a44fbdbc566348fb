"""The functionality test report's markdown and table artifacts."""

from __future__ import annotations

import re

from scholar_ops.functest.models import SloResult, TestResult, TestSuite
from scholar_ops.functest.report import build_report
from tasks.reports import functest_markdown, functest_rows


def _report():
    api = TestSuite(
        "api",
        tests=[
            TestResult(
                "search",
                "failed",
                0.2,
                "POST /api/search answered 500, expected 200",
                severity="critical",
                context={"endpoint": "POST /api/search", "status": "500"},
            ),
            TestResult("GET /api/me", "passed", 0.01),
        ],
    ).finish(0, 1.5)
    perf = TestSuite(
        "performance",
        slos=[SloResult("POST /api/search", "p95_ms", 500, 850.4, 210, False)],
        tests=[
            TestResult(
                "p95",
                "failed",
                3.0,
                "p95 ...",
                severity="medium",
                context={"slo": "POST /api/search p95_ms"},
            )
        ],
    ).finish(0, 3)
    down = TestSuite(
        "database", status="unavailable", reason="postgres is unavailable: refused", attempts=3
    )
    return build_report([api, down, perf], target="aischolar", base_url="http://app", run_id="r1")


def test_markdown_has_verdict_suites_failures_slos_and_recommendations():
    md = functest_markdown(_report(), ["/runs/r1/report.json"])
    assert md.startswith("# Full tests of aischolar: FAILED")
    assert (
        "| database | **UNAVAILABLE** | 0 | 0 | 0 | 0 | 0.0 s | postgres is unavailable: refused (3 attempts) |"
        in md
    )
    assert (
        "| critical | api | search | POST /api/search answered 500, expected 200 | endpoint: POST /api/search; status: 500 |"
        in md
    )
    assert "| POST /api/search | p95_ms | 500 | 850.4 | 210 | **no** |" in md
    assert (
        "- p95 of POST /api/search 850 ms exceeds its 500 ms SLO; it was 210 ms in the previous run"
        in md
    )
    assert "`/runs/r1/report.json`" in md
    # failures come most severe first
    assert md.index("| critical |") < md.index("| medium |")


def test_table_has_a_row_per_test_and_per_suite_that_did_not_run():
    rows = functest_rows(_report())
    assert {
        "suite": "database",
        "test": "(suite)",
        "status": "unavailable",
        "severity": "",
        "duration_s": 0.0,
        "error": "postgres is unavailable: refused",
    } in rows
    assert len(rows) == 4


# -- backups, drills, checks ---------------------------------------------------------------


def _backup(component: str, target: str, size: int, stored: int, duration: float, items: str):
    from scholar_ops.vault.summary import BackupSummary

    return BackupSummary(
        backup_id=f"{component}-{target}".ljust(64, "0"),
        component=component,
        target=target,
        backup_type="full",
        timestamp="2026-12-04T08:00:00+00:00",
        size_bytes=size,
        new_bytes=stored,
        stored_bytes=stored,
        dedup_ratio=round(size / stored, 2) if stored else None,
        duration_s=duration,
        throughput_mb_s=round(size / 1e6 / max(duration, 1e-3), 1),
        checksum="x",
        retention_until=None,
        items=items,
    )


def _tables(md: str) -> list[list[str]]:
    """The markdown's tables, as their header rows' cells."""
    heads = []
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            heads.append([c.strip() for c in line.strip("|").split("|")])
    return heads


def _rows_of(md: str, first_cell: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in md.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


def test_backup_report_fits_the_ui_and_reads_well():
    from tasks.reports import backup_markdown

    results = [
        _backup("postgres", "aischolar-postgres", 300 << 20, 90 << 20, 6.0, "12 tables"),
        _backup(
            "files", "aischolar-config", 4, 410, 0.0, "1 file (0 unchanged), 0 dirs, 0 symlinks"
        ),
    ]
    md = backup_markdown(results, {})
    tables = _tables(md)
    assert len(tables) == 2
    assert all(len(head) <= 5 for head in tables), tables
    # every figure of the old ten-column table is still there
    assert {"target", "type", "snapshot", "holds", "read", "new", "stored", "took"} <= {
        c for head in tables for c in head
    }
    assert md.startswith("# Backup report: 2 targets backed up")
    pg = _rows_of(md, "postgres/aischolar-postgres")
    assert pg[1] == ["postgres/aischolar-postgres", "300.0 MiB", "90.0 MiB",
                     "90.0 MiB (dedup 3.3x)", "6.0 s at 52 MB/s"]  # fmt: skip
    tiny = _rows_of(md, "files/aischolar-config")[1]
    assert tiny == ["files/aischolar-config", "4 B", "410 B", "410 B", "0.00 s"]
    assert "0.01x" not in md and "0.0 MB/s" not in md and not re.search(r"(?<![\d.])0 s\b", md)


def test_a_failed_backups_error_comes_first():
    from tasks.reports import backup_markdown

    ok = _backup("redis", "aischolar-redis", 2 << 20, 1 << 20, 0.5, "10 keys in 1 database")
    error = "cannot connect to aischolar-postgres at 127.0.0.1:1: Connection refused " + "x" * 900
    md = backup_markdown([ok], {"postgres/aischolar-postgres": error})
    lines = md.splitlines()
    assert lines[0] == "# Backup report: FAILED: 1 of 2 targets"
    first = next(line for line in lines[1:] if line.strip())
    assert first.startswith(
        "- **postgres/aischolar-postgres**: cannot connect to aischolar-postgres"
    )
    assert len(first) < 500  # a summary; the whole error is in the run's logs
    assert md.index("Connection refused") < md.index("| target |")
    assert all(len(head) <= 5 for head in _tables(md))
    # nothing backed up at all: the error alone, and no empty tables
    md = backup_markdown([], {"postgres/aischolar-postgres": "cannot open the repository: denied"})
    assert md.splitlines()[0] == "# Backup report: FAILED: 1 of 1 target"
    assert (
        md.splitlines()[2]
        == "- **postgres/aischolar-postgres**: cannot open the repository: denied"
    )
    assert _tables(md) == []


def test_drill_report_puts_failures_first_and_says_how_long():
    from scholar_ops.sources.drill import DrillOutcome, DrillResult
    from tasks.reports import drill_markdown

    good = DrillOutcome(
        "redis", "aischolar-redis", "aischolar-redis",
        DrillResult("redis", "aischolar-redis", "c" * 64, "t", 3600.0, 0.3, ["counts match"]),
    )  # fmt: skip
    bad = DrillOutcome(
        "postgres", "aischolar-postgres", "pg", None, "restore_failed", "pg_restore: boom"
    )
    md = drill_markdown([good, bad])
    lines = md.splitlines()
    assert lines[0] == "# Restore drill report: FAILED: 1 of 2 targets"
    assert (
        lines[2] == "- **postgres/aischolar-postgres** (block pg): restore_failed: pg_restore: boom"
    )
    assert md.index("pg_restore: boom") < md.index("| target |")
    assert _rows_of(md, "redis/aischolar-redis")[0][-1] == "0.3 s"
    assert drill_markdown([good]).splitlines()[0] == "# Restore drill report: 1 target verified"


def test_check_report_counts_in_words():
    from scholar_ops.vault.checker import CheckReport
    from tasks.reports import check_markdown

    md = check_markdown(
        CheckReport(snapshots=1, packs=2, packs_read=1, chunks_read=1, bytes_read=10)
    )
    assert "**OK**: 1 snapshot, 2 packs; 1 pack (10 B) and 1 chunk read back." in md
