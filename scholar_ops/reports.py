"""Human-readable reports of backups, restores, checks and the catalog (markdown and rows).

Plain functions without Prefect, used by tasks for artifacts and by the command line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from scholar_ops.vault.snapshot import Snapshot


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def snapshot_summary(snap: Snapshot) -> dict[str, Any]:
    """The small, secret-free result a backup task returns (never data)."""
    stats = snap.stats
    duration = max(float(stats.get("duration_s", 0.0)), 1e-3)
    stored = int(stats.get("bytes_stored", 0))
    return {
        "backup_id": snap.backup_id,
        "short_id": snap.short_id,
        "component": snap.component,
        "target": snap.target,
        "backup_type": snap.backup_type,
        "timestamp": snap.timestamp,
        "size_bytes": snap.size_bytes,
        "new_bytes": int(stats.get("bytes_new", 0)),
        "stored_bytes": stored,
        "dedup_ratio": round(snap.size_bytes / stored, 2) if stored else None,
        "duration_s": round(duration, 2),
        "throughput_mb_s": round(snap.size_bytes / 1e6 / duration, 1),
        "checksum": snap.checksum,
        "retention_until": snap.retention_until,
        "tables": len(snap.details.get("tables", [])),
        "items": snapshot_items(snap),
    }


def snapshot_items(snap: Snapshot) -> str:
    """What a snapshot holds, in a few words ("12 tables", "3 collections, 5000 records")."""
    d = snap.details
    if snap.component == "postgres":
        return f"{len(d.get('tables', []))} tables"
    if snap.component == "redis":
        dbs = d.get("databases") or {}
        keys = sum(int(v.get("keys", 0)) for v in dbs.values())
        return f"{keys} keys in {len(dbs)} databases"
    if snap.component == "chroma":
        cols = d.get("collections") or []
        kind = (
            " (physical copy)"
            if d.get("kind") == "physical" or "physical" in str(d.get("format", ""))
            else ""
        )
        return (
            f"{len(cols)} collections, {sum(int(c.get('records', 0)) for c in cols)} records{kind}"
        )
    if snap.component == "files":
        c = d.get("counts") or {}
        return (
            f"{c.get('files', 0)} files ({c.get('files_unchanged', 0)} unchanged), "
            f"{c.get('dirs', 0)} dirs, {c.get('symlinks', 0)} symlinks"
        )
    return f"{len(snap.entries)} entries"


def catalog_row(snap: Snapshot) -> dict[str, Any]:
    return {
        "id": snap.short_id,
        "time": snap.timestamp[:19].replace("T", " "),
        "component": snap.component,
        "target": snap.target,
        "type": snap.backup_type,
        "size": human_bytes(snap.size_bytes),
        "stored": human_bytes(int(snap.stats.get("bytes_stored", 0))),
        "retention_until": (snap.retention_until or "")[:10],
        "group": (snap.group or "")[:8],
    }


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


def human_duration(seconds: float) -> str:
    """A short age or duration: "42 s", "7 min", "3.5 h", "2.0 d"."""
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def drill_line(outcome: Mapping[str, Any]) -> str:
    """One line about one drilled target (the command line prints these)."""
    name = f"{outcome['component']}/{outcome['target']}"
    if outcome.get("error") is not None:
        error = str(outcome["error"]).strip().splitlines() or [""]
        return f"{name}: FAILED ({outcome.get('reason', 'unexpected_error')}): {error[0]}"
    snap = f"snapshot {outcome['short_id']} ({human_duration(outcome['snapshot_age_s'])} old)"
    if outcome.get("ok"):
        checked = outcome.get("checked") or []
        return f"{name}: ok, {snap}: {checked[0] if checked else 'verified'} in {outcome['duration_s']} s"
    mismatches = outcome.get("mismatches") or []
    return (
        f"{name}: FAILED (verification_failed), {snap}: {len(mismatches)} mismatch(es): "
        + "; ".join(mismatches[:3])
    )


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
