"""A second copy's Pushgateway group: success keeps last_success, failure pushes only status."""

from __future__ import annotations

from scholar_ops.monitoring import names
from scholar_ops.monitoring.copy_status import copy_status_group


def test_success_and_failure_groups():
    ok = copy_status_group("offsite", True, 1234, now=100.0)
    assert (ok.job, ok.grouping_key) == (names.JOB_COPY, {"destination": "offsite"})
    assert {s.name: s.value for s in ok.samples} == {
        names.COPY_LAST_RUN: 100.0,
        names.COPY_LAST_STATUS: 1.0,
        names.COPY_LAST_SUCCESS: 100.0,
        names.COPY_BYTES: 1234.0,
    }
    failed = copy_status_group("offsite", False, now=200.0)
    assert {s.name: s.value for s in failed.samples} == {
        names.COPY_LAST_RUN: 200.0,
        names.COPY_LAST_STATUS: 0.0,
    }
    assert all(s.labels == {"destination": "offsite"} for s in failed.samples)
