"""Run collectors concurrently, each within its own timeout; a failure stops none of the others.

A collector is a ``Collector``: a short non-secret ``name`` (the ``collector`` label),
the ``job`` and ``grouping_key`` of the Pushgateway group its samples go to, a
function returning samples, and ``on_failure``: samples pushed instead when it fails
(``scholar_ops_database_up 0``, say). Every collector is reported as
``scholar_ops_collector_up{collector=...}`` 1 or 0.

Collectors run in daemon threads: one that hangs past its timeout is abandoned (it is
reported as failed and cannot block the process from exiting).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import MetricGroup, Sample, gauge

DEFAULT_TIMEOUT = 10.0


@dataclass
class Collector:
    name: str
    job: str
    grouping_key: dict[str, str]
    collect: Callable[[], list[Sample]]
    on_failure: list[Sample] = field(default_factory=list)
    timeout: float | None = None  # None: run_collectors' timeout
    #: Labels that add to the grouping key: the samples go to one group per value
    #: combination (the backups collector: one group per component and target).
    split_by: tuple[str, ...] = ()


@dataclass
class CollectorOutcome:
    name: str
    ok: bool
    seconds: float
    error: str | None = None


@dataclass
class Collected:
    groups: list[MetricGroup]
    outcomes: list[CollectorOutcome]

    @property
    def errors(self) -> dict[str, str]:
        return {o.name: o.error or "failed" for o in self.outcomes if not o.ok}

    def collector_up(self) -> list[Sample]:
        """``scholar_ops_collector_up{collector=...}``, one per collector."""
        return [
            gauge(names.COLLECTOR_UP, 1 if o.ok else 0, {"collector": o.name})
            for o in self.outcomes
        ]


class _Slot:
    def __init__(self) -> None:
        self.samples: list[Sample] | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.done = threading.Event()


def _run(collector: Collector, slot: _Slot) -> None:
    t0 = time.monotonic()
    try:
        samples = collector.collect()
        if not isinstance(samples, list) or not all(isinstance(s, Sample) for s in samples):
            raise TypeError(
                f"collector {collector.name} returned {type(samples).__name__}, not samples"
            )
        slot.samples = samples
    except BaseException as e:
        slot.error = e
    finally:
        slot.seconds = time.monotonic() - t0
        slot.done.set()


def describe_error(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def run_collectors(collectors: Sequence[Collector], timeout: float = DEFAULT_TIMEOUT) -> Collected:
    """Run every collector in its own thread; wait for each up to its timeout.

    Returns one ``MetricGroup`` per distinct (job, grouping key), in first-seen order,
    holding the samples of the collectors that succeeded and the ``on_failure`` samples
    of those that failed, and one outcome per collector.
    """
    seen: set[str] = set()
    for c in collectors:
        if c.name in seen:
            raise ValueError(f"two collectors are named {c.name!r}")
        seen.add(c.name)
    started = time.monotonic()
    slots: list[tuple[Collector, _Slot, threading.Thread]] = []
    for c in collectors:
        slot = _Slot()
        thread = threading.Thread(
            target=_run, args=(c, slot), name=f"collector-{c.name}", daemon=True
        )
        thread.start()
        slots.append((c, slot, thread))
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], MetricGroup] = {}
    outcomes: list[CollectorOutcome] = []
    for c, slot, _thread in slots:
        limit = c.timeout if c.timeout is not None else timeout
        remaining = max(0.0, started + limit - time.monotonic())
        finished = slot.done.wait(remaining)
        seconds = slot.seconds if finished else time.monotonic() - started
        error: str | None = None
        if not finished:
            error = f"timed out after {limit:g} s"
        elif slot.error is not None:
            error = describe_error(slot.error)
        else:
            assert slot.samples is not None
            missing = [s.name for s in slot.samples if any(not s.labels.get(k) for k in c.split_by)]
            if missing:
                error = f"{missing[0]} lacks a label of {list(c.split_by)}"
        outcomes.append(CollectorOutcome(c.name, error is None, seconds, error))
        produced = c.on_failure if error is not None else (slot.samples or [])
        for s in produced:
            grouping = dict(c.grouping_key)
            grouping.update({k: s.labels[k] for k in c.split_by if s.labels.get(k)})
            key = (c.job, tuple(sorted(grouping.items())))
            groups.setdefault(key, MetricGroup(c.job, grouping)).samples.append(s)
    return Collected(list(groups.values()), outcomes)
