"""A restore drill run's status as Pushgateway groups: a failed drill pushes only its run
time and status 0 with a bounded reason, so the last success survives (push-add)."""

from __future__ import annotations

import uuid

from scholar_ops.monitoring import names
from scholar_ops.monitoring.drill_status import (
    DRILL_REASONS,
    drill_failure_reason,
    drill_status_groups,
)
from scholar_ops.monitoring.push import push_group
from scholar_ops.sources.drill import DrillOutcome, DrillResult
from scholar_ops.vault.errors import IntegrityError, SnapshotNotFound, SourceError

SECRET = "pw-" + uuid.uuid4().hex  # stands for an error message naming a password


def _result(component: str, target: str, duration: float, mismatches: list[str]) -> DrillResult:
    return DrillResult(
        component=component,
        target=target,
        snapshot_id="ab" * 32,
        snapshot_time="2026-01-01T00:00:00+00:00",
        snapshot_age_s=60.0,
        duration_s=duration,
        mismatches=mismatches,
    )


def _ok(component: str, target: str, duration: float = 4.5) -> DrillOutcome:
    return DrillOutcome(component, target, target, result=_result(component, target, duration, []))


def _failed(component: str, target: str, reason: str | None = None) -> DrillOutcome:
    return DrillOutcome(component, target, target, reason=reason, error=SECRET)


def _differs(component: str, target: str) -> DrillOutcome:
    """Restored, but not what the snapshot holds (the reason the flow gives it)."""
    r = _result(component, target, 3.0, ["db 0: 3 keys, 4 in the backup"])
    return DrillOutcome(component, target, target, result=r, reason="verification_failed")


def _values(group) -> dict[str, float]:
    return {s.name: s.value for s in group.samples}


def test_success_and_failure_groups():
    groups = drill_status_groups(
        [
            _ok("postgres", "app"),
            _failed("files", "uploads", "repository_damaged"),
            _differs("redis", "cache"),
            _failed("chroma", "vectors", "made up"),
        ],
        now=2_000_000_000.0,
    )
    by_target = {g.grouping_key["target"]: g for g in groups}
    assert {g.job for g in groups} == {names.JOB_DRILL}
    assert by_target["app"].grouping_key == {"component": "postgres", "target": "app"}
    assert _values(by_target["app"]) == {
        names.DRILL_LAST_RUN: 2_000_000_000.0,
        names.DRILL_LAST_STATUS: 1.0,
        names.DRILL_LAST_SUCCESS: 2_000_000_000.0,
        names.DRILL_DURATION: 4.5,
    }
    for target, reason in (
        ("uploads", "repository_damaged"),
        ("cache", "verification_failed"),  # the default: the restore differed
        ("vectors", "unexpected_error"),  # never an unbounded value
    ):
        group = by_target[target]
        assert _values(group) == {names.DRILL_LAST_RUN: 2_000_000_000.0, names.DRILL_LAST_STATUS: 0}
        status = next(s for s in group.samples if s.name == names.DRILL_LAST_STATUS)
        assert status.labels == {**group.grouping_key, "reason": reason}


def test_two_outcomes_of_one_target_count_as_failed():
    (group,) = drill_status_groups(
        [_ok("files", "docs"), _failed("files", "docs", "source_failed"), _ok("files", "docs")],
        now=1.0,
    )
    assert _values(group) == {names.DRILL_LAST_RUN: 1.0, names.DRILL_LAST_STATUS: 0.0}


def test_failure_reasons():
    cases = {
        SnapshotNotFound("no snapshot of files/docs"): "no_snapshot",
        IntegrityError("bad pack", "data/ab/abcd"): "repository_damaged",
        SourceError("refused", transient=True): "source_unreachable",
        RuntimeError("boom"): "unexpected_error",
    }
    for exc, reason in cases.items():
        assert drill_failure_reason(exc) == reason, exc
        assert reason in DRILL_REASONS
    assert "verification_failed" in DRILL_REASONS


def _gateway_values(pushgateway, target: str) -> dict[tuple[str, str], float]:
    out = {}
    for name, fam in pushgateway.families().items():
        for s in fam.samples:
            if (
                s.labels.get("target") == target
                and s.labels.get("job") == names.JOB_DRILL
                and name.startswith(names.PREFIX)  # not the gateway's push_time_seconds
            ):
                out[(name, s.labels.get("reason", ""))] = s.value
    return out


def test_failure_after_success_keeps_last_success_in_the_gateway(pushgateway):
    target = f"app-{uuid.uuid4().hex[:8]}"
    for group in drill_status_groups([_ok("postgres", target, 7.0)], now=1_700_000_000.0):
        push_group(pushgateway.url, group)
    for group in drill_status_groups(
        [_failed("postgres", target, "repository_damaged")], now=1_700_086_400.0
    ):
        push_group(pushgateway.url, group)
    assert _gateway_values(pushgateway, target) == {
        (names.DRILL_LAST_RUN, ""): 1_700_086_400.0,
        (names.DRILL_LAST_STATUS, "repository_damaged"): 0.0,  # the status 1 is replaced
        (names.DRILL_LAST_SUCCESS, ""): 1_700_000_000.0,
        (names.DRILL_DURATION, ""): 7.0,
    }
    assert SECRET not in pushgateway.metrics()
