"""`make up` / `make down` (scholar_ops.stack): one stack in a temporary home on free ports.

As root the home is under pytest's mode-700 temporary directory, so PostgreSQL's files
go where the postgres user can reach them (/var/tmp), as from a private checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from scholar_ops.stack import Stack, StackError, StackState, free_ports
from scholar_ops.stack.procs import MARKER_ENV, ProcessRecord, proc_stat, stop_record
from scholar_ops.stack.stack import OFFSITE_BLOCK, health_token_path, repository_paths
from scholar_ops.testbed.alerting import ALERTMANAGER_CONFIG, PROMETHEUS_RULES_DIR
from scholar_ops.vault.copy import COPIED_FROM
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import WrongKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage

pytestmark = [pytest.mark.e2e, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[3]


class Running:
    def __init__(self, stack: Stack, state: StackState) -> None:
        self.stack = stack
        self.state = state

    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, self.state.urls["prefect_api"] + path, timeout=30, **kw)
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("stack") / "home"
    stack = Stack(home, ports=free_ports(), documents=100, scale=0.02, say=lambda _: None)
    try:
        state = stack.up(timeout=420)
        yield Running(stack, state)
    finally:
        stack.down()
        pg = json.loads((home / "state.json").read_text()).get("postgres_root")
        if pg and not Path(pg).is_relative_to(home):
            shutil.rmtree(Path(pg).parent, ignore_errors=True)


def _wait(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"{what} within {timeout} s; last: {last!r}")


def test_up_deploys_every_deployment_with_its_schedules(running: Running) -> None:
    doc = yaml.safe_load((ROOT / "deployments.yaml").read_text())
    deployed = {d["name"]: d for d in running.api("POST", "/deployments/filter", json={})}
    for spec in doc["deployments"]:
        assert spec["name"] in deployed, f"deployment {spec['name']} missing"
        got = deployed[spec["name"]]
        want = [(s["cron"], s.get("active", True)) for s in spec.get("schedules", [])]
        have = [(s["schedule"]["cron"], s["active"]) for s in got["schedules"]]
        assert sorted(have) == sorted(want), spec["name"]
    # the second copy goes to the repository the stack made for it
    assert deployed["copy-snapshots"]["parameters"]["destination"] == OFFSITE_BLOCK
    # the first up triggered one full backup and one metrics export
    assert set(running.state.runs) == {"full-backup/full-backup", "metrics-export/metrics-export"}


def test_work_pool_has_an_online_worker(running: Running) -> None:
    pool = running.api("GET", "/work_pools/scholar-ops")
    assert pool["type"] == "process"
    workers = running.api("POST", "/work_pools/scholar-ops/workers/filter", json={})
    assert [w["status"] for w in workers if w["name"] == "scholar-ops-stack-worker-1"] == ["ONLINE"]
    # the UI is served too
    assert httpx.get(running.state.urls["prefect_ui"], timeout=30).status_code == 200


def test_prometheus_loads_the_rules_and_scrapes_the_pushgateway(running: Running) -> None:
    prom = running.state.urls["prometheus"]
    groups = httpx.get(f"{prom}/api/v1/rules", timeout=30).json()["data"]["groups"]
    loaded = {Path(g["file"]).name for g in groups}
    assert loaded == {p.name for p in PROMETHEUS_RULES_DIR.glob("*.yml")}

    def pushgateway_up() -> bool:
        r = httpx.get(f"{prom}/api/v1/query", params={"query": 'up{job="pushgateway"}'}, timeout=30)
        result = r.json()["data"]["result"]
        return bool(result) and result[0]["value"][1] == "1"

    _wait("Prometheus scraping the Pushgateway (up == 1)", pushgateway_up, 60)
    alertmanagers = httpx.get(f"{prom}/api/v1/alertmanagers", timeout=30).json()["data"]
    assert [a["url"] for a in alertmanagers["activeAlertmanagers"]] == [
        running.state.urls["alertmanager"] + "/api/v2/alerts"
    ]


def test_alertmanager_routes_to_the_local_sinks(running: Running) -> None:
    status = httpx.get(running.state.urls["alertmanager"] + "/api/v2/status", timeout=30).json()
    config = yaml.safe_load(status["config"]["original"])
    production = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    assert {r["name"] for r in config["receivers"]} == {r["name"] for r in production["receivers"]}
    assert config["global"]["smtp_smarthost"] == running.state.urls["smtp"]
    hooks = [h["url"] for r in config["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks and all(u.startswith(running.state.urls["notifications"]) for u in hooks)


def test_sinks_record_webhooks_and_mail_and_list_them(running: Running) -> None:
    sinks = running.state.urls["notifications"]
    page = httpx.get(sinks, timeout=30)
    assert page.status_code == 200 and "Notifications received" in page.text
    alert = {
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "StackTest"}}],
    }
    assert httpx.post(f"{sinks}/alertmanager", json=alert, timeout=30).status_code == 200
    host, port = running.state.urls["smtp"].split(":")
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "am@example.org", "ops@example.org", "StackMail"
    mail.set_content("target aischolar-postgres is down\n.\nsecond paragraph")
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.send_message(mail)
    records = httpx.get(f"{sinks}/api/notifications", timeout=30).json()
    hook = [r for r in records if r["kind"] == "webhook" and r["path"] == "/alertmanager"]
    assert hook[-1]["body"] == alert
    email = [r for r in records if r["kind"] == "email" and r["subject"] == "StackMail"]
    assert email and "aischolar-postgres is down\n.\nsecond" in email[-1]["text"]
    assert email[-1]["to"] == ["ops@example.org"]
    text = httpx.get(sinks, timeout=30).text
    assert "StackTest (firing)" in text and "StackMail" in text
    files = running.state.home / "notifications"
    assert "StackTest" in (files / "webhook.jsonl").read_text()
    assert "StackMail" in (files / "email.jsonl").read_text()


def test_health_service_and_app_answer(running: Running) -> None:
    base = running.state.urls["health"]
    token_file = health_token_path(running.state.home)
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert httpx.get(base + "/health/comprehensive", timeout=60).status_code == 401
    assert httpx.get(base + "/livez", timeout=30).json() == {"status": "ok"}
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    health = httpx.get(base + "/health/comprehensive", headers=auth, timeout=60).json()
    for check in ("postgres", "redis", "chroma", "backend"):
        assert health["checks"][check]["status"] == "healthy", health["checks"][check]
    # Prometheus scrapes the health service with the token file
    prom = running.state.urls["prometheus"]

    def health_up() -> bool:
        query = {"query": 'up{job="scholar-ops-health"}'}
        result = httpx.get(f"{prom}/api/v1/query", params=query, timeout=30).json()["data"]
        return bool(result["result"]) and result["result"][0]["value"][1] == "1"

    _wait("Prometheus scraping the health service (up == 1)", health_up, 90)
    assert httpx.get(running.state.urls["app"] + "/health/live", timeout=30).status_code == 200


def test_the_triggered_runs_complete_on_the_worker(running: Running) -> None:
    """The first up's full backup and metrics export run on the worker (the pull step,
    the blocks, the stack's servers): completed, with the backup's report."""
    ended = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")

    def states() -> dict[str, str] | None:
        got = {
            name: running.api("GET", f"/flow_runs/{run_id}")["state"]["type"]
            for name, run_id in running.state.runs.items()
        }
        return got if all(s in ended for s in got.values()) else None

    final = _wait("the triggered runs to finish", states, 240)
    assert final["full-backup/full-backup"] == "COMPLETED", final
    # the metrics export's scheduled run may have come first: the deployment runs one
    # at a time and cancels a new run meanwhile (concurrency_limit CANCEL_NEW)
    assert final["metrics-export/metrics-export"] in ("COMPLETED", "CANCELLED"), final
    exports = running.api(
        "POST",
        "/flow_runs/filter",
        json={
            "flows": {"name": {"any_": ["metrics-export"]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
        },
    )
    assert exports, "no completed metrics-export run"
    backup = running.state.runs["full-backup/full-backup"]
    artifacts = running.api(
        "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [backup]}}}
    )
    assert "markdown" in {a["type"] for a in artifacts}
    metrics = httpx.get(running.state.urls["pushgateway"] + "/metrics", timeout=30).text
    assert 'scholar_ops_backup_last_status{component="postgres"' in metrics

    # The automation copies the completed backup into the second repository.
    def copies() -> list[dict[str, Any]] | None:
        runs = running.api(
            "POST", "/flow_runs/filter", json={"flows": {"name": {"any_": ["copy-snapshots"]}}}
        )
        done = [r for r in runs if r["state"]["type"] in ended]
        return done if done and len(done) == len(runs) else None

    copy_runs = _wait("the copy-snapshots run the backup triggered", copies, 180)
    assert {r["state"]["type"] for r in copy_runs} == {"COMPLETED"}, copy_runs
    home = running.state.home
    paths = repository_paths(home)
    primary_key = MasterKey.from_string((home / "master.key").read_text().strip())
    offsite_key = MasterKey.from_string((home / "offsite.key").read_text().strip())
    primary = Repository.open(LocalStorage(paths["scholar-ops-repository"]), primary_key)
    offsite = Repository.open(LocalStorage(paths[OFFSITE_BLOCK]), offsite_key)
    with pytest.raises(WrongKey):  # a key of its own
        Repository.open(LocalStorage(paths[OFFSITE_BLOCK]), primary_key)
    originals = {s.backup_id: s for s in primary.snapshots()}
    copied = offsite.snapshots()
    assert copied and {s.component for s in copied} >= {"postgres", "redis", "chroma", "files"}
    for snap in copied:
        origin = snap.details[COPIED_FROM]
        assert origin["repo_id"] == primary.config.repo_id
        source = originals[origin["backup_id"]]
        assert (snap.component, snap.target, snap.checksum) == (
            source.component,
            source.target,
            source.checksum,
        )
    metrics = httpx.get(running.state.urls["pushgateway"] + "/metrics", timeout=30).text
    assert f'scholar_ops_copy_last_status{{destination="{OFFSITE_BLOCK}"' in metrics


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scholar_ops.stack", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_second_up_starts_nothing(running: Running) -> None:
    again = Stack(running.stack.home, say=lambda _: None).up(timeout=120)
    assert again.started == []
    assert again == running.state
    assert again.processes == running.state.processes
    status = _cli("status", "--json", "--home", str(running.stack.home))
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["running"] is True
    assert {n: p["pid"] for n, p in doc["processes"].items()} == running.state.processes
    # the command line's up: nothing to start, the URLs printed
    up = _cli("up", "--home", str(running.stack.home))
    assert up.returncode == 0, up.stderr
    assert "nothing started" in up.stdout
    assert running.state.urls["prefect_ui"] in up.stdout
    offsite = repository_paths(running.stack.home)[OFFSITE_BLOCK]
    assert [OFFSITE_BLOCK, str(offsite)] in [line.split() for line in up.stdout.splitlines()]
    assert doc["repositories"][OFFSITE_BLOCK] == str(offsite)

    # A stack made before the second copy existed gets it on its next up; an existing
    # block (here the one made above) and its key are left as they are.
    key_file = running.stack.home / "offsite.key"
    key = key_file.read_text()
    state_file = running.stack.home / "state.json"
    state = json.loads(state_file.read_text())
    del state["done"]["offsite"]
    state_file.write_text(json.dumps(state))
    said: list[str] = []
    assert Stack(running.stack.home, say=said.append).up(timeout=180).started == []
    assert f"  repository  {OFFSITE_BLOCK} [unchanged: it exists]" in said, said
    assert key_file.read_text() == key
    assert json.loads(state_file.read_text())["done"]["offsite"] is True


def test_a_port_taken_by_another_process_is_named(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        ports = free_ports() | {"prometheus": taken}
        with pytest.raises(StackError, match=f"port {taken} for prometheus is taken"):
            Stack(tmp_path / "other", ports=ports, say=lambda _: None).up(timeout=60)
    # nothing was started for it
    state = tmp_path / "other" / "state.json"
    assert not state.exists() or json.loads(state.read_text())["processes"] == {}
    assert _ours(tmp_path / "other") == []


def test_a_reused_pid_is_never_signalled() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stat = proc_stat(proc.pid)
        assert stat is not None
        stale = ProcessRecord("old", proc.pid, stat[1] - 1, pgid=proc.pid)
        assert not stale.alive()
        assert stop_record(stale, 1) is False
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _ours(home: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (
            str(home).encode() in cmdline or f"{MARKER_ENV}={home}".encode() in environ
        ):
            shown = cmdline.replace(b"\0", b" ")[:200]
            found.append(f"{entry.name}: {shown!r}")
    return found


def test_down_stops_everything_it_started_and_nothing_else(running: Running) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        records = json.loads((running.stack.home / "state.json").read_text())["processes"]
        stopped = running.stack.down(timeout=60)
        assert set(records) <= set(stopped)
        for name, rec in records.items():
            stat = proc_stat(rec["pid"])
            assert stat is None or stat[1] != rec["start_time"] or stat[0] == "Z", name
        assert _ours(running.stack.home) == []
        assert bystander.poll() is None
        assert running.stack.down() == []  # a stopped stack: nothing to do
        assert running.stack.status()["running"] is False
        assert _cli("status", "--home", str(running.stack.home)).returncode == 3
        down = _cli("down", "--home", str(running.stack.home))
        assert (down.returncode, down.stdout.strip()) == (0, "nothing was running")
    finally:
        bystander.kill()
        bystander.wait(timeout=10)
