"""automations.yaml and scholar_ops.automations: the file is checked without a server;
applying it runs against the Prefect test harness: created, then unchanged, then updated in
place (same id); automations outside the file are never touched.

Delivery runs on the harness too. Its server is an ephemeral one, and Prefect 3 runs its
event services there as well (``ReactiveTriggers``, ``Actions``, ``EventPersister`` are
``RunInEphemeralServers``; the proactive evaluation is a perpetual service with
``run_in_ephemeral=True``; PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED, which also governs
``Actions``, and ..._EVENT_PERSISTER_ENABLED are true by default), so no separate
``prefect server start`` is needed: a failed run of
a flow tagged ``critical`` makes the server POST the alert to an HTTP receiver standing in
for AlertManager at /api/v2/alerts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from scholar_ops import automations
from scholar_ops.automations import (
    DEFAULT_WEBHOOK_BLOCK,
    AutomationFileError,
    MissingReferenceError,
    apply_automations,
    load_automations,
)
from scholar_ops.cli import main as cli_main

REPO_FILE = Path(__file__).resolve().parents[2] / "automations.yaml"
FAILED = "scholar-ops critical flow run failed"
ZOMBIE = "scholar-ops crash unresponsive flow runs"
NO_BACKUP = "scholar-ops no completed backup"
METRICS = "scholar-ops metrics export after backup"
COPY = "scholar-ops copy after backup"
NAMES = (FAILED, ZOMBIE, NO_BACKUP, METRICS, COPY)
METRICS_DEPLOYMENT = "metrics-export/metrics-export"
COPY_DEPLOYMENT = "copy-snapshots/copy-snapshots"
UNRELATED = "scholar-ops-test unrelated automation"


# --------------------------------------------------------------------------- helpers


class Receiver:
    """An HTTP server on a free loopback port recording every request (AlertManager's stand-in)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.requests.append(
                        {
                            "at": time.monotonic(),
                            "method": self.command,
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                    receiver._cond.notify_all()
                self.send_response(200)  # AlertManager answers 200 with an empty body
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.requests:
                    if match(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching request after {timeout} s; received: "
                        + repr([(r["path"], r["body"][:300]) for r in self.requests])
                    )
                self._cond.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alertname_is(name: str) -> Callable[[dict[str, Any]], bool]:
    def match(request: dict[str, Any]) -> bool:
        try:
            body = json.loads(request["body"])
            return any(a["labels"]["alertname"] == name for a in body)
        except (ValueError, KeyError, TypeError):
            return False

    return match


def write_variant(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the repository's file with ``change`` applied to its data."""
    data = yaml.safe_load(REPO_FILE.read_text())
    change(data)
    path = tmp_path / "automations.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def entry(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in data["automations"] if a["name"] == name)
    return found


def client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def server_automations() -> dict[str, Any]:
    with client() as c:
        return {a.name: a for a in c.read_automations()}


def load_webhook() -> Any:
    from prefect.blocks.webhook import Webhook

    return Webhook.load(DEFAULT_WEBHOOK_BLOCK, _sync=True)  # type: ignore[call-arg]


def as_dict(spec: Any) -> Any:
    """A ResourceSpecification (a pydantic root model) as the plain mapping it holds."""
    return spec.model_dump() if hasattr(spec, "model_dump") else spec


def delete_managed() -> None:
    from prefect.exceptions import ObjectNotFound

    with client() as c:
        for a in c.read_automations():
            if a.name in (*NAMES, UNRELATED):
                c.delete_automation(a.id)
        try:
            doc = c.read_block_document_by_name(DEFAULT_WEBHOOK_BLOCK, "webhook")
        except ObjectNotFound:
            return
        c.delete_block_document(doc.id)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def metrics_deployment(prefect_harness: None) -> Iterator[UUID]:
    """The metrics-export deployment the third automation runs (created here if absent: its
    flow is someone else's; a deployment without a work pool is enough to be run by id).
    The runs the automations created are deleted afterwards (nothing executes them here)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.exceptions import ObjectNotFound

    with client() as c:
        try:
            deployment_id = c.read_deployment_by_name(METRICS_DEPLOYMENT).id
            created = False
        except ObjectNotFound:
            flow_id = c.create_flow_from_name("metrics-export")
            deployment_id = c.create_deployment(flow_id=flow_id, name="metrics-export")
            created = True
    yield deployment_id
    with client() as c:
        runs = c.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
        for run in runs:
            if created or (run.created_by is not None and run.created_by.type == "AUTOMATION"):
                c.delete_flow_run(run.id)
        if created:
            c.delete_deployment(deployment_id)


@pytest.fixture(scope="module")
def copy_deployment(prefect_harness: None) -> Iterator[UUID]:
    """The copy-snapshots deployment the last automation runs (created here if absent)."""
    from prefect.exceptions import ObjectNotFound

    with client() as c:
        try:
            deployment_id = c.read_deployment_by_name(COPY_DEPLOYMENT).id
            created = False
        except ObjectNotFound:
            flow_id = c.create_flow_from_name("copy-snapshots")
            deployment_id = c.create_deployment(flow_id=flow_id, name="copy-snapshots")
            created = True
    yield deployment_id
    if created:
        with client() as c:
            c.delete_deployment(deployment_id)


@pytest.fixture
def clean(prefect_harness: None, metrics_deployment: UUID, copy_deployment: UUID) -> Iterator[UUID]:
    """No automation of the file (nor the webhook block) before and after the test."""
    delete_managed()
    yield metrics_deployment
    delete_managed()


# --------------------------------------------------------------------------- the file


def test_repository_file_is_valid() -> None:
    specs = {s.name: s for s in load_automations(REPO_FILE)}
    assert list(specs) == list(NAMES)
    assert specs[FAILED].trigger["posture"] == "Reactive"
    assert specs[NO_BACKUP].trigger["posture"] == "Proactive"
    assert specs[NO_BACKUP].trigger["within"] == 7200
    for name in (FAILED, NO_BACKUP):
        assert specs[name].webhook_blocks() == {DEFAULT_WEBHOOK_BLOCK}
        assert specs[name].deployments() == set()
    assert specs[METRICS].deployments() == {METRICS_DEPLOYMENT}
    assert specs[METRICS].webhook_blocks() == set()
    # the second copy after each completed backup
    assert specs[COPY].deployments() == {COPY_DEPLOYMENT}
    assert specs[COPY].trigger["expect"] == ["prefect.flow-run.Completed"]
    # a run silent for the window is marked Crashed (then the failure alert fires on it)
    zombie = specs[ZOMBIE].trigger
    assert zombie["posture"] == "Proactive"
    assert zombie["after"] == ["prefect.flow-run.heartbeat"]
    assert set(zombie["expect"]) == {
        "prefect.flow-run.heartbeat",
        *(f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "TimedOut", "Cancelled")),
        "prefect.flow-run.Crashed",
    }
    assert zombie["for_each"] == ["prefect.resource.id"]
    # 600 s spans three heartbeats at Prefect's default frequency (180 s): a busy run is
    # never taken for a dead one
    assert zombie["within"] >= 3 * 180
    (action,) = specs[ZOMBIE].actions
    assert action.type == "change-flow-run-state" and action.fields["state"] == "CRASHED"
    assert specs[ZOMBIE].webhook_blocks() == set() and specs[ZOMBIE].deployments() == set()
    assert "prefect.flow-run.Crashed" in specs[FAILED].trigger["expect"]
    assert all(s.enabled is None for s in specs.values())


def _set_trigger(name: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        entry(data, name)["trigger"].update(values)

    return change


def _set_action(name: str, action: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        entry(data, name)["actions"] = [action]

    return change


def _payload(text: str) -> dict[str, Any]:
    return {"type": "call-webhook", "payload": text}


GOOD_ALERT = (
    '[{"labels": {"alertname": "A", "severity": "critical"%s}, '
    '"annotations": {"summary": "s", "description": "d"}}]'
)


def _drop_key(name: str, key: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        del entry(data, name)[key]

    return change


def _add_key(name: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        entry(data, name)[key] = value

    return change


def _duplicate(data: dict[str, Any]) -> None:
    data["automations"].append(dict(entry(data, METRICS)))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            _set_trigger(NO_BACKUP, withn=60),
            [NO_BACKUP, "trigger", "'withn'", "did you mean 'within'"],
            id="misspelled-trigger-field",
        ),
        pytest.param(
            _set_trigger(NO_BACKUP, within=5),
            [NO_BACKUP, "trigger", "10 seconds"],
            id="proactive-window-too-short",
        ),
        pytest.param(
            _set_trigger(FAILED, threshold="often"),
            [FAILED, "trigger.threshold"],
            id="bad-threshold",
        ),
        pytest.param(
            _add_key(FAILED, "descripton", "x"),
            [FAILED, "'descripton'", "did you mean 'description'"],
            id="misspelled-automation-field",
        ),
        pytest.param(
            _drop_key(FAILED, "trigger"), [FAILED, "trigger: is required"], id="no-trigger"
        ),
        pytest.param(_duplicate, [METRICS, "listed twice"], id="duplicate-name"),
        pytest.param(
            _set_action(
                FAILED, _payload(GOOD_ALERT % ', "run": {{ flow_run.id | string | tojson }}')
            ),
            [FAILED, "actions[0].payload", "labels ['run'] change", "annotations"],
            id="unbounded-label",
        ),
        pytest.param(
            _set_action(FAILED, _payload('[{"labels": {{ flow.name }}}]')),
            [FAILED, "actions[0].payload", "does not render to JSON"],
            id="payload-not-json",
        ),
        pytest.param(
            _set_action(
                FAILED,
                _payload(
                    '[{"labels": {"alertname": "A"}, "annotations": {"summary": "s", "description": "d"}}]'
                ),
            ),
            [FAILED, "severity"],
            id="no-severity",
        ),
        pytest.param(
            _set_action(FAILED, _payload(GOOD_ALERT % ', "x": {{ flow.name ')),
            [FAILED, "actions[0].payload", "not a valid template"],
            id="template-syntax",
        ),
        pytest.param(
            _set_action(METRICS, {"type": "run-deployment"}),
            [METRICS, "actions[0].deployment", "<flow name>/<deployment name>"],
            id="run-deployment-without-deployment",
        ),
        pytest.param(
            _set_action(
                METRICS,
                {"type": "run-deployment", "deployment_id": "8c6e4dbc-3b0e-4f5c-9a55-0a3b8a0e3c11"},
            ),
            [METRICS, "deployment_id", "ids differ between servers"],
            id="raw-deployment-id",
        ),
        pytest.param(
            _set_action(METRICS, {"type": "run-deploymnt", "deployment": METRICS_DEPLOYMENT}),
            [METRICS, "unknown action type 'run-deploymnt'"],
            id="unknown-action-type",
        ),
    ],
)
def test_file_errors_name_the_automation_and_the_field(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    path = write_variant(tmp_path, change)
    with pytest.raises(AutomationFileError) as info:
        load_automations(path)
    message = str(info.value)
    for part in expected:
        assert part in message, message


def test_payload_to_another_webhook_need_not_be_an_alert(tmp_path: Path) -> None:
    path = write_variant(
        tmp_path,
        _set_action(
            FAILED,
            {
                "type": "call-webhook",
                "block": "chat",
                "payload": '{"text": {{ flow.name | tojson }}}',
            },
        ),
    )
    specs = {s.name: s for s in load_automations(path)}
    assert specs[FAILED].webhook_blocks() == {"chat"}


def test_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["automations", "check", "--file", str(REPO_FILE)]) == 0
    assert f"{len(NAMES)} automations OK" in capsys.readouterr().out


def test_alertmanager_url() -> None:
    url = automations.alertmanager_alerts_url
    assert url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert url("http://am:9093/") == "http://am:9093/api/v2/alerts"
    assert url("https://x/am/api/v2/alerts") == "https://x/am/api/v2/alerts"
    assert automations.redact_url("http://u:pw@am:9093/a") == "http://am:9093/a"
    with pytest.raises(automations.AutomationsError):
        url("am:9093")


# --------------------------------------------------------------------------- applying


def test_apply_is_idempotent_and_touches_nothing_else(clean: UUID, receiver: Receiver) -> None:
    from prefect.automations import Automation, DoNothing, EventTrigger

    unrelated: Any = Automation(
        name=UNRELATED, trigger=EventTrigger(expect={"x.y"}), actions=[DoNothing()]
    ).create()

    first = apply_automations(REPO_FILE, alertmanager_url=receiver.url)
    assert first == [(n, "created") for n in NAMES]
    ids = {n: a.id for n, a in server_automations().items()}
    assert apply_automations(REPO_FILE, alertmanager_url=receiver.url) == [
        (n, "unchanged") for n in NAMES
    ]
    assert apply_automations(REPO_FILE) == [(n, "unchanged") for n in NAMES]

    # A new AlertManager URL updates the block in place: the automations stay unchanged.

    block_id = load_webhook()._block_document_id
    assert apply_automations(REPO_FILE, alertmanager_url="http://127.0.0.1:9/") == [
        (n, "unchanged") for n in NAMES
    ]
    block = load_webhook()
    assert block._block_document_id == block_id
    assert block.url.get_secret_value() == "http://127.0.0.1:9/api/v2/alerts"
    assert block.method == "POST"
    assert block.headers.get_secret_value() == {"Content-Type": "application/json"}

    after = server_automations()
    assert {n: after[n].id for n in NAMES} == {n: ids[n] for n in NAMES}
    assert after[UNRELATED].id == unrelated.id
    assert after[UNRELATED].trigger == unrelated.trigger


def test_a_changed_file_updates_in_place(clean: UUID, receiver: Receiver, tmp_path: Path) -> None:
    apply_automations(REPO_FILE, alertmanager_url=receiver.url)
    before = server_automations()

    def longer_window(data: dict[str, Any]) -> None:
        entry(data, NO_BACKUP)["trigger"]["within"] = 3 * 3600
        entry(data, NO_BACKUP)["description"] = "three hours"

    path = write_variant(tmp_path, longer_window)
    assert apply_automations(path) == [
        (FAILED, "unchanged"),
        (ZOMBIE, "unchanged"),
        (NO_BACKUP, "updated"),
        (METRICS, "unchanged"),
        (COPY, "unchanged"),
    ]
    after = server_automations()
    assert after[NO_BACKUP].id == before[NO_BACKUP].id
    assert after[NO_BACKUP].trigger.within == timedelta(hours=3)
    assert after[NO_BACKUP].description == "three hours"
    assert apply_automations(path) == [(n, "unchanged") for n in NAMES]

    # A pause from the UI survives an apply when the file does not say `enabled`...
    with client() as c:
        c.pause_automation(after[FAILED].id)
    assert apply_automations(path)[0] == (FAILED, "unchanged")
    assert server_automations()[FAILED].enabled is False

    # ...and is overridden when it does.
    def enabled_too(data: dict[str, Any]) -> None:
        longer_window(data)
        entry(data, FAILED)["enabled"] = True

    path = write_variant(tmp_path, enabled_too)
    assert apply_automations(path)[0] == (FAILED, "updated")
    assert server_automations()[FAILED].enabled is True


def test_read_back_triggers_and_actions(clean: UUID, receiver: Receiver) -> None:
    from prefect.events.actions import CallWebhook, RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    apply_automations(REPO_FILE, alertmanager_url=receiver.url)
    block_id = load_webhook()._block_document_id
    payloads = {s.name: s.actions[0].fields.get("payload") for s in load_automations(REPO_FILE)}
    found = server_automations()

    failed = found[FAILED]
    assert isinstance(failed.trigger, EventTrigger)
    assert failed.enabled
    assert failed.trigger.posture == Posture.Reactive
    assert failed.trigger.expect == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
        "prefect.flow-run.TimedOut",
    }
    assert as_dict(failed.trigger.match_related) == {
        "prefect.resource.role": "tag",
        "prefect.resource.id": "prefect.tag.critical",
    }
    assert failed.trigger.for_each == {"prefect.resource.id"}
    assert failed.trigger.threshold == 1
    (action,) = failed.actions
    assert isinstance(action, CallWebhook)
    assert action.block_document_id == block_id
    assert action.payload == payloads[FAILED]

    no_backup = found[NO_BACKUP]
    assert isinstance(no_backup.trigger, EventTrigger)
    assert no_backup.trigger.posture == Posture.Proactive
    assert no_backup.trigger.expect == {"prefect.flow-run.Completed"}
    assert no_backup.trigger.within == timedelta(hours=2)
    assert as_dict(no_backup.trigger.match_related) == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": ["full-backup", "incremental-backup"],
    }
    assert no_backup.trigger.for_each == set()
    (action,) = no_backup.actions
    assert isinstance(action, CallWebhook)
    assert action.block_document_id == block_id
    assert "ScholarOpsNoCompletedBackup" in action.payload

    metrics = found[METRICS]
    assert isinstance(metrics.trigger, EventTrigger)
    assert metrics.trigger.expect == {
        "prefect.flow-run.Completed",
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
        "prefect.flow-run.TimedOut",
    }
    (action,) = metrics.actions
    assert isinstance(action, RunDeployment)
    assert action.source == "selected"
    assert action.deployment_id == clean
    assert action.parameters is None


def test_missing_references(clean: UUID, receiver: Receiver, tmp_path: Path) -> None:
    def other_deployment(data: dict[str, Any]) -> None:
        entry(data, METRICS)["actions"][0]["deployment"] = "no-such-flow/no-such-deployment"

    path = write_variant(tmp_path, other_deployment)
    with pytest.raises(MissingReferenceError) as info:
        apply_automations(path, alertmanager_url=receiver.url)
    message = str(info.value)
    assert METRICS in message
    assert "'no-such-flow/no-such-deployment'" in message
    assert "--skip-missing" in message
    assert server_automations().keys().isdisjoint(NAMES)  # checked before any write

    # No Webhook block and no AlertManager URL to create it.
    with pytest.raises(MissingReferenceError, match=f"Webhook block '{DEFAULT_WEBHOOK_BLOCK}'"):
        apply_automations(REPO_FILE)

    assert apply_automations(path, alertmanager_url=receiver.url, skip_missing=True) == [
        (FAILED, "created"),
        (ZOMBIE, "created"),
        (NO_BACKUP, "created"),
        (METRICS, "skipped"),
        (COPY, "created"),
    ]
    assert METRICS not in server_automations()


def test_dry_run_writes_nothing(clean: UUID, receiver: Receiver) -> None:

    assert apply_automations(REPO_FILE, alertmanager_url=receiver.url, dry_run=True) == [
        (n, "created") for n in NAMES
    ]
    assert server_automations().keys().isdisjoint(NAMES)
    with pytest.raises(ValueError):
        load_webhook()


def test_command_line(clean: UUID, receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    def main(argv: list[str]) -> int:
        return cli_main(["automations", *argv])

    assert main(["apply", "--file", str(REPO_FILE), "--alertmanager-url", receiver.url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"created    {n}" for n in NAMES]
    assert main(["list", "--file", str(REPO_FILE)]) == 0
    rows = capsys.readouterr().out.splitlines()
    for name in NAMES:
        (row,) = [r for r in rows if r.endswith(name)]
        assert "enabled" in row and "in sync" in row
    assert main(["apply", "--file", str(REPO_FILE), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"unchanged  {n} (dry run)" for n in NAMES]
    assert main(["apply", "--file", str(REPO_FILE), "--webhook-block", "no-such-block"]) == 2
    assert "no-such-block" in capsys.readouterr().err


# --------------------------------------------------------------------------- delivery


def test_failed_critical_run_posts_the_alert(
    clean: UUID, receiver: Receiver, tmp_path: Path
) -> None:
    """A failed run of a flow tagged critical: Prefect POSTs the alert to /api/v2/alerts
    and runs the metrics export; with no completed backup within the (here 10 s) window,
    the proactive automation alerts too."""
    from prefect import flow, tags
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    @flow(name="full-backup", retries=0)
    def failing_backup() -> None:
        """Stands in for the backup flow (same name, the deployments' tags)."""
        raise RuntimeError('stand-in backup failed: "quoted" <message>')

    path = write_variant(tmp_path, _set_trigger(NO_BACKUP, within=10))
    applied_at = time.monotonic()
    assert apply_automations(path, alertmanager_url=receiver.url) == [(n, "created") for n in NAMES]
    # On SQLite the server loads a new automation into its triggers in a task run right
    # after the commit; a second is ample (the flow run below takes about as long again).
    time.sleep(1)

    with tags("scholar-ops", "backup", "critical"):
        state = failing_backup(return_state=True)
    ended_at = time.monotonic()
    assert state.is_failed()
    run_id = state.state_details.flow_run_id

    request = receiver.wait_for(alertname_is("ScholarOpsPrefectFlowRunFailed"), timeout=60)
    latency = request["at"] - ended_at
    print(f"\nflow run failed -> alert POSTed in {latency:.2f} s")
    assert request["method"] == "POST"
    assert request["path"] == "/api/v2/alerts"
    assert request["headers"]["content-type"] == "application/json"
    body = json.loads(request["body"])
    assert isinstance(body, list) and len(body) == 1
    (alert,) = body
    assert alert["labels"] == {
        "alertname": "ScholarOpsPrefectFlowRunFailed",
        "severity": "critical",
        "service": "prefect",
        "flow": "full-backup",
        "deployment": "none",
        "state": "Failed",
    }
    annotations = alert["annotations"]
    assert annotations["flow_run_id"] == str(run_id)
    assert str(run_id) in annotations["description"]
    assert annotations["flow_run_name"] in annotations["summary"]
    assert 'stand-in backup failed: "quoted" <message>' in annotations["message"]
    started = datetime.fromisoformat(alert["startsAt"])
    assert started.tzinfo is not None

    # The metrics export runs after every backup run ends.
    deadline = time.monotonic() + 30
    runs: list[Any] = []
    while not runs and time.monotonic() < deadline:
        with client() as c:
            runs = c.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[clean]))
            )
        if not runs:
            time.sleep(0.2)
    assert runs, "no metrics-export run was created"
    assert runs[0].created_by is not None and runs[0].created_by.type == "AUTOMATION"
    print(f"backup run ended -> metrics-export run created in {time.monotonic() - ended_at:.2f} s")

    # No completed backup within the window (10 s here).
    request = receiver.wait_for(alertname_is("ScholarOpsNoCompletedBackup"), timeout=45)
    print(f"automation applied -> no-backup alert POSTed in {request['at'] - applied_at:.2f} s")
    (alert,) = json.loads(request["body"])
    assert alert["labels"] == {
        "alertname": "ScholarOpsNoCompletedBackup",
        "severity": "critical",
        "service": "prefect",
    }
    assert "0:00:10" in alert["annotations"]["description"]
    datetime.fromisoformat(alert["startsAt"])


def test_a_run_whose_heartbeats_stop_is_crashed_and_alerted(
    clean: UUID, receiver: Receiver, tmp_path: Path
) -> None:
    """A Running run that sent one heartbeat and then nothing (its process died): the
    automation marks it Crashed once the (here 10 s) window passes, and the Crashed state
    fires the critical-run alert. A run that ends in time is left alone."""
    from prefect import flow
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker
    from prefect.states import Completed, Running

    @flow(name="scholar-ops-test-zombie")
    def stand_in() -> None:
        """Never runs: its runs only get states and heartbeats from the test."""

    path = write_variant(tmp_path, _set_trigger(ZOMBIE, within=10))
    assert apply_automations(path, alertmanager_url=receiver.url) == [(n, "created") for n in NAMES]
    time.sleep(1)  # the server loads new automations right after the commit

    def heartbeat(run: Any) -> None:
        emit_event(
            "prefect.flow-run.heartbeat",
            resource={"prefect.resource.id": f"prefect.flow-run.{run.id}",
                      "prefect.resource.name": run.name},
            related=[{"prefect.resource.id": "prefect.tag.critical",
                      "prefect.resource.role": "tag"}],
        )  # fmt: skip

    with client() as c:
        dead = c.create_flow_run(stand_in, tags=["scholar-ops", "critical"])
        alive = c.create_flow_run(stand_in, tags=["scholar-ops"])
        for run in (dead, alive):
            c.set_flow_run_state(run.id, Running(), force=True)
            heartbeat(run)
        EventsWorker.drain_all()
        c.set_flow_run_state(alive.id, Completed(), force=True)  # ends within the window

        deadline = time.monotonic() + 90
        state = c.read_flow_run(dead.id).state
        while state is not None and state.type.value != "CRASHED":
            assert time.monotonic() < deadline, f"the silent run is still {state.type.value}"
            time.sleep(1)
            state = c.read_flow_run(dead.id).state
        assert state is not None and "No heartbeat" in (state.message or "")

        request = receiver.wait_for(
            lambda r: (
                alertname_is("ScholarOpsPrefectFlowRunFailed")(r)
                and str(dead.id) in r["body"].decode()
            ),
            timeout=60,
        )
        (alert,) = json.loads(request["body"])
        assert alert["labels"]["state"] == "Crashed"
        assert alert["labels"]["flow"] == "scholar-ops-test-zombie"
        assert c.read_flow_run(alive.id).state.type.value == "COMPLETED"
        for run in (dead, alive):
            c.delete_flow_run(run.id)
