"""Markdown reports of backups, restores, checks and drills (the runs' artifacts).

Narrow tables first (what an operator scans in the Prefect UI), the details below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from scholar_ops.functest.models import ComprehensiveTestReport
from scholar_ops.functest.report import slowest
from scholar_ops.sources.drill import DrillOutcome
from scholar_ops.vault.checker import CheckReport
from scholar_ops.vault.summary import (
    BackupSummary,
    RestoreSummary,
    human_bytes,
    human_duration,
    human_elapsed,
    plural,
)

#: Longest error shown in a report's summary at the top (the run's logs have it whole).
ERROR_CHARS = 400


def _one_line(text: str, limit: int = ERROR_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def backup_markdown(results: Iterable[BackupSummary], failures: Mapping[str, str]) -> str:
    """The backup run's report, narrow enough for the Prefect UI: what failed first (the
    error of each failed target), then what was backed up, then sizes and times; no table
    wider than five columns."""
    results = list(results)
    total = len(results) + len(failures)
    verdict = (
        f"FAILED: {len(failures)} of {plural(total, 'target')}"
        if failures
        else f"{plural(len(results), 'target')} backed up"
    )
    lines = [f"# Backup report: {verdict}", ""]
    if failures:
        lines += [f"- **{name}**: {_one_line(msg)}" for name, msg in failures.items()]
        lines.append("")
    if results:
        lines += [
            "## Backed up",
            "",
            "| target | type | snapshot | holds |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r.component}/{r.target} | {r.backup_type} | `{r.short_id}` | {_cell(r.items)} |"
            for r in results
        ]
        lines += [
            "",
            "## Sizes and times",
            "",
            "| target | read | new | stored | took |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for r in results:
            stored_cell = human_bytes(r.stored_bytes) + (f" (dedup {r.dedup})" if r.dedup else "")
            lines.append(
                f"| {r.component}/{r.target} | {human_bytes(r.size_bytes)} "
                f"| {human_bytes(r.new_bytes)} | {stored_cell} | {r.timing()} |"
            )
        lines.append("")
    size = sum(r.size_bytes for r in results)
    stored = sum(r.stored_bytes for r in results)
    lines.append(
        f"{len(results)} succeeded, {len(failures)} failed; {human_bytes(size)} backed up, "
        f"{human_bytes(stored)} stored."
    )
    return "\n".join(lines)


def restore_markdown(result: RestoreSummary) -> str:
    lines = [
        "# Restore report",
        "",
        f"{result.component} snapshot `{result.short_id}` into **{result.destination}**: "
        f"{result.restored} in {human_elapsed(result.duration_s)}; {result.verified}.",
        "",
        "| figure | value |",
        "| --- | --- |",
    ]
    for key, value in result.figures.items():
        lines.append(f"| {key} | {_short(value)} |")
    for m in result.mismatches:
        lines.append(f"\n> mismatch: {m}")
    for w in result.warnings:
        lines.append(f"\n> warning: {w}")
    return "\n".join(lines)


def _short(value: Any) -> Any:
    if isinstance(value, dict | list) and len(str(value)) > 200:
        return f"{len(value)} items"
    return value


def check_markdown(report: CheckReport) -> str:
    verdict = "OK" if report.ok else plural(len(report.problems), "problem")
    lines = [
        "# Repository check",
        "",
        f"**{verdict}**: {plural(report.snapshots, 'snapshot')}, {plural(report.packs, 'pack')}; "
        f"{plural(report.packs_read, 'pack')} ({human_bytes(report.bytes_read)}) and "
        f"{plural(report.chunks_read, 'chunk')} read back.",
    ]
    if report.problems:
        lines += ["", *[f"- {p}" for p in report.problems]]
    if report.notices:
        lines += ["", "Notices:", "", *[f"- {n}" for n in report.notices]]
    return "\n".join(lines)


def drill_markdown(outcomes: Iterable[DrillOutcome]) -> str:
    """The restore drill report: what differed or failed first, then one row per target."""
    outcomes = list(outcomes)
    failed = [o for o in outcomes if not o.ok]
    verdict = (
        f"FAILED: {len(failed)} of {plural(len(outcomes), 'target')}"
        if failed
        else f"{plural(len(outcomes), 'target')} verified"
    )
    lines = [f"# Restore drill report: {verdict}", ""]
    for o in failed:
        name = f"{o.component}/{o.target}"
        block = f" (block {o.block})" if o.block != o.target else ""
        if o.error is not None:
            lines.append(f"- **{name}**{block}: {o.reason}: {_one_line(o.error)}")
        else:
            lines.append(f"- **{name}**{block}: the restored data differs from the snapshot:")
            lines += [f"  - {m}" for m in (o.result.mismatches if o.result else [])]
    if failed:
        lines.append("")
    lines += [
        "| target | result | snapshot | age | took |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for o in outcomes:
        name = f"{o.component}/{o.target}"
        r = o.result
        if r is None:
            lines.append(f"| {name} | **FAILED** ({o.reason}) | - | - | - |")
            continue
        result = "ok" if o.ok else "**MISMATCH**"
        lines.append(
            f"| {name} | {result} | `{r.short_id}` | {human_duration(r.snapshot_age_s)} "
            f"| {human_elapsed(r.duration_s)} |"
        )
    checked = [(o, c) for o in outcomes if o.result is not None for c in o.result.checked]
    if checked:
        lines += ["", "## Checked", ""]
        lines += [f"- {o.component}/{o.target}: {c}" for o, c in checked]
    for o in outcomes:
        for w in o.result.warnings if o.result else []:
            lines.append(f"\n> warning ({o.component}/{o.target}): {w}")
    lines += ["", f"{len(outcomes) - len(failed)} verified, {len(failed)} failed."]
    return "\n".join(lines)


# -- functionality tests -------------------------------------------------------------------

_STATUS_MARK = {
    "passed": "passed",
    "failed": "**FAILED**",
    "error": "**ERROR**",
    "unavailable": "**UNAVAILABLE**",
    "timed_out": "**TIMED OUT**",
    "skipped": "skipped",
}


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def functest_markdown(report: ComprehensiveTestReport, files: Iterable[str] = ()) -> str:
    """The run's report: verdict and score, suites, failures with severity and context,
    SLOs, slowest tests, recommendations, where the files are."""
    lines = [
        f"# {report.kind.capitalize()} tests of {report.target}: {report.overall_status.upper()}",
        "",
        f"system_health_score **{report.system_health_score:g}** / 100; "
        f"{report.base_url}; {report.total_execution_time:.1f} s; run {report.run_id or '-'}",
        "",
        "| suite | status | tests | passed | failed | skipped | time | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in report.test_suites:
        note = _cell(s.reason or "") + (f" ({s.attempts} attempts)" if s.attempts > 1 else "")
        lines.append(
            f"| {s.suite_name} | {_STATUS_MARK.get(s.status, s.status)} | {s.total_tests} "
            f"| {s.passed_tests} | {s.failed_tests} | {s.skipped_tests} "
            f"| {s.execution_time:.1f} s | {note} |"
        )
    failures = report.failures
    if failures:
        order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
        failures.sort(key=lambda f: order[f[1].severity])
        lines += ["", "## Failures", "", "| severity | suite | test | what broke | context |"]
        lines.append("| --- | --- | --- | --- | --- |")
        for s, t in failures:
            ctx = "; ".join(f"{k}: {v}" for k, v in t.context.items())
            lines.append(
                f"| {t.severity} | {s.suite_name} | {_cell(t.test_name, 80)} "
                f"| {_cell(t.error_message or t.status)} | {_cell(ctx)} |"
            )
    slos = [(s.suite_name, x) for s in report.test_suites for x in s.slos]
    if slos:
        lines += ["", "## Service-level objectives", ""]
        lines += ["| endpoint | metric | objective | measured | previous run | met |"]
        lines.append("| --- | --- | ---: | ---: | ---: | --- |")
        for _, x in slos:
            base = f"{x.baseline:g}" if x.baseline is not None else "-"
            lines.append(
                f"| {x.endpoint} | {x.metric} | {x.objective:g} | {x.measured:.1f} | {base} "
                f"| {'yes' if x.passed else '**no**'} |"
            )
    slow = slowest(report)
    if slow:
        lines += ["", "## Slowest tests", "", "| suite | test | duration |", "| --- | --- | ---: |"]
        lines += [f"| {n} | {_cell(t.test_name, 80)} | {t.duration:.2f} s |" for n, t in slow]
    if report.recommendations:
        lines += ["", "## Recommendations", ""]
        lines += [f"- {_cell(r, 300)}" for r in report.recommendations]
    artifacts = [a for s in report.test_suites for a in s.artifacts]
    files = list(files)
    if files or artifacts:
        lines += ["", "## Files", ""]
        lines += [f"- `{f}`" for f in [*files, *artifacts]]
    return "\n".join(lines)


def functest_rows(report: ComprehensiveTestReport) -> list[dict[str, Any]]:
    """One row per test (the table artifact)."""
    rows: list[dict[str, Any]] = []
    for s in report.test_suites:
        if not s.tests:
            rows.append(
                {"suite": s.suite_name, "test": "(suite)", "status": s.status,
                 "severity": "", "duration_s": round(s.execution_time, 3),
                 "error": s.reason or ""}
            )  # fmt: skip
        for t in s.tests:
            rows.append(
                {"suite": s.suite_name, "test": t.test_name, "status": t.status,
                 "severity": t.severity if t.status in ("failed", "error") else "",
                 "duration_s": round(t.duration, 3), "error": t.error_message or ""}
            )  # fmt: skip
    return rows
