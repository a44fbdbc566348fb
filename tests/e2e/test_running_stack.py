"""The running system (`make up`), end to end, as an operator uses it.

One stack (scholar_ops.stack) in a temporary home on free ports, started once for the
module and stopped at the end. Playwright drives Debian's Chromium through the Prefect
UI; the command line runs `prefect deployment run`; a stopped Redis makes a backup fail
and the notifications of both alert paths (the Prefect automation, and the Prometheus
rule) are read back from the stack's webhook receiver and SMTP sink.

Screenshots go to $SCHOLAR_OPS_TEST_ARTIFACTS (default test-artifacts/e2e/ in the
checkout, ignored by git).

Timings: a backup whose target is down retries three times with exponential backoff
(tasks/common.py: about 90 s), so the failing run is started by a fixture the first test
requests and retries while the UI and command-line tests run. The alerting side needs
no change to the production configuration: ScholarOpsBackupFailed has no `for:`, the
stack scrapes and evaluates every 15 s, and its AlertManager waits 10 s per group and
1 m between a group's notifications (so the resolved one comes within about 90 s).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright
from psycopg import sql

from scholar_ops.sources.process import free_port
from scholar_ops.stack import DEFAULT_PORTS, Stack, StackState
from scholar_ops.stack.procs import ProcessRecord, marked_processes, stop_record
from tests.e2e import prefect_ui

pytestmark = [pytest.mark.e2e, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
STOPPED = "redis"  # the stack process stopped to make a backup fail
STOPPED_TARGET = "aischolar-redis"  # the target block backed up from it
FAILING_PARAMETERS = {
    "postgres_targets": [],
    "redis_targets": [STOPPED_TARGET],
    "chroma_targets": [],
    "file_targets": [],
}

T = TypeVar("T")


def _wait(what: str, check: Callable[[], T | None], timeout: float, interval: float = 2) -> T:
    """``check()`` until it returns something true; an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    last = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)
        last = check()
    return last


def _free_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(ports) < len(DEFAULT_PORTS):
        port = free_port()
        if port not in ports.values():
            ports[list(DEFAULT_PORTS)[len(ports)]] = port
    return ports


def _deployments_yaml() -> list[dict[str, Any]]:
    doc = yaml.safe_load((ROOT / "deployments.yaml").read_text())
    return list(doc["deployments"])


@dataclass
class Running:
    stack: Stack
    state: StackState

    @property
    def ui(self) -> str:
        return self.state.urls["prefect_ui"]

    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, self.state.urls["prefect_api"] + path, timeout=60, **kw)
        r.raise_for_status()
        return r.json()

    def run_deployment(self, name: str, parameters: dict[str, Any], run_name: str) -> str:
        dep = self.api("GET", f"/deployments/name/{name}")
        run = self.api(
            "POST",
            f"/deployments/{dep['id']}/create_flow_run",
            json={"parameters": parameters, "name": run_name},
        )
        return str(run["id"])

    def wait_run(self, run_id: str, timeout: float) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            run = self.api("GET", f"/flow_runs/{run_id}")
            return run if run["state_type"] in TERMINAL else None

        return _wait(f"flow run {run_id} ending (see {self.state.home}/logs)", ended, timeout)

    def notifications(self, since: float) -> list[dict[str, Any]]:
        r = httpx.get(self.state.urls["notifications"] + "/api/notifications", timeout=30)
        r.raise_for_status()
        return [n for n in r.json() if n["at"] >= since]

    def pg(self, database: str) -> psycopg.Connection[Any]:
        port = self.state.ports["postgres"]
        return psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/{database}",
            autocommit=True,
            connect_timeout=10,
        )


@pytest.fixture(scope="module")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("SCHOLAR_OPS_TEST_ARTIFACTS") or ROOT / "test-artifacts" / "e2e")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("e2e") / "stack"
    stack = Stack(home, ports=_free_ports(), documents=100, scale=0.02, say=lambda _: None)
    try:
        # wait: the first up's runs end before a test stops a target under them
        yield Running(stack, stack.up(timeout=480, wait=True))
    finally:
        stack.down()  # a second down (after test_down_leaves_no_process) does nothing
        pg = json.loads((home / "state.json").read_text()).get("postgres_root")
        if pg and not Path(pg).is_relative_to(home):
            shutil.rmtree(Path(pg).parent, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (Debian's package)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS, timeout=60_000
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1920, "height": 1200})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@dataclass
class FailingBackup:
    run_id: str
    run_name: str
    since: float  # when the target was stopped (unix time)


