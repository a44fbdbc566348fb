"""A backup run's status as Pushgateway groups; a failure never erases last-success gauges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from scholar_ops.monitoring import names
from scholar_ops.monitoring.backup_status import backup_status_groups, interval_lookup
from scholar_ops.monitoring.push import push_group
from scholar_ops.vault.summary import BackupSummary

SECRET = "pw-" + uuid.uuid4().hex  # stands for a target's password: must appear nowhere


def _result(target: str, when: datetime, size: int = 1000, stored: int = 250) -> BackupSummary:
    return BackupSummary(
        backup_id=uuid.uuid4().hex,
        component="postgres",
        target=target,
        backup_type="incremental",
        timestamp=when.isoformat(),
        size_bytes=size,
        new_bytes=400,
        stored_bytes=stored,
        dedup_ratio=round(size / stored, 2),
        duration_s=12.5,
        throughput_mb_s=0.0,
        checksum="",
        retention_until=None,
        items="1 tables",
    )


def _values(group) -> dict[str, float]:
    return {s.name: s.value for s in group.samples}


def test_success_and_failure_groups():
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    groups = backup_status_groups(
        [_result("app", when)],
        {"redis/cache": "connection refused"},
        expected_interval=interval_lookup(3600, {"redis/cache": 600}),
        now=2_000_000_000.0,
        reasons={"redis/cache": "source_unreachable"},
    )
    by_target = {g.grouping_key["target"]: g for g in groups}
    assert {g.job for g in groups} == {names.JOB_BACKUP}
    ok, failed = by_target["app"], by_target["cache"]
    assert ok.grouping_key == {"component": "postgres", "target": "app"}
    assert _values(ok) == {
        names.BACKUP_LAST_RUN: 2_000_000_000.0,
        names.BACKUP_EXPECTED_INTERVAL: 3600.0,
        names.BACKUP_LAST_SUCCESS: when.timestamp(),
        names.BACKUP_DURATION: 12.5,
        names.BACKUP_SIZE: 1000.0,
        names.BACKUP_NEW: 400.0,
        names.BACKUP_STORED: 250.0,
        names.BACKUP_DEDUP: 4.0,
        names.BACKUP_FALLBACK_USED: 0.0,
        names.BACKUP_LAST_STATUS: 1.0,
    }
    # A failure carries only its status and time: push-add keeps the success figures.
    assert _values(failed) == {
        names.BACKUP_LAST_RUN: 2_000_000_000.0,
        names.BACKUP_EXPECTED_INTERVAL: 600.0,
        names.BACKUP_LAST_STATUS: 0.0,
        names.BACKUP_LAST_FAILURE: 2_000_000_000.0,
    }
    # The failed status carries a bounded reason; everything else only the group's labels.
    for s in failed.samples:
        extra = {"reason": "source_unreachable"} if s.name == names.BACKUP_LAST_STATUS else {}
        assert s.labels == {**failed.grouping_key, **extra}


def test_failure_reasons_are_bounded_categories():
    import subprocess

    import psycopg

    from scholar_ops.monitoring.backup_status import REASONS, failure_reason
    from scholar_ops.vault.errors import (
        ConfigError,
        IntegrityError,
        SourceError,
        TransientStorageError,
    )

    cases = {
        SourceError("refused", transient=True): "source_unreachable",
        SourceError("pg_dump: permission denied", transient=False): "source_failed",
        psycopg.OperationalError("connection refused"): "source_unreachable",
        TransientStorageError("503"): "storage_unreachable",
        IntegrityError("bad pack", "packs/x"): "repository_damaged",
        ConfigError("no such block"): "configuration_error",
        subprocess.TimeoutExpired("pg_dump", 5): "timed_out",
        RuntimeError("boom"): "unexpected_error",
    }
    for exc, reason in cases.items():
        assert failure_reason(exc) == reason, exc
        assert reason in REASONS
    groups = backup_status_groups([], {"redis/cache": "x"}, reasons={"redis/cache": "made up"})
    status = next(s for s in groups[0].samples if s.name == names.BACKUP_LAST_STATUS)
    assert status.labels["reason"] == "unexpected_error"  # never an unbounded value


def test_a_target_with_a_result_and_a_failure_counts_as_failed():
    when = datetime(2024, 5, 1, tzinfo=UTC)
    (group,) = backup_status_groups([_result("app", when)], {"postgres/app": "boom"}, now=1.0)
    values = _values(group)
    assert values[names.BACKUP_LAST_STATUS] == 0.0
    assert values[names.BACKUP_LAST_SUCCESS] == when.timestamp()


def test_bad_failure_keys_are_an_error():
    with pytest.raises(ValueError, match="component/target"):
        backup_status_groups([], {"no-slash": "x"})


def _gateway_values(pushgateway, target: str) -> dict[str, float]:
    out = {}
    for name, fam in pushgateway.families().items():
        for s in fam.samples:
            if s.labels.get("target") == target and s.labels.get("job") == names.JOB_BACKUP:
                out[name] = s.value
    return out


def test_failure_after_success_keeps_last_success_in_the_gateway(pushgateway):
    suffix = uuid.uuid4().hex[:8]
    target, other = f"app-{suffix}", f"other-{suffix}"
    first = datetime.now(UTC).replace(microsecond=0)
    for group in backup_status_groups(
        [_result(target, first), _result(other, first, size=5000)], {}, now=first.timestamp() + 1
    ):
        push_group(pushgateway.url, group)
    before = _gateway_values(pushgateway, target)
    other_before = _gateway_values(pushgateway, other)
    assert before[names.BACKUP_LAST_STATUS] == 1.0
    assert before[names.BACKUP_LAST_SUCCESS] == first.timestamp()

    later = first.timestamp() + 3600
    for group in backup_status_groups([], {f"postgres/{target}": SECRET}, now=later):
        push_group(pushgateway.url, group)
    after = _gateway_values(pushgateway, target)
    assert after[names.BACKUP_LAST_STATUS] == 0.0
    assert after[names.BACKUP_LAST_FAILURE] == later
    assert after[names.BACKUP_LAST_RUN] == later
    # Kept from the successful run: the gauges the failure did not push.
    for name in (
        names.BACKUP_LAST_SUCCESS,
        names.BACKUP_DURATION,
        names.BACKUP_SIZE,
        names.BACKUP_NEW,
        names.BACKUP_STORED,
        names.BACKUP_DEDUP,
    ):
        assert after[name] == before[name], name
    # Another target's group is untouched (push_time_seconds included).
    assert _gateway_values(pushgateway, other) == other_before
    # The failure's message (here a secret) is never pushed.
    text = pushgateway.metrics()
    assert SECRET not in text
    assert SECRET not in httpx.get(f"{pushgateway.url}/api/v1/metrics", timeout=10).text


def test_a_backup_into_the_fallback_repository_is_flagged():
    from dataclasses import replace

    when = datetime(2024, 5, 1, tzinfo=UTC)
    primary = _result("app", when)
    fallback = replace(_result("other", when), fallback="scholar-ops-fallback")
    groups = {
        g.grouping_key["target"]: _values(g) for g in backup_status_groups([primary, fallback], {})
    }
    assert groups["app"][names.BACKUP_FALLBACK_USED] == 0.0
    assert groups["other"][names.BACKUP_FALLBACK_USED] == 1.0
    assert groups["other"][names.BACKUP_LAST_STATUS] == 1.0  # a success, with a warning
