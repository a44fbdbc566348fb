"""Samples: one metric value with its labels, and groups of them as pushed together.

Collectors return plain ``Sample`` values; ``to_registry`` turns a list of them into a
prometheus_client ``CollectorRegistry`` (one metric family per name) for a push.

Counters are named with their ``_total`` suffix, exactly as in ``scholar_ops.monitoring.names``,
and exposed under that name (``# TYPE scholar_ops_..._total counter``): the family
is built with ``CounterMetricFamily``, which strips the suffix from the family name
and puts it back on the sample (prometheus_client's ``Counter`` would append a second
``_total`` to a name that has one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from scholar_ops.monitoring import names

Kind = Literal["gauge", "counter"]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# A URL carrying credentials (scheme://user:password@host): never a label value.
_URL_WITH_USERINFO = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s@]*@")

#: Help texts of the metrics scholar-ops pushes (docs/metrics.md); a sample's own
#: ``help`` wins.
HELP: dict[str, str] = {
    names.BACKUP_LAST_RUN: "End of the last backup run of this target, successful or not (Unix time).",
    names.BACKUP_LAST_STATUS: "1 if the last backup run of this target succeeded, 0 if it failed.",
    names.BACKUP_LAST_SUCCESS: "End of the last successful backup of this target: its newest snapshot (Unix time).",
    names.BACKUP_LAST_FAILURE: "End of the last failed backup run of this target (Unix time).",
    names.BACKUP_DURATION: "Duration of the last successful backup of this target.",
    names.BACKUP_SIZE: "Bytes read from the source by the last successful backup.",
    names.BACKUP_NEW: "Bytes of new chunks the last successful backup wrote (before compression).",
    names.BACKUP_STORED: "Bytes the last successful backup uploaded (compressed, encrypted).",
    names.BACKUP_DEDUP: "Size / stored bytes of the last successful backup.",
    names.BACKUP_SNAPSHOTS: "Snapshots of this target in the repository.",
    names.BACKUP_NEWEST_AGE: "Age of the newest snapshot of this target when exported.",
    names.BACKUP_EXPECTED_INTERVAL: "How often this target is meant to be backed up.",
    names.DRILL_LAST_RUN: "End of the last restore drill of this target, successful or not (Unix time).",
    names.DRILL_LAST_STATUS: "1 if the last restore drill of this target was verified, 0 if it failed.",
    names.DRILL_LAST_SUCCESS: "End of the last verified restore drill of this target (Unix time).",
    names.DRILL_DURATION: "Duration of the last verified restore drill of this target.",
    names.SYSTEM_CPU: "CPU usage (0-1) over the sampling interval.",
    names.SYSTEM_LOAD1: "1-minute load average.",
    names.SYSTEM_MEMORY_USED: "Memory in use (total - available).",
    names.SYSTEM_MEMORY_TOTAL: "Total physical memory.",
    names.SYSTEM_DISK_USED: "Bytes used on the filesystem.",
    names.SYSTEM_DISK_TOTAL: "Size of the filesystem.",
    names.SYSTEM_NET_RECEIVED: "Bytes received on the interface since boot.",
    names.SYSTEM_NET_SENT: "Bytes sent on the interface since boot.",
    names.DATABASE_UP: "1 if the database answered, 0 if not.",
    names.PG_CONNECTIONS: "Connections to the database by state.",
    names.PG_DATABASE_SIZE: "Size of the database.",
    names.PG_LONGEST_TX: "Age of the oldest open transaction in the database (0 when none).",
    names.PG_REPLICATION_LAG: "Replay lag of a replica.",
    names.REDIS_MEMORY: "Memory used by Redis (INFO used_memory).",
    names.REDIS_CLIENTS: "Connected clients (INFO connected_clients).",
    names.REDIS_COMMANDS: "Commands processed since the server started (INFO total_commands_processed).",
    names.REDIS_LAST_SAVE: "Time of the last successful RDB save (Unix time).",
    names.REDIS_KEYS: "Keys in a Redis database.",
    names.CHROMA_COLLECTIONS: "Collections in the Chroma store.",
    names.CHROMA_RECORDS: "Records in a Chroma collection.",
    names.APP_UP: "1 if the endpoint answered 2xx, 0 if not.",
    names.APP_RESPONSE: "Time the endpoint took to answer (or to fail).",
    names.EXPORT_LAST_SUCCESS: "End of the last successful metrics export (Unix time).",
    names.EXPORT_DURATION: "Duration of the last metrics export.",
    names.COLLECTOR_UP: "1 if the collector ran, 0 if it failed (its metrics are missing).",
}


@dataclass(frozen=True)
class Sample:
    """One value of a metric. ``labels`` are short, non-secret names (docs/metrics.md)."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    kind: Kind = "gauge"
    help: str = ""

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")
        if self.kind not in ("gauge", "counter"):
            raise ValueError(f"{self.name}: kind must be 'gauge' or 'counter', not {self.kind!r}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must be named with a _total suffix")
        if self.kind == "gauge" and self.name.endswith("_total"):
            raise ValueError(f"gauge {self.name!r} must not end in _total (counters only)")
        for key, val in self.labels.items():
            if not _LABEL_NAME.match(key) or key.startswith("__"):
                raise ValueError(f"{self.name}: invalid label name {key!r}")
            if not isinstance(val, str):
                raise ValueError(f"{self.name}: label {key} must be a string, not {val!r}")
            check_label_value(key, val)

    @property
    def label_key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.labels.items()))