@pytest.fixture(scope="module")
def failing_backup(running: Running) -> FailingBackup:
    """Redis stopped, and a backup of it started: the run retries (about 90 s of
    backoff) while the other tests run. The first test requests this fixture for that."""
    since = time.time()
    state = json.loads(running.stack.state_path.read_text())
    record = ProcessRecord.from_json(state["processes"][STOPPED])
    assert stop_record(record, 20), f"{STOPPED} of the stack was not running"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", running.state.ports[STOPPED])) != 0, "redis still up"
    name = f"e2e-target-down-{secrets.token_hex(3)}"
    run_id = running.run_deployment("full-backup/full-backup", FAILING_PARAMETERS, name)
    return FailingBackup(run_id, name, since)


# -- 1. the deployments page ---------------------------------------------------------------


def test_deployments_page_lists_every_deployment_with_its_schedule(
    running: Running, failing_backup: FailingBackup, page: Page, artifacts_dir: Path
) -> None:
    rows = {r.name: r for r in prefect_ui.list_deployments(page, running.ui)}
    page.goto(f"{running.ui}/deployments")
    page.locator("a.deployment-list__name").first.wait_for()
    page.wait_for_load_state("networkidle")
    shot = artifacts_dir / "deployments.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000, f"{shot} is {shot.stat().st_size} bytes"

    for spec in _deployments_yaml():
        name = spec["name"]
        assert name in rows, f"deployment {name} is not on the Deployments page: {sorted(rows)}"
        row = rows[name]
        schedules = spec.get("schedules") or []
        assert len(row.schedules) == len(schedules), (name, row.schedules)
        for schedule, text, inactive in zip(schedules, row.schedules, row.inactive, strict=True):
            for fragment in prefect_ui.schedule_fragment(schedule["cron"]):
                assert fragment in text, f"{name}: {schedule['cron']} shown as {text!r}"
            assert inactive == (not schedule.get("active", True)), (name, text, inactive)
    # the one deployment whose schedule starts inactive is shown so
    assert any(r.inactive and all(r.inactive) for r in rows.values())


# -- 2. a custom run from the UI -----------------------------------------------------------


def test_custom_run_from_the_ui_completes_and_shows_its_report(
    running: Running, page: Page, artifacts_dir: Path
) -> None:
    # Redis is down meanwhile (failing_backup): the operator leaves it out of this run
    prefect_ui.open_custom_run(page, running.ui, "full-backup")
    prefect_ui.set_none(page, "redis_targets")
    left = prefect_ui.remove_list_item(page, "file_targets", "aischolar-config")
    assert left == ["aischolar-uploads"]
    run_name = f"e2e-ui-{secrets.token_hex(3)}"
    prefect_ui.submit_custom_run(page, run_name)

    def created() -> list[Any]:
        return list(
            running.api(
                "POST", "/flow_runs/filter", json={"flow_runs": {"name": {"any_": [run_name]}}}
            )
        )

    runs = _wait(f"flow run {run_name} created from the UI", created, 30, 1)
    run = running.wait_run(runs[0]["id"], 240)
    params = run["parameters"]
    assert run["state_type"] == "COMPLETED", (run["state"]["message"], params)
    # the run used what was changed in the form, and the defaults for the rest
    assert params["redis_targets"] is None
    assert params["file_targets"] == ["aischolar-uploads"]
    defaults = next(d for d in _deployments_yaml() if d["name"] == "full-backup")["parameters"]
    for key in ("postgres_targets", "chroma_targets"):
        assert params[key] == defaults[key], key
    backed_up = [
        t for k in ("postgres_targets", "chroma_targets", "file_targets") for t in params[k]
    ]

    prefect_ui.open_artifacts_tab(page, running.ui, run["id"])
    card = page.get_by_text("backup-report", exact=True)
    expect(card).to_be_visible()
    shot = artifacts_dir / "flow-run.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000, f"{shot} is {shot.stat().st_size} bytes"

    card.click()  # the artifact's page renders the markdown
    heading = page.get_by_role("heading", name=f"Backup report: {len(backed_up)} targets backed up")
    expect(heading).to_be_visible()
    report = page.inner_text("body")
    assert run_name in report, "the artifact shown is not this run's"
    for target in backed_up:
        assert target in report, f"{target} missing from the report shown"
    assert STOPPED_TARGET not in report and "aischolar-config" not in report
    page.screenshot(path=str(artifacts_dir / "backup-report.png"), full_page=True)


# -- 3. a restore from the command line ----------------------------------------------------


def _row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    tables = conn.execute(
        "SELECT schemaname, tablename FROM pg_tables"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    ).fetchall()
    counts = {}
    for schema, table in tables:
        q = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(q).fetchone()
        assert row is not None
        counts[f"{schema}.{table}"] = int(row[0])
    return counts


