"""The application's HTTP endpoints: up (answered 2xx) and response time.

An endpoint that fails (refused, timed out, 5xx) is an observation, not a collector
failure: it is reported as ``scholar_ops_app_up 0`` with the time it took to fail.
The ``endpoint`` label is the endpoint's configured short name, never its URL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import Sample, gauge


def probe(
    name: str, url: str, timeout: float = 10.0, client: httpx.Client | None = None
) -> list[Sample]:
    """GET ``url`` once: ``scholar_ops_app_up`` and ``scholar_ops_app_response_seconds``."""
    labels = {"endpoint": name}
    started = time.perf_counter()
    try:
        if client is None:
            with httpx.Client(timeout=timeout, follow_redirects=True) as own:
                status = own.get(url).status_code
        else:
            status = client.get(url, timeout=timeout).status_code
        up = 200 <= status < 300
    except httpx.HTTPError:
        up = False
    elapsed = time.perf_counter() - started
    return [gauge(names.APP_UP, 1 if up else 0, labels), gauge(names.APP_RESPONSE, elapsed, labels)]


def collect_app(endpoints: Mapping[str, str], timeout: float = 10.0) -> list[Sample]:
    """Every endpoint (name -> URL), one after the other."""
    samples: list[Sample] = []
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for name, url in endpoints.items():
            samples += probe(name, url, timeout, client)
    return samples
