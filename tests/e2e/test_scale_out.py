"""Scale-out on Prefect's own engine, end to end: two process workers of one stack
(scholar_ops.stack) share the backups, Prefect's global concurrency limits keep them to
one dump at a time on the PostgreSQL server whichever worker runs it, and a worker that
dies mid-run (kill -9, its flow-run process with it) leaves a run the heartbeat
automation marks Crashed, which alerts; the next run succeeds and the repository checks
clean.

Settings the test changes, all through the environment the stack hands its processes:
SCHOLAR_OPS_MAX_DUMPS_PER_SERVER=1 (so that an overlap would show),
PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30 (Prefect's minimum),
SCHOLAR_OPS_SLOT_LEASE_SECONDS=60 (the server's minimum: the dead run's slot comes back
within about 75 s) and PREFECT_WORKER_QUERY_SECONDS=2 (runs are picked up at once). The
heartbeat automation is applied with a 75 s window (the file's 600 s suits Prefect's
default 180 s heartbeats).

Which worker takes a run is up to which polls first: the test pauses one worker (SIGSTOP,
its flow runs unaffected) while the other picks up two runs, then the other way round.
A dump of the sample lasts about a second, so while the four start the test holds a lock
on a table of the sample: each dump that has a slot waits on it, in view of the sampler
(with the limit at 4, three dumps were seen at once; at 1, never more than one).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import yaml

from scholar_ops.sources.process import free_port
from scholar_ops.stack import DEFAULT_PORTS, Stack, StackState
from scholar_ops.stack.procs import environ_of, marked_processes, proc_stat

pytestmark = [pytest.mark.e2e, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
ZOMBIE = "scholar-ops crash unresponsive flow runs"
WINDOW = 75  # the heartbeat automation's window here: more than two 30 s heartbeats
BACKUP = "full-backup/full-backup"
SAMPLE_DB = "aischolar"
ENV = {
    "SCHOLAR_OPS_MAX_DUMPS_PER_SERVER": "1",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    "SCHOLAR_OPS_SLOT_LEASE_SECONDS": "60",
    "PREFECT_WORKER_QUERY_SECONDS": "2",
}

T = TypeVar("T")


def _wait(what: str, check: Callable[[], T | None], timeout: float, interval: float = 1) -> T:
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


def _ppid(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[1])


def _local_socket_inodes(ports: set[int]) -> dict[int, int]:
    """socket inode -> local port, for the loopback TCP sockets on those ports."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port in ports:
                found[int(fields[9])] = port
    return found


def _flow_runs_of_sockets(inodes: dict[int, int]) -> dict[int, str]:
    """local port -> the flow run (PREFECT__FLOW_RUN_ID) of the process holding it."""
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        run_id = environ_of(int(proc.name)).get("PREFECT__FLOW_RUN_ID")
        if not run_id:
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                port = inodes.get(int(link[8:-1]))
                if port is not None:
                    found[port] = run_id
    return found


class DumpSampler(threading.Thread):
    """pg_stat_activity of the sample database every 0.2 s: how many backups read it at once.

    A dump's sessions (its exporting session, then pg_dump and psql under its snapshot;
    all named `scholar-ops`) come from the processes of one flow run. Each session's
    client port leads (this is one machine) to the process holding it and so to its flow
    run: the backup runs with a session open are the dumps reading right now."""

    def __init__(self, dsn: str, backups: set[str]) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.backups = backups  # the flow runs that are backups (others, e.g. metrics, not)
        self.stop = threading.Event()
        self.samples: list[tuple[float, int]] = []
        self.crowded: list[list[tuple[Any, ...]]] = []  # the sessions of samples above 1
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                while not self.stop.is_set():
                    rows = conn.execute(
                        "SELECT client_port, state, left(query, 60) FROM pg_stat_activity"
                        " WHERE datname = %s AND application_name = 'scholar-ops'"
                        " AND client_port IS NOT NULL",
                        (SAMPLE_DB,),
                    ).fetchall()
                    runs = _flow_runs_of_sockets(_local_socket_inodes({r[0] for r in rows}))
                    dumps = {runs[r[0]] for r in rows if runs.get(r[0]) in self.backups}
                    self.samples.append((time.monotonic(), len(dumps)))
                    if len(dumps) > 1:
                        self.crowded.append([(runs.get(r[0]), *r) for r in rows])
                    self.stop.wait(0.2)
        except BaseException as e:  # reported by the test
            self.error = e

    def most(self) -> int:
        return max((n for _, n in self.samples), default=0)