def test_cli_restore_postgres_into_a_new_database(running: Running, tmp_path: Path) -> None:
    database = f"e2e_restored_{secrets.token_hex(3)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_API_URL": running.state.urls["prefect_api"],
        "PREFECT_HOME": str(tmp_path / "prefect-home"),  # no profile of the user's
    }
    prefect = Path(sys.executable).parent / "prefect"
    proc = subprocess.run(
        [str(prefect), "deployment", "run", "restore-postgres/restore-postgres",
         "-p", "target=aischolar-postgres", "-p", f"database={database}",
         "--watch", "--watch-timeout", "240"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Completed" in out, out[-3000:]

    with running.pg("postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        assert exists.fetchone() is not None, f"database {database} was not created"
    with running.pg("aischolar") as src, running.pg(database) as dst:
        source = _row_counts(src)
        assert sum(source.values()) > 0, source
        assert _row_counts(dst) == source


# -- 4. a stopped target: notifications through both alert paths, then resolved ------------


def _alerts(notes: list[dict[str, Any]], alertname: str, status: str) -> list[dict[str, Any]]:
    """Alerts of AlertManager's webhook notifications with that name and status."""
    found = []
    for n in notes:
        if n["kind"] != "webhook" or n["path"] != "/alertmanager":
            continue
        body = n["body"] if isinstance(n["body"], dict) else {}
        for alert in body.get("alerts", []):
            if alert["labels"].get("alertname") == alertname and alert["status"] == status:
                found.append(alert)
    return found


def _emails(notes: list[dict[str, Any]], *words: str) -> list[dict[str, Any]]:
    return [
        n
        for n in notes
        if n["kind"] == "email" and all(w in n["subject"] + "\n" + n["text"] for w in words)
    ]


def test_stopped_target_alerts_through_both_paths_and_recovery_resolves(
    running: Running, failing_backup: FailingBackup
) -> None:
    run = running.wait_run(failing_backup.run_id, 300)
    assert run["state_type"] == "FAILED", run["state"]["message"]
    assert STOPPED_TARGET in run["state"]["message"]
    since = failing_backup.since

    # the Prefect automation ("critical flow run failed") -> AlertManager -> sinks
    def automation_notified() -> bool:
        notes = running.notifications(since)
        hooks = [
            a
            for a in _alerts(notes, "ScholarOpsPrefectFlowRunFailed", "firing")
            if a["annotations"].get("flow_run_id") == failing_backup.run_id
        ]
        mails = _emails(notes, "ScholarOpsPrefectFlowRunFailed", failing_backup.run_name)
        return bool(hooks) and bool(mails)

    _wait("the automation's notification at the webhook and by mail", automation_notified, 150)
    notes = running.notifications(since)
    hook = next(
        a
        for a in _alerts(notes, "ScholarOpsPrefectFlowRunFailed", "firing")
        if a["annotations"]["flow_run_id"] == failing_backup.run_id
    )
    assert STOPPED_TARGET in hook["annotations"]["message"]
    mail = _emails(notes, "ScholarOpsPrefectFlowRunFailed", failing_backup.run_name)[-1]
    assert STOPPED_TARGET in mail["text"]

    # the pushed status 0 -> Prometheus rule ScholarOpsBackupFailed -> AlertManager -> sinks
    def rule_notified() -> bool:
        notes = running.notifications(since)
        hooks = [
            a
            for a in _alerts(notes, "ScholarOpsBackupFailed", "firing")
            if a["labels"].get("target") == STOPPED_TARGET
        ]
        return bool(hooks) and bool(
            _emails(notes, "[FIRING", "ScholarOpsBackupFailed", STOPPED_TARGET)
        )

    _wait("ScholarOpsBackupFailed at the webhook and by mail", rule_notified, 150)

    # the target back (up completes a half-started stack), a backup succeeds, resolved
    back = running.stack.up(timeout=300)
    assert STOPPED in back.started
    recovered = time.time()
    ok = running.run_deployment(
        "full-backup/full-backup", FAILING_PARAMETERS, f"e2e-target-back-{secrets.token_hex(3)}"
    )
    run = running.wait_run(ok, 240)
    assert run["state_type"] == "COMPLETED", run["state"]["message"]

    def resolved() -> bool:
        notes = running.notifications(recovered)
        hooks = [
            a
            for a in _alerts(notes, "ScholarOpsBackupFailed", "resolved")
            if a["labels"].get("target") == STOPPED_TARGET
        ]
        return bool(hooks) and bool(
            _emails(notes, "[RESOLVED]", "ScholarOpsBackupFailed", STOPPED_TARGET)
        )

    _wait("ScholarOpsBackupFailed resolved at the webhook and by mail", resolved, 180)


# -- the end: down stops everything -------------------------------------------------------


def test_down_leaves_no_process(running: Running) -> None:
    state = json.loads(running.stack.state_path.read_text())
    records = [ProcessRecord.from_json(d) for d in state["processes"].values()]
    assert records, "state.json records no process"
    running.stack.down()
    alive = [f"{r.name} (pid {r.pid})" for r in records if r.alive()]
    assert alive == [], f"left running after down: {alive}"
    assert marked_processes(running.stack.home) == []
    assert json.loads(running.stack.state_path.read_text())["processes"] == {}
