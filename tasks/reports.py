"""Markdown reports of backups, restores, checks and drills (the runs' artifacts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from scholar_ops.vault.summary import human_bytes, human_duration


def backup_markdown(results: Iterable[Mapping[str, Any]], failures: Mapping[str, str]) -> str:
    results = list(results)
    lines = ["# Backup report", ""]
    if results:
        lines += [
            "| target | type | snapshot | holds | size | new | stored | dedup | duration | throughput |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in results:
            dedup = f"{r['dedup_ratio']}x" if r.get("dedup_ratio") else "-"
            lines.append(
                f"| {r['component']}/{r['target']} | {r['backup_type']} | `{r['short_id']}` "
                f"| {r.get('items', '')} | {human_bytes(r['size_bytes'])} | {human_bytes(r['new_bytes'])} "
                f"| {human_bytes(r['stored_bytes'])} | {dedup} | {r['duration_s']} s "
                f"| {r['throughput_mb_s']} MB/s |"
            )
    if failures:
        lines += ["", "## Failed", ""]
        lines += [f"- **{name}**: {msg}" for name, msg in failures.items()]
    total = sum(r["size_bytes"] for r in results)
    stored = sum(r["stored_bytes"] for r in results)
    lines += ["", f"{len(results)} succeeded, {len(failures)} failed; {human_bytes(total)} backed up, "
              f"{human_bytes(stored)} stored."]  # fmt: skip
    return "\n".join(lines)


def restore_markdown(result: Mapping[str, Any]) -> str:
    if result.get("component", "postgres") != "postgres":
        return component_restore_markdown(result)
    lines = [
        "# Restore report",
        "",
        f"Snapshot `{result['snapshot_id'][:8]}` into database **{result['database']}**: "
        f"{result['tables']} tables, {result['rows']} rows, {human_bytes(result['bytes'])} "
        f"in {result['duration_s']} s.",
        "",
        "| table | rows in backup | rows restored |",
        "| --- | ---: | ---: |",
    ]
    for name, (expected, actual) in sorted(result["row_counts"].items()):
        mark = "" if expected == actual else " **mismatch**"
        lines.append(f"| {name} | {expected} | {actual}{mark} |")
    for w in result.get("warnings", []):
        lines.append(f"\n> warning: {w}")
    return "\n".join(lines)


def check_markdown(report: Mapping[str, Any]) -> str:
    verdict = "OK" if not report["problems"] else f"{len(report['problems'])} problem(s)"
    lines = [
        "# Repository check",
        "",
        f"**{verdict}**: {report['snapshots']} snapshots, {report['packs']} packs; "
        f"{report['packs_read']} packs ({human_bytes(report['bytes_read'])}) and "
        f"{report['chunks_read']} chunks read back.",
    ]
    if report["problems"]:
        lines += ["", *[f"- {p}" for p in report["problems"]]]
    return "\n".join(lines)


def component_restore_markdown(result: Mapping[str, Any]) -> str:
    """A Redis, Chroma or files restore: its figures, then mismatches and warnings."""
    component = result["component"]
    lines = [
        "# Restore report",
        "",
        f"{component} snapshot `{str(result['snapshot_id'])[:8]}` into "
        f"**{result.get('destination', '')}** in {result.get('duration_s', 0)} s: "
        + ("verified, no mismatches." if not result.get("mismatches") else "**MISMATCHES**."),
        "",
        "| figure | value |",
        "| --- | --- |",
    ]
    for key, value in result.items():
        if key in ("component", "snapshot_id", "destination", "mismatches", "warnings"):
            continue
        if isinstance(value, dict | list) and len(str(value)) > 200:
            value = f"{len(value)} items"
        lines.append(f"| {key} | {value} |")
    for m in result.get("mismatches", []):
        lines.append(f"\n> mismatch: {m}")
    for w in result.get("warnings", []):
        lines.append(f"\n> warning: {w}")
    return "\n".join(lines)


def drill_markdown(outcomes: Iterable[Mapping[str, Any]]) -> str:
    """The restore drill report: one row per target, then what differed or failed."""
    outcomes = list(outcomes)
    lines = [
        "# Restore drill report",
        "",
        "| target | result | snapshot | age | checked | duration |",
        "| --- | --- | --- | ---: | --- | ---: |",
    ]
    for o in outcomes:
        name = f"{o['component']}/{o['target']}"
        if o.get("error") is not None:
            lines.append(f"| {name} | **FAILED** ({o.get('reason')}) | - | - | - | - |")
            continue
        result = "ok" if o.get("ok") else "**MISMATCH**"
        checked = "; ".join(o.get("checked") or [])
        lines.append(
            f"| {name} | {result} | `{o['short_id']}` | {human_duration(o['snapshot_age_s'])} "
            f"| {checked} | {o['duration_s']} s |"
        )
    failed = [o for o in outcomes if not o.get("ok")]
    if failed:
        lines += ["", "## Failed", ""]
        for o in failed:
            name = f"{o['component']}/{o['target']}"
            block = f" (block {o['block']})" if o.get("block") and o["block"] != o["target"] else ""
            if o.get("error") is not None:
                lines.append(f"- **{name}**{block}: {o.get('reason')}: {o['error']}")
            else:
                lines.append(f"- **{name}**{block}: the restored data differs from the snapshot:")
                lines += [f"  - {m}" for m in o.get("mismatches") or []]
    warnings = [(o, w) for o in outcomes for w in o.get("warnings") or []]
    for o, w in warnings:
        lines.append(f"\n> warning ({o['component']}/{o['target']}): {w}")
    lines += ["", f"{len(outcomes) - len(failed)} verified, {len(failed)} failed."]
    return "\n".join(lines)
