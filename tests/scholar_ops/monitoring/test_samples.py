"""Samples to a registry: one family per name, counters exposed under their _total name."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import Sample, counter, exposition, gauge

LABELS = {"component": "redis", "target": "cache"}


def test_exposition_names_types_and_values():
    text = exposition(
        [
            counter(names.REDIS_COMMANDS, 42, LABELS),
            gauge(names.REDIS_KEYS, 3, {**LABELS, "db": "0"}),
            gauge(names.REDIS_KEYS, 5, {**LABELS, "db": "1"}),
            gauge(names.SYSTEM_LOAD1, 0.5),
        ]
    )
    # Exactly the contract's names, counters included (no doubled _total).
    assert f"# TYPE {names.REDIS_COMMANDS} counter" in text
    assert "_total_total" not in text
    assert f"# TYPE {names.REDIS_KEYS} gauge" in text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    commands = fams[names.REDIS_COMMANDS.removesuffix("_total")]
    assert commands.type == "counter"
    assert [(s.name, s.labels, s.value) for s in commands.samples] == [
        (names.REDIS_COMMANDS, LABELS, 42.0)
    ]
    keys = fams[names.REDIS_KEYS]
    assert keys.type == "gauge"
    assert {s.labels["db"]: s.value for s in keys.samples} == {"0": 3.0, "1": 5.0}
    assert fams[names.SYSTEM_LOAD1].samples[0].labels == {}
    assert fams[names.SYSTEM_LOAD1].documentation == "1-minute load average."


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: counter("scholar_ops_x", 1), "_total suffix"),
        (lambda: gauge("scholar_ops_x_total", 1), "must not end in _total"),
        (lambda: gauge("bad-name", 1), "invalid metric name"),
        (lambda: gauge("scholar_ops_x", 1, {"bad-label": "v"}), "invalid label name"),
        (lambda: gauge("scholar_ops_x", 1, {"u": "http://user:pw@host/x"}), "credentials"),
        (lambda: Sample("scholar_ops_x", 1, {}, "summary"), "kind"),  # type: ignore[arg-type]
    ],
)
def test_bad_samples_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_family_is_consistent():
    with pytest.raises(ValueError, match="given twice"):
        exposition([gauge("scholar_ops_x", 1, {"a": "1"}), gauge("scholar_ops_x", 2, {"a": "1"})])
    with pytest.raises(ValueError, match="finite"):
        exposition([gauge("scholar_ops_x", float("nan"))])
