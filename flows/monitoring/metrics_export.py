"""The metrics export: collect the host, databases, application and repository, and push
every group to the Pushgateway (push-add), then the export's own status.

Scheduled every minute. A collector that fails is reported as
``scholar_ops_collector_up{collector=...} 0`` (and, for a database or an endpoint, as
down) without failing the run; a Pushgateway that cannot be reached fails it, and the
``ScholarOpsMetricsExportStale`` alert follows.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger

from blocks.names import DEFAULT_MONITORING_BLOCK
from tasks.metrics import collect_metrics, push_export_status, push_metrics


@flow(name="metrics-export", log_prints=True)
def metrics_export(monitoring: str = DEFAULT_MONITORING_BLOCK) -> dict[str, Any]:
    """Collect and push every metrics group. ``monitoring``: the MonitoringSettings block
    (without it, SCHOLAR_OPS_PUSHGATEWAY_URL and the defaults)."""
    started = time.time()
    collected = collect_metrics(monitoring)
    pushed = push_metrics(monitoring, collected.groups)
    push_export_status(monitoring, collected.outcomes, started)
    failed = collected.errors
    get_run_logger().info(
        "exported %d group(s); %d of %d collectors ok%s",
        pushed,
        len(collected.outcomes) - len(failed),
        len(collected.outcomes),
        f" (failed: {', '.join(sorted(failed))})" if failed else "",
    )
    return {
        "groups": [g.describe() for g in collected.groups],
        "collectors": {o.name: o.ok for o in collected.outcomes},
        "errors": failed,
    }