@dataclass
class Running:
    stack: Stack
    state: StackState
    runs: dict[str, str] = field(default_factory=dict)  # run id -> worker name

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """A Prefect API call; retried while the server answers 503 (its SQLite database is
        busy: 'retry', it says) for up to a minute."""
        deadline = time.monotonic() + 60
        while True:
            r = httpx.request(method, self.state.urls["prefect_api"] + path, timeout=60, **kw)
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(1)
        r.raise_for_status()
        return r.json() if r.content else None

    def run_backup(self, name: str) -> str:
        dep = self.api("GET", f"/deployments/name/{BACKUP}")
        run = self.api("POST", f"/deployments/{dep['id']}/create_flow_run", json={"name": name})
        return str(run["id"])

    def postgres_tasks(self, run_ids: list[str], state: str) -> list[dict[str, Any]]:
        """The runs' PostgreSQL backup task runs in that state."""
        found = self.api(
            "POST",
            "/task_runs/filter",
            json={
                "flow_runs": {"id": {"any_": run_ids}},
                "task_runs": {
                    "name": {"any_": ["backup postgres aischolar-postgres"]},
                    "state": {"type": {"any_": [state]}},
                },
            },
        )
        return list(found)

    def run_state(self, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/flow_runs/{run_id}"))

    def wait_state(self, run_id: str, wanted: set[str], timeout: float) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            run = self.run_state(run_id)
            return run if run["state_type"] in wanted else None

        return _wait(f"run {run_id} in {wanted} (logs: {self.state.home}/logs)", reached, timeout)

    def worker_pid(self, name: str) -> int:
        state = json.loads(self.stack.state_path.read_text())
        return int(state["processes"][name]["pid"])

    def workers(self) -> list[str]:
        state = json.loads(self.stack.state_path.read_text())
        return sorted(n for n in state["processes"] if n.startswith("worker-"))

    def flow_run_pids(self, run_id: str) -> list[int]:
        """The processes of a flow run (its engine process and children), by environment."""
        return [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and environ_of(int(p.name)).get("PREFECT__FLOW_RUN_ID") == run_id
        ]

    def worker_of(self, run_id: str) -> str | None:
        """The worker whose process is an ancestor of the run's processes."""
        pids = {self.worker_pid(w): w for w in self.workers()}
        for pid in self.flow_run_pids(run_id):
            p: int | None = pid
            while p and p > 1:
                if p in pids:
                    return pids[p]
                p = _ppid(p)
        return None

    def notifications(self) -> list[dict[str, Any]]:
        notes = []
        for path in sorted((self.state.home / "notifications").glob("*.jsonl")):
            notes += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return notes


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("scale") / "stack"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ENV.items():
            mp.setenv(key, value)  # the stack's processes inherit the environment
        stack = Stack(
            home,
            workers=2,
            ports=_free_ports(),
            documents=200,
            scale=0.02,
            trigger_runs=False,
            say=lambda _: None,
        )
        try:
            yield Running(stack, stack.up(timeout=480))
        finally:
            stack.down()
            left = marked_processes(home)
            pg = json.loads((home / "state.json").read_text()).get("postgres_root")
            if pg and not Path(pg).is_relative_to(home):
                import shutil

                shutil.rmtree(Path(pg).parent, ignore_errors=True)
            assert left == [], f"processes of the stack left after down: {left}"


def _apply_short_window(running: Running, tmp_path: Path) -> None:
    """The repository's automations, the heartbeat one with a 75 s window."""
    data = yaml.safe_load((ROOT / "automations.yaml").read_text())
    (zombie,) = [a for a in data["automations"] if a["name"] == ZOMBIE]
    zombie["trigger"]["within"] = WINDOW
    path = tmp_path / "automations.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_API_URL": running.state.urls["prefect_api"],
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "scholar_ops.cli", "automations", "apply", "--file", str(path),
         "--alertmanager-url", running.state.urls["alertmanager"]],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"updated    {ZOMBIE}" in proc.stdout, proc.stdout


