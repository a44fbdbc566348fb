"""Collectors: each takes plain values (connection settings, URLs, a repository) and a
timeout and returns samples; ``run_collectors`` runs them concurrently, each within
its own timeout, and reports every one as ``scholar_ops_collector_up``."""

from scholar_ops.monitoring.collectors.runner import (
    Collected,
    Collector,
    CollectorOutcome,
    describe_error,
    run_collectors,
)

__all__ = ["Collected", "Collector", "CollectorOutcome", "describe_error", "run_collectors"]
