"""The run's report: overall status, system_health_score, recommendations, and its
JUnit XML and JSON forms.

system_health_score (0-100) is a weighted mean of the suites' scores:
- a suite's score is the severity-weighted share of its tests that passed (weights
  critical 8, high 4, medium 2, low 1; skipped tests count for nothing); a suite that
  was unavailable, errored or timed out scores 0; a suite with no tests scores 100;
- suites weigh ``DEFAULT_WEIGHTS`` (the plan's ``weights`` override them), over the
  suites that ran;
- any failed critical test caps the score at 49: users cannot use a core function,
  whatever else passed.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from scholar_ops.functest.models import (
    ComprehensiveTestReport,
    OverallStatus,
    Severity,
    TestResult,
    TestSuite,
    now,
)

SEVERITY_WEIGHTS: dict[Severity, float] = {"critical": 8, "high": 4, "medium": 2, "low": 1}
DEFAULT_WEIGHTS: dict[str, float] = {
    "api": 25,
    "database": 20,
    "integration": 20,
    "performance": 15,
    "ui": 15,
    "pytest": 5,
}
CRITICAL_CAP = 49.0


def suite_score(suite: TestSuite) -> float:
    if suite.status in ("unavailable", "error", "timed_out"):
        return 0.0
    counted = [t for t in suite.tests if t.status != "skipped"]
    if not counted:
        return 100.0
    total = sum(SEVERITY_WEIGHTS[t.severity] for t in counted)
    passed = sum(SEVERITY_WEIGHTS[t.severity] for t in counted if t.status == "passed")
    return 100.0 * passed / total


def health_score(suites: Sequence[TestSuite], weights: Mapping[str, float] | None = None) -> float:
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    ran = [s for s in suites if s.status != "skipped"]
    if not ran:
        return 0.0
    total = sum(weights.get(s.suite_name, 10.0) for s in ran)
    if total <= 0:
        return 0.0
    score = sum(weights.get(s.suite_name, 10.0) * suite_score(s) for s in ran) / total
    if any(t.status == "failed" and t.severity == "critical" for s in ran for t in s.tests):
        score = min(score, CRITICAL_CAP)
    return round(score, 1)


def overall_status(suites: Sequence[TestSuite]) -> OverallStatus:
    """failed: a test failed; unavailable: nothing could be tested; degraded: every
    verdict passed but a suite was unavailable, errored or timed out; else passed."""
    ran = [s for s in suites if s.status != "skipped"]
    if any(s.failed_tests for s in ran) or any(s.status == "failed" for s in ran):
        return "failed"
    if ran and all(s.status == "unavailable" for s in ran):
        return "unavailable"
    if any(s.status in ("unavailable", "error", "timed_out") for s in ran):
        return "degraded"
    return "passed"


def _fmt(value: float, metric: str) -> str:
    if metric.endswith("_ms"):
        return f"{value:.0f} ms"
    if metric == "error_rate":
        return f"{value:.1%}"
    if metric == "throughput_rps":
        return f"{value:.0f} req/s"
    return f"{value:g}"


_METRIC_WORDS = {
    "p50_ms": "p50",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "error_rate": "the error rate",
    "throughput_rps": "throughput",
}


def recommendations(suites: Sequence[TestSuite]) -> list[str]:
    """Concrete next steps, most severe first."""
    out: list[tuple[int, str]] = []
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    for s in suites:
        if s.status == "unavailable":
            out.append(
                (
                    0,
                    f"{s.suite_name}: {s.reason}; check that the service runs and "
                    "is reachable from the test runner, then run the suite again",
                )
            )
        elif s.status == "timed_out":
            out.append(
                (
                    1,
                    f"{s.suite_name}: {s.reason}; raise suites.{s.suite_name}."
                    "timeout_seconds or find what hangs",
                )
            )
        elif s.status == "error":
            out.append((1, f"{s.suite_name} could not run: {s.reason}"))
        for slo in s.slos:
            if slo.passed:
                continue
            word = _METRIC_WORDS.get(slo.metric, slo.metric)
            bound = "below" if slo.higher_is_better else "exceeds"
            text = (
                f"{word} of {slo.endpoint} {_fmt(slo.measured, slo.metric)} {bound} its "
                f"{_fmt(slo.objective, slo.metric)} SLO"
            )
            if slo.baseline is not None:
                text += f"; it was {_fmt(slo.baseline, slo.metric)} in the previous run"
            out.append((2, text))
        slo_named = {f"{x.endpoint} {x.metric}" for x in s.slos if not x.passed}
        for t in s.tests:
            if t.status not in ("failed", "error"):
                continue
            if t.context.get("slo") in slo_named:
                continue  # already said above, with its numbers
            where = f"{s.suite_name}: {t.test_name}"
            message = t.error_message or "failed"
            out.append((rank[t.severity], f"fix {where} ({t.severity}): {message}"))
    out.sort(key=lambda x: x[0])
    seen: set[str] = set()
    result = []
    for _, text in out:
        if text not in seen:
            seen.add(text)
            result.append(text)
    return result


def build_report(
    suites: Sequence[TestSuite],
    *,
    target: str = "",
    base_url: str = "",
    weights: Mapping[str, float] | None = None,
    started_at: datetime | None = None,
    total_execution_time: float | None = None,
    run_id: str = "",
    kind: str = "full",
) -> ComprehensiveTestReport:
    suites = list(suites)
    return ComprehensiveTestReport(
        test_suites=suites,
        overall_status=overall_status(suites),
        total_execution_time=round(
            total_execution_time
            if total_execution_time is not None
            else max((s.execution_time for s in suites), default=0.0),
            3,
        ),
        system_health_score=health_score(suites, weights),
        recommendations=recommendations(suites),
        target=target,
        base_url=base_url,
        started_at=started_at or now(),
        run_id=run_id,
        kind=kind,
    )


def slowest(report: ComprehensiveTestReport, n: int = 5) -> list[tuple[str, TestResult]]:
    tests = [(s.suite_name, t) for s in report.test_suites for t in s.tests]
    tests.sort(key=lambda x: x[1].duration, reverse=True)
    return tests[:n]


# -- files ---------------------------------------------------------------------------------


def junit_xml(report: ComprehensiveTestReport) -> bytes:
    """The report as JUnit XML (one testsuite per suite; an unavailable, errored or
    timed-out suite is one errored testcase named after the suite)."""
    root = ET.Element(
        "testsuites",
        name=f"scholar-ops {report.kind} tests of {report.target}",
        time=f"{report.total_execution_time:.3f}",
    )
    for s in report.test_suites:
        tests = list(s.tests)
        el = ET.SubElement(
            root,
            "testsuite",
            name=s.suite_name,
            time=f"{s.execution_time:.3f}",
            timestamp=report.started_at.isoformat(),
        )
        failures = errors = skipped = 0
        for t in tests:
            case = ET.SubElement(
                el, "testcase", classname=s.suite_name, name=t.test_name, time=f"{t.duration:.3f}"
            )
            detail = "\n".join(f"{k}: {v}" for k, v in t.context.items())
            if t.status == "failed":
                failures += 1
                f = ET.SubElement(
                    case, "failure", message=t.error_message or "failed", type=t.severity
                )
                f.text = detail
            elif t.status in ("error", "unavailable"):
                errors += 1
                f = ET.SubElement(case, "error", message=t.error_message or t.status, type=t.status)
                f.text = detail
            elif t.status == "skipped":
                skipped += 1
                ET.SubElement(case, "skipped", message=t.error_message or "skipped")
        if s.status in ("unavailable", "error", "timed_out"):
            errors += 1
            case = ET.SubElement(el, "testcase", classname=s.suite_name, name=s.suite_name)
            ET.SubElement(case, "error", message=s.reason or s.status, type=s.status)
        el.set("tests", str(len(el.findall("testcase"))))
        el.set("failures", str(failures))
        el.set("errors", str(errors))
        el.set("skipped", str(skipped))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_files(report: ComprehensiveTestReport, directory: Path) -> tuple[Path, Path]:
    """Write report.json and junit.xml into ``directory``; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "report.json"
    xml_path = directory / "junit.xml"
    doc = report.to_dict()
    doc["generated_at"] = time.time()
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    xml_path.write_bytes(junit_xml(report))
    return json_path, xml_path