def gauge(name: str, value: float, labels: Mapping[str, str] | None = None) -> Sample:
    return Sample(name, float(value), dict(labels or {}), "gauge")


def counter(name: str, value: float, labels: Mapping[str, str] | None = None) -> Sample:
    return Sample(name, float(value), dict(labels or {}), "counter")


def check_label_value(key: str, value: str) -> None:
    """Reject label values that would leak credentials (a URL with user:password@)."""
    if _URL_WITH_USERINFO.search(value):
        raise ValueError(
            f"label {key} looks like a URL with credentials: label values must be short, "
            "non-secret names"
        )


@dataclass
class MetricGroup:
    """Samples pushed together to one Pushgateway group (``job`` + ``grouping_key``)."""

    job: str
    grouping_key: dict[str, str]
    samples: list[Sample] = field(default_factory=list)

    def describe(self) -> str:
        key = ",".join(f"{k}={v}" for k, v in sorted(self.grouping_key.items()))
        return f"{self.job}{{{key}}}"


class _Families(Collector):
    """A fixed set of metric families (prometheus_client's custom collector protocol)."""

    def __init__(self, families: list[GaugeMetricFamily | CounterMetricFamily]) -> None:
        self._families = families

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield from self._families


def families(samples: Iterable[Sample]) -> list[GaugeMetricFamily | CounterMetricFamily]:
    """One metric family per name, in first-seen order. Rejects a name used as two
    kinds, a label set given twice, and values that are not finite numbers."""
    by_name: dict[str, list[Sample]] = {}
    for s in samples:
        by_name.setdefault(s.name, []).append(s)
    out: list[GaugeMetricFamily | CounterMetricFamily] = []
    for name, group in by_name.items():
        kinds = {s.kind for s in group}
        if len(kinds) > 1:
            raise ValueError(f"metric {name} is given as both {' and '.join(sorted(kinds))}")
        kind = group[0].kind
        doc = next((s.help for s in group if s.help), "") or HELP.get(name, name)
        label_names = sorted({k for s in group for k in s.labels})
        fam: GaugeMetricFamily | CounterMetricFamily
        if kind == "counter":
            fam = CounterMetricFamily(name, doc, labels=label_names)
        else:
            fam = GaugeMetricFamily(name, doc, labels=label_names)
        seen: set[tuple[tuple[str, str], ...]] = set()
        for s in group:
            if not math.isfinite(s.value):
                raise ValueError(f"metric {name}{dict(s.labels)} has no finite value ({s.value})")
            if s.label_key in seen:
                raise ValueError(f"metric {name}{dict(s.labels)} is given twice")
            seen.add(s.label_key)
            fam.add_metric([s.labels.get(k, "") for k in label_names], s.value)
        out.append(fam)
    return out


def to_registry(samples: Iterable[Sample]) -> CollectorRegistry:
    """A registry holding exactly these samples (and nothing of the process itself)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families(samples)))
    return registry


def exposition(samples: Iterable[Sample]) -> str:
    """The samples in Prometheus' text format (what a push sends)."""
    from prometheus_client import generate_latest

    return generate_latest(to_registry(samples)).decode()
