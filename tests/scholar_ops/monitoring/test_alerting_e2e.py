"""Alerting end to end, with real processes on loopback: the backup flows push to a
Pushgateway, Prometheus (1 s scrape and evaluation) evaluates docker/prometheus/rules,
AlertManager (1 s group_wait) routes with docker/alertmanager's routes and templates to
a webhook receiver (standing in for the webhook and Slack) and an SMTP sink.

- A backup fails: the alert reaches the webhook and the mailbox, naming the component,
  the target and the reason, within 30 s; the next successful backup resolves it.
- The Prefect-automation path (automations.yaml, applied with the AlertManager URL)
  delivers the failed flow run to AlertManager as well.
- An alert storm (1,000 failing targets) makes a small, bounded number of notifications.

Set SCHOLAR_OPS_ALERT_LATENCY_OUT to a file to record the measured latencies
(bench/alert_latency.py does).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect import tags
from prefect.blocks.system import Secret
from pydantic import SecretStr

from blocks.files import FilesTarget
from blocks.monitoring import MonitoringSettings
from blocks.repository import BackupRepository
from flows.backup.group import BackupFailed
from flows.backup.incremental_backup import incremental_backup
from scholar_ops.monitoring import names
from scholar_ops.monitoring.push import push_add
from scholar_ops.monitoring.samples import gauge
from scholar_ops.testbed.alerting import (
    default_rule_files,
    render_alertmanager_config,
    render_prometheus_config,
)
from tests.fixtures.sinks import SmtpSink, WebhookReceiver, message_text

pytestmark = [pytest.mark.e2e, pytest.mark.services]

LATENCY_BOUND_S = 30.0
ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Stack:
    pushgateway: Any
    prometheus: Any
    alertmanager: Any
    webhook: WebhookReceiver
    smtp: SmtpSink


@pytest.fixture(scope="module")
def stack(
    pushgateway: Any,
    prometheus_factory: Any,
    alertmanager_factory: Any,
    webhook_receiver_module: WebhookReceiver,
    smtp_sink_module: SmtpSink,
) -> Iterator[Stack]:
    pushgateway.wipe()  # groups other tests left behind would alert too
    am = alertmanager_factory(
        render_alertmanager_config(
            smtp_host_port=smtp_sink_module.address,
            webhook_url=webhook_receiver_module.url("/alertmanager"),
            slack_url=webhook_receiver_module.url("/slack"),
            group_wait="1s",
            group_interval="2s",
            repeat_interval="1h",
        )
    )
    prom = prometheus_factory(
        render_prometheus_config(
            pushgateway=pushgateway.url,
            alertmanager=am.address,
            health=None,
            scrape_interval="1s",
            evaluation_interval="1s",
            rule_files=default_rule_files(),
        ),
        extra_args=["--rules.alert.resend-delay=1s"],
    )
    yield Stack(pushgateway, prom, am, webhook_receiver_module, smtp_sink_module)
    prom.stop()
    am.stop()
    pushgateway.wipe()


def _alerts(payload: dict[str, Any], alertname: str) -> list[dict[str, Any]]:
    return [a for a in payload.get("alerts", []) if a["labels"].get("alertname") == alertname]


def _record(name: str, seconds: float) -> None:
    out = os.environ.get("SCHOLAR_OPS_ALERT_LATENCY_OUT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"measure": name, "seconds": round(seconds, 2)}) + "\n")


def test_failed_backup_alerts_by_webhook_and_email_then_resolves(
    stack: Stack, prefect_harness: None, tmp_path: Path
) -> None:
    from scholar_ops.automations import apply_automations

    sfx = uuid.uuid4().hex[:8]
    key = f"key-{sfx}"
    Secret(value=SecretStr(f"e2e-master-key-{sfx}")).save(key)
    repo = f"repo-{sfx}"
    BackupRepository(local_path=str(tmp_path / "repo"), master_key_secret=key).save(repo)
    MonitoringSettings(pushgateway_url=stack.pushgateway.url).save(f"monitoring-{sfx}")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "paper.pdf").write_bytes(b"%PDF" + os.urandom(10_000))
    target = f"uploads-{sfx}"
    FilesTarget(path=str(uploads), label=target).save(f"files-{sfx}")
    # The Prefect path: automations.yaml, its webhook pointing at this AlertManager.
    applied = dict(
        apply_automations(
            ROOT / "automations.yaml", alertmanager_url=stack.alertmanager.url, skip_missing=True
        )
    )
    assert applied["scholar-ops critical flow run failed"] in ("created", "updated", "unchanged")

    def backup() -> list[Any]:
        # The deployments carry these tags; the automation matches "critical".
        with tags("scholar-ops", "backup", "critical"):
            return incremental_backup(
                file_targets=[f"files-{sfx}"], repository=repo, monitoring=f"monitoring-{sfx}"
            )

    backup()  # a success first: the target is known and healthy
    shutil.rmtree(uploads)
    with pytest.raises(BackupFailed, match=f"files/files-{sfx}"):
        backup()
    failed_at = time.monotonic()

    def firing(r: Any) -> bool:
        body = r.json()
        return body.get("status") == "firing" and any(
            a["labels"].get("target") == target for a in _alerts(body, "ScholarOpsBackupFailed")
        )

    hook = stack.webhook.wait_for(firing, timeout=60, path="/alertmanager")
    alert = next(
        a for a in _alerts(hook.json(), "ScholarOpsBackupFailed") if a["labels"]["target"] == target
    )
    assert alert["labels"]["component"] == "files"
    assert alert["labels"]["reason"] == "source_failed"
    assert alert["labels"]["severity"] == "critical"
    assert f"files/{target}" in alert["annotations"]["description"]
    webhook_s = hook.at - failed_at

    def mail_about_failure(m: Any) -> bool:
        text = message_text(m)
        return "ScholarOpsBackupFailed" in text and target in text and "FIRING" in text

    at, mail = stack.smtp.wait_for(mail_about_failure, timeout=60)
    text = message_text(mail)
    assert f"files/{target}" in text and "source_failed" in text
    email_s = at - failed_at

    # Slack (critical goes to email, Slack and the webhook).
    stack.webhook.wait_for(lambda r: target in r.body.decode(), timeout=30, path="/slack")

    # The Prefect automation posted the failed flow run to AlertManager, which routed it.
    def prefect_alert(r: Any) -> bool:
        return any(
            a["labels"].get("state") == "Failed"
            for a in _alerts(r.json(), "ScholarOpsPrefectFlowRunFailed")
        )

    via_prefect = stack.webhook.wait_for(prefect_alert, timeout=60, path="/alertmanager")
    prefect_s = via_prefect.at - failed_at
    print(
        f"failure -> webhook {webhook_s:.1f} s, email {email_s:.1f} s, "
        f"Prefect automation -> AlertManager -> webhook {prefect_s:.1f} s"
    )
    _record("backup failed -> webhook", webhook_s)
    _record("backup failed -> email", email_s)
    _record("flow run failed -> automation -> webhook", prefect_s)
    assert webhook_s <= LATENCY_BOUND_S and email_s <= LATENCY_BOUND_S
    assert prefect_s <= LATENCY_BOUND_S

    # The next successful backup resolves the alert.
    uploads.mkdir()
    (uploads / "paper.pdf").write_bytes(b"%PDF again")
    backup()
    recovered_at = time.monotonic()

    def resolved(r: Any) -> bool:
        return any(
            a["labels"].get("target") == target and a["status"] == "resolved"
            for a in _alerts(r.json(), "ScholarOpsBackupFailed")
        )

    done = stack.webhook.wait_for(resolved, timeout=60, path="/alertmanager")
    _record("backup succeeded -> resolved", done.at - recovered_at)
    stack.smtp.wait_for(lambda m: "RESOLVED" in message_text(m) and target in message_text(m), 30)
    # Nothing secret went out: no master key, no path of the backed-up tree.
    everything = "".join(r.body.decode() for r in stack.webhook.received()) + "".join(
        message_text(m) for _, m in stack.smtp.received()
    )
    assert f"e2e-master-key-{sfx}" not in everything


def test_an_alert_storm_makes_a_bounded_number_of_notifications(stack: Stack) -> None:
    stack.webhook.clear()
    stack.smtp.clear()
    component, n = "redis", 1000
    run = f"storm{uuid.uuid4().hex[:6]}"

    def push(i: int) -> None:
        labels = {"component": component, "target": f"{run}-{i:04d}"}
        push_add(
            stack.pushgateway.url,
            names.JOB_BACKUP,
            labels,
            [
                gauge(names.BACKUP_LAST_STATUS, 0, {**labels, "reason": "source_unreachable"}),
                gauge(names.BACKUP_LAST_RUN, time.time(), labels),
            ],
        )

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(push, range(n)))
    push_s = time.monotonic() - started

    def covered() -> set[str]:
        targets: set[str] = set()
        for r in stack.webhook.received("/alertmanager"):
            for a in _alerts(r.json(), "ScholarOpsBackupFailed"):
                if a["labels"]["target"].startswith(run) and a["status"] == "firing":
                    targets.add(a["labels"]["target"])
        return targets

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(covered()) < n:
        time.sleep(0.5)
    assert len(covered()) == n, f"{len(covered())} of {n} failing targets notified"
    time.sleep(6)  # three more group intervals: nothing new may arrive
    storm_posts = [
        r
        for r in stack.webhook.received("/alertmanager")
        if any(
            a["labels"]["target"].startswith(run)
            for a in _alerts(r.json(), "ScholarOpsBackupFailed")
        )
    ]
    mails = [m for _, m in stack.smtp.received() if run in message_text(m)]
    slack = [r for r in stack.webhook.received("/slack") if run in r.body.decode()]
    print(
        f"{n} failing targets (pushed in {push_s:.1f} s) -> {len(storm_posts)} webhook, "
        f"{len(mails)} email, {len(slack)} Slack notifications"
    )
    # One group (alertname + component): one notification per receiver, and an update per
    # group interval (2 s here, 5 min in production) while the alerts were still arriving
    # (the 1,000 pushes take a few seconds; Prometheus scrapes and sends every second).
    # The bound depends on how long the storm took to build up, never on its size.
    bound = min(10, 3 + int(push_s / 2.0))
    counts = {"webhook": len(storm_posts), "email": len(mails), "slack": len(slack)}
    for what, count in counts.items():
        assert 1 <= count <= bound, f"{count} {what} notifications for {n} failing targets"
    _record("alert storm: webhook notifications for 1000 targets", float(len(storm_posts)))