def _claimed(running: Running, run_ids: list[str]) -> bool:
    return all(running.run_state(r)["state_type"] != "SCHEDULED" for r in run_ids)


def _limit_name(running: Running) -> str:
    return f"scholar-ops dumps postgres 127.0.0.1:{running.state.ports['postgres']}"


def test_two_workers_share_the_runs_one_dump_at_a_time_and_a_dead_worker_is_noticed(
    running: Running, tmp_path: Path
) -> None:
    _apply_short_window(running, tmp_path)
    # A table the test locks while the backups start: every dump that got a slot opens
    # its sessions and waits for the lock, so that dumps not kept apart would all be seen
    # at once (without it, a dump of this sample lasts about a second).
    with psycopg.connect(running.state.urls["postgres"], autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE scale_bulk AS SELECT g AS id, md5(g::text) AS pad"
            " FROM generate_series(1, 100000) AS g"
        )
    locker = psycopg.connect(running.state.urls["postgres"])
    locker.execute("LOCK TABLE scale_bulk IN ACCESS EXCLUSIVE MODE")
    worker_1, worker_2 = running.workers()
    backups: set[str] = set()
    sampler = DumpSampler(
        running.state.urls["postgres"].replace("/aischolar", "/postgres"), backups
    )
    sampler.start()

    # -- four backups at once, two taken by each worker ------------------------------------
    batch: list[str] = []
    for taker, paused in ((worker_1, worker_2), (worker_2, worker_1)):
        pid = running.worker_pid(paused)
        os.kill(pid, signal.SIGSTOP)
        try:
            ids = [running.run_backup(f"scale-{taker}-{i}") for i in (1, 2)]
            backups.update(ids)
            _wait(f"{taker} picking up {ids}", functools.partial(_claimed, running, ids), 60)
        finally:
            os.kill(pid, signal.SIGCONT)
        batch += ids
    # every run in its PostgreSQL task (holding the slot, or waiting for it); then a few
    # seconds for the dumps that could start to open their sessions
    _wait(
        "every backup's PostgreSQL task running",
        lambda: len(running.postgres_tasks(batch, "RUNNING")) == len(batch),
        120,
    )
    time.sleep(5)
    locked_most = sampler.most()
    locker.rollback()
    locker.close()
    for run_id in batch:
        run = running.wait_state(run_id, TERMINAL, 300)
        assert run["state_type"] == "COMPLETED", (run["name"], run["state"]["message"])
    print(f"\n4 backups on 2 workers, dumps at once at most: {sampler.most()} ({locked_most})")
    # each worker ran its two: its log names the runs it submitted
    for worker, ids in ((worker_1, batch[:2]), (worker_2, batch[2:])):
        log = (running.state.home / "logs" / f"{worker}.log").read_text()
        for run_id in ids:
            assert run_id in log, f"{worker} did not run {run_id}"
        other = worker_2 if worker == worker_1 else worker_1
        other_log = (running.state.home / "logs" / f"{other}.log").read_text()
        assert not any(r in other_log for r in ids), f"{other} ran one of {worker}'s runs"
    assert sampler.error is None, sampler.error
    reading = [n for _, n in sampler.samples if n > 0]
    print(f"samples: {len(sampler.samples)}, with a dump reading: {len(reading)}")
    assert reading, "the sampler never saw a dump: the query no longer matches them"
    # (with the limit at 4 instead, 3 dumps were seen at once while the table was locked)
    assert sampler.most() == 1, f"more dumps at once than the limit (1): {sampler.crowded[:3]}"
    assert locked_most == 1, "no dump seen while the table was locked"
    limit = running.api("GET", f"/v2/concurrency_limits/{_limit_name(running)}")
    assert limit["limit"] == 1 and limit["active_slots"] == 0

    # -- a worker dies (kill -9) while its run holds the server's only dump slot ----------
    # The test holds the slot, so the run waits inside its PostgreSQL task; released, the
    # run takes it, and its worker dies with it.
    name = _limit_name(running)
    held = running.api(
        "POST",
        "/v2/concurrency_limits/increment-with-lease",
        json={"names": [name], "slots": 1, "mode": "concurrency", "lease_duration": 300},
    )
    doomed = running.run_backup("scale-doomed")
    backups.add(doomed)
    running.wait_state(doomed, {"RUNNING"}, 120)
    victim = _wait(f"the worker running {doomed}", lambda: running.worker_of(doomed), 60)
    time.sleep(3)  # into its tasks: the PostgreSQL one waits for the slot
    running.api(
        "POST", "/v2/concurrency_limits/decrement-with-lease", json={"lease_id": held["lease_id"]}
    )
    _wait(
        "the doomed run taking the dump slot",
        lambda: running.api("GET", f"/v2/concurrency_limits/{name}")["active_slots"] == 1,
        60,
        0.2,
    )
    victim_pid = running.worker_pid(victim)
    killed_at = time.time()
    groups = {victim_pid} | {
        st[2] for p in running.flow_run_pids(doomed) if (st := proc_stat(p)) is not None
    }
    for group in groups:
        os.killpg(group, signal.SIGKILL)
    for pid in running.flow_run_pids(doomed):  # any child in a group of its own
        os.kill(pid, signal.SIGKILL)
    _wait("the dead worker's processes gone", lambda: not running.flow_run_pids(doomed), 20)
    assert proc_stat(victim_pid) is None or proc_stat(victim_pid)[0] == "Z"  # type: ignore[index]
    assert running.run_state(doomed)["state_type"] == "RUNNING"  # nobody told the server

    # the heartbeats stopped: the automation marks it Crashed after the window
    run = running.wait_state(doomed, TERMINAL, WINDOW + 90)
    crashed_after = time.time() - killed_at
    print(f"worker killed -> run Crashed in {crashed_after:.0f} s")
    assert run["state_type"] == "CRASHED", run["state"]
    assert "No heartbeat" in (run["state"]["message"] or "")

    # ... and the failure automation's alert reaches the stack's webhook sink
    def alerted() -> list[dict[str, Any]]:
        found = []
        for note in running.notifications():
            body = note.get("body")
            if note.get("kind") != "webhook" or not isinstance(body, dict):
                continue
            for alert in body.get("alerts", []):
                if (
                    alert["labels"].get("alertname") == "ScholarOpsPrefectFlowRunFailed"
                    and alert["annotations"].get("flow_run_id") == doomed
                ):
                    found.append(alert)
        return found

    (alert, *_) = _wait("the Crashed alert at the webhook sink", alerted, 120, 2)
    assert alert["labels"]["state"] == "Crashed"

    # -- the next run succeeds (the dead run's slot came back with its lease) --------------
    after = running.run_backup("scale-after")
    backups.add(after)
    run = running.wait_state(after, TERMINAL, 300)
    assert run["state_type"] == "COMPLETED", run["state"]["message"]
    sampler.stop.set()
    sampler.join(10)
    assert sampler.error is None, sampler.error
    assert sampler.most() == 1, f"more dumps at once than the limit (1): {sampler.crowded[:3]}"

    # -- the repository checks clean: the dead run left no half snapshot ------------------
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_API_URL": running.state.urls["prefect_api"],
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "SCHOLAR_OPS_CONFIG_DIR": str(running.state.home / "config"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "scholar_ops.cli", "check"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "damaged" not in proc.stdout + proc.stderr


def test_down_leaves_no_process(running: Running) -> None:
    pids = [running.worker_pid(w) for w in running.workers()]
    running.stack.down()
    assert marked_processes(running.state.home) == []
    for pid in [*pids, *running.state.processes.values()]:
        stat = proc_stat(pid)
        assert stat is None or stat[0] == "Z", f"pid {pid} still runs"
