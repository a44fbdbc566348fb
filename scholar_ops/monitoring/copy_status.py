"""A second copy's outcome as one Pushgateway group (job ``scholar-ops-copy``, key
``destination``: the destination repository block's name, bounded and free of secrets).

A successful copy pushes ``last_run``, ``last_status 1``, ``last_success`` and the bytes it
transferred; a failed one only ``last_run`` and ``last_status 0``, so that push-add keeps
the group's ``last_success`` (how long ago the second copy was last complete).
"""

from __future__ import annotations

import time

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import MetricGroup, gauge


def copy_status_group(
    destination: str, ok: bool, bytes_transferred: int = 0, *, now: float | None = None
) -> MetricGroup:
    now = time.time() if now is None else now
    labels = {"destination": destination}
    samples = [gauge(names.COPY_LAST_RUN, now, labels)]
    if ok:
        samples += [
            gauge(names.COPY_LAST_STATUS, 1, labels),
            gauge(names.COPY_LAST_SUCCESS, now, labels),
            gauge(names.COPY_BYTES, float(bytes_transferred), labels),
        ]
    else:
        samples.append(gauge(names.COPY_LAST_STATUS, 0, labels))
    return MetricGroup(names.JOB_COPY, labels, samples)
