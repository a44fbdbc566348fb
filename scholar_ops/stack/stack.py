"""``Stack``: the whole system on one machine, started in the background and stopped again.

See the package docstring for what runs and where things go.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from blocks.names import DEFAULT_REPOSITORY_BLOCK
from scholar_ops.project import project_root
from scholar_ops.sources.process import ServerStartError, find_program, free_port
from scholar_ops.stack.procs import (
    MARKER_ENV,
    ProcessRecord,
    StackError,
    listening,
    marked_processes,
    port_free,
    spawn,
    start_time,
    stop_pids,
    stop_record,
    wait_until,
)

STATE_FILE = "state.json"
WORK_POOL = "scholar-ops"
#: how a worker is stopped: Prefect's process worker ignores SIGTERM (docker/ says the same:
#: the compose service's stop_signal and the image's STOPSIGNAL; tests/docker holds them equal)
WORKER_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGKILL")
HEALTH_MODULE = "scholar_ops.monitoring.health.service"
#: the health service's tokens: files <home>/secrets/NAME (mode 0600), made by the first up
HEALTH_TOKEN = "health-token"
HEALTH_OPERATOR_TOKEN = "health-operator-token"


#: the second copy (deployments.yaml's copy-snapshots destination): a repository of its own
#: in <home>/offsite-repository, with its own master key (a Secret block and <home>/offsite.key)
OFFSITE_BLOCK = "scholar-ops-offsite"
OFFSITE_KEY_SECRET = "scholar-ops-offsite-key"


def repository_paths(home: Path) -> dict[str, Path]:
    """The stack's repositories by block: the backups' and the second copy's."""
    return {
        DEFAULT_REPOSITORY_BLOCK: Path(home) / "repository",
        OFFSITE_BLOCK: Path(home) / "offsite-repository",
    }


def health_token_path(home: Path) -> Path:
    """The file holding the health service's read token (Prometheus scrapes with it)."""
    return Path(home) / "secrets" / HEALTH_TOKEN


def worker_argv(prefect: str, name: str) -> list[str]:
    """The process worker's command (the compose file's prefect-worker runs the same)."""
    return [prefect, "worker", "start", "--pool", WORK_POOL, "--type", "process", "--name", name]


def health_argv(python: str, host: str, port: int) -> list[str]:
    """The health service's command (the compose file's monitoring-service runs the same)."""
    return [python, "-m", HEALTH_MODULE, "--host", host, "--port", str(port)]


#: the port each service gets when it is free (the tools' usual ones)
DEFAULT_PORTS: dict[str, int] = {
    "prefect": 4200,
    "prometheus": 9090,
    "alertmanager": 9093,
    "pushgateway": 9091,
    "health": 8080,
    "app": 8000,
    "chroma": 8001,
    "notifications": 8025,
    "smtp": 2525,
    "postgres": 5432,
    "redis": 6379,
}
#: state.json process names, in start order (workers after the Prefect server)
SERVICES = (
    "notifications",
    "pushgateway",
    "alertmanager",
    "prometheus",
    "postgres",
    "redis",
    "chroma",
    "app",
    "health",
    "prefect",
)
#: the Debian package of each binary the stack needs
BINARIES = {
    "prometheus": ("/usr/bin/prometheus", "prometheus"),
    "prometheus-alertmanager": ("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager"),
    "prometheus-pushgateway": ("/usr/bin/prometheus-pushgateway", "prometheus-pushgateway"),
    "redis-server": ("/usr/bin/redis-server", "redis-server"),
}
APP_DATABASE = "aischolar_app"
SAMPLE_DATABASE = "aischolar"
APP_REDIS_DB = 2
TEST_USER = "sotest-operator"
TRIGGERED = ("full-backup/full-backup", "metrics-export/metrics-export")
_TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class StackState:
    """What ``up`` returns: where the stack lives, its ports, URLs and processes."""

    home: Path
    ports: dict[str, int]
    urls: dict[str, str]
    processes: dict[str, int]  # name -> pid
    postgres_data: Path | None = None
    #: what this call started (empty when everything was running)
    started: list[str] = field(default_factory=list, compare=False)
    #: flow run ids this call triggered, by deployment
    runs: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass
class Launch:
    """How to start one service: its command line, environment and directory."""

    argv: list[str]
    env: dict[str, str] | None = None  # None: the stack's environment
    cwd: Path | None = None  # None: the home


def urls_for(ports: Mapping[str, int]) -> dict[str, str]:
    def u(key: str) -> str:
        return f"http://127.0.0.1:{ports[key]}"

    return {
        "prefect_ui": u("prefect"),
        "prefect_api": u("prefect") + "/api",
        "prometheus": u("prometheus"),
        "alertmanager": u("alertmanager"),
        "pushgateway": u("pushgateway"),
        "health": u("health"),
        "app": u("app"),
        "notifications": u("notifications"),
        "chroma": u("chroma"),
        "smtp": f"127.0.0.1:{ports['smtp']}",
        "postgres": f"postgresql://postgres@127.0.0.1:{ports['postgres']}/{SAMPLE_DATABASE}",
        "redis": f"redis://127.0.0.1:{ports['redis']}/0",
    }


def free_ports() -> dict[str, int]:
    """A distinct free loopback port for every service (tests: a stack beside others)."""
    ports: dict[str, int] = {}
    while len(ports) < len(DEFAULT_PORTS):
        port = free_port()
        if port not in ports.values():
            ports[list(DEFAULT_PORTS)[len(ports)]] = port
    return ports


def _http_ok(url: str, timeout: float = 3) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Stack:
    """The stack kept in ``home`` (state.json, logs/, data). See the package docstring."""

    def __init__(
        self,
        home: Path,
        *,
        workers: int = 1,
        ports: dict[str, int] | None = None,
        documents: int = 1000,
        scale: float = 0.25,
        trigger_runs: bool = True,
        say: Callable[[str], None] | None = None,
    ) -> None:
        if workers < 0:
            raise StackError(f"workers={workers}: give 0 or more process workers")
        unknown = set(ports or {}) - set(DEFAULT_PORTS)
        if unknown:
            raise StackError(
                f"unknown port name(s) {sorted(unknown)}: one of {sorted(DEFAULT_PORTS)}"
            )
        self.home = Path(home).expanduser().resolve()
        self.workers = workers
        self.requested_ports = dict(ports or {})
        self.documents = documents
        self.scale = scale
        self.trigger_runs = trigger_runs
        self.say = say or (lambda line: print(line, flush=True))
        self.project = project_root()
        self.logs = self.home / "logs"
        self.bin = Path(sys.executable).parent

    # -- state ----------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    def _load(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {"version": 1, "ports": {}, "processes": {}, "done": {}}
        except ValueError as e:
            raise StackError(
                f"{self.state_path} is not valid JSON ({e}): run `down` and remove it"
            ) from None
        doc.setdefault("ports", {})
        doc.setdefault("processes", {})
        doc.setdefault("done", {})
        return dict(doc)

    def _save(self, state: dict[str, Any]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.state_path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / ".lock").open("w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError(
                    f"another `up` or `down` is running on {self.home}: wait for it to finish"
                ) from None
            yield

    @staticmethod
    def _records(state: Mapping[str, Any]) -> dict[str, ProcessRecord]:
        return {n: ProcessRecord.from_json(d) for n, d in state.get("processes", {}).items()}

    # -- environment ----------------------------------------------------------------------

    def _env(self, ports: Mapping[str, int], **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_PROFILE")}
        env.update(
            {
                MARKER_ENV: str(self.home),
                "PREFECT_HOME": str(self.home / "prefect"),
                "PREFECT_API_URL": f"http://127.0.0.1:{ports['prefect']}/api",
                "PREFECT_UI_URL": f"http://127.0.0.1:{ports['prefect']}",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "ANONYMIZED_TELEMETRY": "False",
                "DO_NOT_TRACK": "1",
                "SCHOLAR_OPS_HOME": str(self.project),
                "SCHOLAR_OPS_CONFIG_DIR": str(self.home / "config"),
            }
        )
        # flow runs send a heartbeat every 30 s (Prefect's minimum), so the automation that
        # marks runs of a dead worker Crashed sees them (a value set outside wins)
        env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")
        env.update(extra)
        return env

    # -- ports ----------------------------------------------------------------------------

    def _ports(self, state: dict[str, Any], records: Mapping[str, ProcessRecord]) -> dict[str, int]:
        chosen: dict[str, int] = {}
        taken: set[int] = set()
        for key, default in DEFAULT_PORTS.items():
            if key in state["ports"]:
                port = int(state["ports"][key])
                if key in self.requested_ports and self.requested_ports[key] != port:
                    raise StackError(
                        f"{key} already has port {port} in {self.state_path}: run `down` and "
                        "remove state.json to change it"
                    )
            elif key in self.requested_ports:
                port = int(self.requested_ports[key])
            else:
                port = default if port_free(default) and default not in taken else free_port()
                while port in taken:
                    port = free_port()
            taken.add(port)
            chosen[key] = port
        for key, port in chosen.items():
            owner = records.get("notifications" if key == "smtp" else key)
            if owner is not None and owner.alive():
                continue  # ours, running
            if not port_free(port):
                raise StackError(
                    f"port {port} for {key} is taken by another process: stop it, or start the "
                    "stack in another home (a new home picks free ports)"
                )
        state["ports"] = chosen
        return chosen

    # -- up -------------------------------------------------------------------------------

    def up(self, timeout: float = 600, *, wait: bool = False) -> StackState:
        """Start what is not running (see the package docstring); returns the state."""
        deadline = time.monotonic() + timeout
        with self._locked():
            self._check_binaries()
            state = self._load()
            state["home"] = str(self.home)
            state["project"] = str(self.project)
            records = self._records(state)
            ports = self._ports(state, records)
            self._save(state)
            started: list[str] = []
            for d in ("logs", "prefect", "config", "secrets", "notifications"):
                (self.home / d).mkdir(parents=True, exist_ok=True)
            (self.home / "secrets").chmod(0o700)

            def remaining() -> float:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StackError(f"up did not finish within {timeout:.0f} s: see {self.logs}")
                return left

            for name in SERVICES:
                if self._healthy(name, records.get(name), ports):
                    continue
                old = records.pop(name, None)
                if old is not None:
                    stop_record(old, 15)
                self.say(f"starting {name}")
                record = self._start(name, ports, state, min(remaining(), 180))
                records[name] = record
                state["processes"][name] = record.to_json()
                self._save(state)
                started.append(name)
                if name == "chroma" and not state["done"].get("sample"):
                    self._load_sample(ports, state)
            self._prefect_setup(ports, state, remaining)
            started += self._ensure_workers(ports, state, records, remaining)
            runs: dict[str, str] = {}
            if self.trigger_runs and not state["done"].get("triggered"):
                runs = self._trigger(ports)
                state["done"]["triggered"] = runs
                self._save(state)
            if wait and runs:
                self._wait_runs(ports, runs, remaining())
            return self._state(state, started, runs)

    def _state(
        self, state: Mapping[str, Any], started: list[str], runs: dict[str, str]
    ) -> StackState:
        ports = {k: int(v) for k, v in state["ports"].items()}
        pg = state.get("postgres_root")
        return StackState(
            home=self.home,
            ports=ports,
            urls=urls_for(ports),
            processes={n: int(d["pid"]) for n, d in state["processes"].items()},
            postgres_data=Path(pg) / "data" if pg else None,
            started=started,
            runs=runs,
        )

    def _check_binaries(self) -> None:
        from scholar_ops.sources.postgres.cluster import find_pg_bin_dir

        try:
            for name, (path, package) in BINARIES.items():
                find_program(name, package=package, candidates=[path])
        except ServerStartError as e:
            raise StackError(str(e)) from None
        try:
            find_pg_bin_dir()
        except RuntimeError as e:
            raise StackError(f"{e} (Debian: apt-get install postgresql)") from None
        if not (self.bin / "prefect").exists():
            raise StackError(f"{self.bin / 'prefect'} is missing: run `make deps` (uv sync)")

    def _healthy(self, name: str, record: ProcessRecord | None, ports: Mapping[str, int]) -> bool:
        if record is None or not record.alive():
            return False
        return self._ready(name, ports)

    def _ready(self, name: str, ports: Mapping[str, int]) -> bool:
        urls = urls_for(ports)
        if name == "notifications":
            return _http_ok(urls["notifications"] + "/-/healthy") and listening(ports["smtp"])
        if name in ("pushgateway", "alertmanager", "prometheus"):
            return _http_ok(urls[name] + "/-/ready")
        if name == "chroma":
            return _http_ok(urls["chroma"] + "/api/v2/heartbeat")
        if name == "app":
            return _http_ok(urls["app"] + "/health/live")
        if name == "health":
            return _http_ok(urls["health"] + "/livez")
        if name == "prefect":
            return _http_ok(urls["prefect_api"] + "/health")
        if name == "redis":
            return self._redis_ping(ports["redis"])
        if name == "postgres":
            return listening(ports["postgres"])
        return True

    @staticmethod
    def _redis_ping(port: int) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=3)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _spawn_ready(
        self,
        name: str,
        argv: list[str],
        ports: Mapping[str, int],
        timeout: float,
        *,
        port: int | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signals: tuple[str, ...] = ("SIGTERM", "SIGKILL"),
    ) -> ProcessRecord:
        log = self.logs / f"{name}.log"
        proc, record = spawn(
            name,
            argv,
            cwd=cwd or self.home,
            log=log,
            env=env or self._env(ports),
            port=port,
            stop_signals=stop_signals,
        )
        try:
            wait_until(name, lambda: self._ready(name, ports), timeout=timeout, proc=proc, log=log)
        except BaseException:  # not ready, or interrupted: not left running unrecorded
            stop_record(record, 10)
            raise
        return record

    # -- the services ---------------------------------------------------------------------

    def _start(
        self, name: str, ports: Mapping[str, int], state: dict[str, Any], timeout: float
    ) -> ProcessRecord:
        if name == "postgres":
            return self._start_postgres(ports, state, timeout)
        launch: Launch = getattr(self, f"_launch_{name}")(ports, state)
        record = self._spawn_ready(
            name,
            launch.argv,
            ports,
            max(timeout, 120) if name == "prefect" else timeout,
            port=ports[name],
            env=launch.env,
            cwd=launch.cwd,
        )
        if name == "app":
            self._test_user(ports)
        return record

    def _launch_notifications(self, ports: Mapping[str, int], state: dict[str, Any]) -> Launch:
        argv = [
            sys.executable, "-m", "scholar_ops.testbed.sinks", "--dir",
            str(self.home / "notifications"), "--http-port", str(ports["notifications"]),
            "--smtp-port", str(ports["smtp"]),
        ]  # fmt: skip
        return Launch(argv)

    def _launch_pushgateway(self, ports: Mapping[str, int], state: dict[str, Any]) -> Launch:
        from scholar_ops.testbed.pushgateway import find_pushgateway, pushgateway_argv

        root = self.home / "pushgateway"
        root.mkdir(parents=True, exist_ok=True)
        argv = pushgateway_argv(
            find_pushgateway(),
            f"127.0.0.1:{ports['pushgateway']}",
            root / "pushgateway.data",
            log_level="warn",
        )
        return Launch(argv)

    def _launch_alertmanager(self, ports: Mapping[str, int], state: dict[str, Any]) -> Launch:
        from scholar_ops.testbed.alerting import render_alertmanager_config
        from scholar_ops.testbed.prometheus import ALERTMANAGER, alertmanager_args

        root = self.home / "alertmanager"
        root.mkdir(parents=True, exist_ok=True)
        sink = f"http://127.0.0.1:{ports['notifications']}"
        config = root / "alertmanager.yml"
        config.write_text(
            render_alertmanager_config(
                f"127.0.0.1:{ports['smtp']}",
                sink + "/alertmanager",
                sink + "/slack",
                "10s",
                "1m",
                "4h",
            )
        )
        argv = [
            ALERTMANAGER,
            *alertmanager_args(root, config, ports["alertmanager"]),
            f"--web.external-url=http://127.0.0.1:{ports['alertmanager']}",  # its links
        ]
        return Launch(argv)

    def _launch_prometheus(self, ports: Mapping[str, int], state: dict[str, Any]) -> Launch:
        from scholar_ops.testbed.alerting import default_rule_files, render_prometheus_config
        from scholar_ops.testbed.prometheus import PROMETHEUS, prometheus_args

        root = self.home / "prometheus"
        root.mkdir(parents=True, exist_ok=True)
        config = root / "prometheus.yml"
        config.write_text(
            render_prometheus_config(
                f"127.0.0.1:{ports['pushgateway']}",
                f"127.0.0.1:{ports['alertmanager']}",
                f"127.0.0.1:{ports['health']}",
                "15s",
                "15s",
                default_rule_files(),
                prometheus=f"127.0.0.1:{ports['prometheus']}",
                health_credentials_file=self._secret_file(HEALTH_TOKEN),
            )
        )
        argv = [
            PROMETHEUS,
            *prometheus_args(root, config, ports["prometheus"]),
            f"--web.external-url=http://127.0.0.1:{ports['prometheus']}",  # alerts' links
        ]
        return Launch(argv)

    def _postgres_root(self, state: dict[str, Any]) -> Path:
        """Where PostgreSQL's files are: <home>/postgres, or when the server runs as the
        postgres user (we are root) and that user cannot enter <home>, a directory of
        the stack's own under /var/tmp (persistent across reboots), linked from
        <home>/postgres."""
        from scholar_ops.sources.postgres.cluster import reachable_root

        if state.get("postgres_root"):
            return Path(state["postgres_root"])
        preferred = self.home / "postgres"
        if reachable_root(preferred) == preferred:
            root = preferred
        else:
            digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
            base = Path("/var/tmp") / f"scholar-ops-stack-{digest}"
            base.mkdir(mode=0o755, exist_ok=True)
            root = base / "postgres"
            if not preferred.is_symlink() and not preferred.exists():
                preferred.symlink_to(root)
        state["postgres_root"] = str(root)
        self._save(state)
        return root

    def _start_postgres(
        self, ports: Mapping[str, int], state: dict[str, Any], timeout: float
    ) -> ProcessRecord:
        from scholar_ops.sources.postgres.cluster import (
            PG_SUPERUSER,
            check_reachable,
            find_pg_bin_dir,
            server_os_user,
        )

        bin_dir = find_pg_bin_dir()
        prefix, uid, gid = server_os_user()
        root = self._postgres_root(state)
        data, sock, log = root / "data", root / "sock", root / "postgres.log"
        root.mkdir(parents=True, exist_ok=True)
        sock.mkdir(exist_ok=True)
        if uid is not None and gid is not None:
            for d in (root, sock):
                os.chown(d, uid, gid)
            try:
                check_reachable(root, uid, gid)
            except RuntimeError as e:
                raise StackError(str(e)) from None
        os.chmod(root, 0o755)
        env = self._env(ports)
        if not (data / "PG_VERSION").exists():
            self.say(f"initdb {data}")
            if data.exists():
                shutil.rmtree(data)  # a half-made cluster from an interrupted first up
            self._run(
                [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", PG_SUPERUSER,
                 "--auth=trust", "--encoding=UTF8", "--locale=C"],
                "initdb", env=env, cwd=root, timeout=min(timeout, 180),
            )  # fmt: skip
        if (data / "postmaster.pid").exists():
            # left by a crash or a kill: pg_ctl start refuses a live one, removes a stale one
            pass
        opts = f"-p {ports['postgres']} -k {sock} -c listen_addresses=127.0.0.1"
        self._run(
            [*prefix, str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
             "-t", str(int(min(timeout, 120))), "-o", opts],
            "postgres", env=env, cwd=root, timeout=min(timeout, 150),
        )  # fmt: skip
        link = self.logs / "postgres.log"
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to(log)
        pid = int((data / "postmaster.pid").read_text().split()[0])
        st = start_time(pid)
        if st is None:
            raise StackError(f"PostgreSQL exited right after it started: see {log}")
        wait_until("postgres", lambda: listening(ports["postgres"]), timeout=30, log=log)
        # SIGINT: PostgreSQL's fast shutdown; only the postmaster is signalled (pgid -1)
        return ProcessRecord(
            "postgres", pid, st, ports["postgres"], str(log), ("SIGINT", "SIGQUIT", "SIGKILL"), -1
        )

    def _launch_redis(self, ports: Mapping[str, int], state: dict[str, Any]) -> Launch:
        from scholar_ops.sources.redis.server import find_redis_server

        root = self.home / "redis"
        root.mkdir(parents=True, exist_ok=True)
        argv = [
            find_redis_server(), "--port", str(ports["redis"]), "--bind", "127.0.0.1",
            "--dir", str(root), "--dbfilename", "dump.rdb", "--save", "300 1 60 1000",
            "--appendonly", "yes", "--daemonize", "no", "--logfile", "",
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        return Launch(argv)

    def _launch_chroma(self, ports: Mapping[str, int], state: dict[str, Any]) -> Launch:
        from scholar_ops.testbed.chroma import chroma_exe, chroma_run_argv

        root = self.home / "chroma"
        root.mkdir(parents=True, exist_ok=True)
        argv = chroma_run_argv(chroma_exe(), root, ports["chroma"])
        env = self._env(ports, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        return Launch(argv, env)

    def _secret_file(self, name: str) -> Path:
        """The file of the secret ``name`` (made when missing, see _secret)."""
        self._secret(name)
        return self.home / "secrets" / name

    def _secret(self, name: str) -> str:
        """A generated secret kept in <home>/secrets/NAME (mode 0600), made once."""
        path = self.home / "secrets" / name
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            value = secrets.token_urlsafe(18)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value + "\n")
            return value

    def _app_urls(self, ports: Mapping[str, int]) -> tuple[str, str]:
        return (
            f"postgresql://postgres@127.0.0.1:{ports['postgres']}/{APP_DATABASE}",
            f"redis://127.0.0.1:{ports['redis']}/{APP_REDIS_DB}",
        )

    def _launch_app(self, ports: Mapping[str, int], state: dict[str, Any]) -> Launch:
        database_url, redis_url = self._app_urls(ports)
        workdir = self.home / "aischolar" / "app"
        workdir.mkdir(parents=True, exist_ok=True)
        env = self._env(
            ports,
            AISCHOLAR_DATABASE_URL=database_url,
            AISCHOLAR_REDIS_URL=redis_url,
            AISCHOLAR_CHROMA=f"http://127.0.0.1:{ports['chroma']}",
            AISCHOLAR_ADMIN_TOKEN=self._secret("aischolar-admin-token"),
        )
        argv = [
            sys.executable, "-m", "scholar_ops.aischolar", "--host", "127.0.0.1",
            "--port", str(ports["app"]),
        ]  # fmt: skip
        return Launch(argv, env, workdir)

    def _test_user(self, ports: Mapping[str, int]) -> None:
        password = self._secret("aischolar-test-user")
        r = httpx.post(
            f"http://127.0.0.1:{ports['app']}/api/auth/register",
            json={"username": TEST_USER, "password": password},
            timeout=30,
        )
        if r.status_code not in (200, 201, 409):
            raise StackError(
                f"the AI Scholar app refused to register its test user (HTTP {r.status_code}): "
                f"see {self.logs / 'app.log'}"
            )

    def _launch_health(self, ports: Mapping[str, int], state: dict[str, Any]) -> Launch:
        database_url, redis_url = self._app_urls(ports)
        env = self._env(
            ports,
            SCHOLAR_OPS_HEALTH_POSTGRES_DSN=database_url,
            SCHOLAR_OPS_HEALTH_REDIS_URL=redis_url,
            SCHOLAR_OPS_HEALTH_CHROMA_URL=f"http://127.0.0.1:{ports['chroma']}",
            SCHOLAR_OPS_HEALTH_BACKEND_URL=f"http://127.0.0.1:{ports['app']}/health/live",
            SCHOLAR_OPS_HEALTH_DISK_PATHS=str(self.home),
            SCHOLAR_OPS_HEALTH_TOKEN_FILE=str(self._secret_file(HEALTH_TOKEN)),
            SCHOLAR_OPS_HEALTH_OPERATOR_TOKEN_FILE=str(self._secret_file(HEALTH_OPERATOR_TOKEN)),
        )
        argv = [
            *health_argv(sys.executable, "127.0.0.1", ports["health"]),
            "--log-level",
            "warning",
        ]
        return Launch(argv, env)

    def _launch_prefect(self, ports: Mapping[str, int], state: dict[str, Any]) -> Launch:
        argv = [
            str(self.bin / "prefect"), "server", "start", "--host", "127.0.0.1",
            "--port", str(ports["prefect"]), "--analytics-off",
        ]  # fmt: skip
        env = self._env(ports)
        # SQLite on a busy machine: wait for the lock rather than answer 503 at once
        env.setdefault("PREFECT_SERVER_DATABASE_TIMEOUT", "60")
        env.setdefault("PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT", "30")
        url = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL")
        state["prefect_database"] = (
            "PREFECT_API_DATABASE_CONNECTION_URL (from the environment)"
            if url
            else str(self.home / "prefect" / "prefect.db")
        )
        return Launch(argv, env, self.home)

    # -- sample data ----------------------------------------------------------------------

    def _load_sample(self, ports: Mapping[str, int], state: dict[str, Any]) -> None:
        """The AI Scholar sample, once: PostgreSQL (database aischolar), Redis (databases
        0 and 1), Chroma (collections documents and queries), the uploads and the
        configuration directory; a load cut short is done again from scratch."""
        import chromadb
        import psycopg
        from chromadb.config import Settings
        from psycopg import sql

        from scholar_ops.sources.redis.server import RedisServer
        from scholar_ops.testbed.sample import aischolar, appdata

        self.say(f"loading the AI Scholar sample ({self.documents} documents, scale {self.scale})")
        admin = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            for db in (SAMPLE_DATABASE, APP_DATABASE):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        dsn = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/{SAMPLE_DATABASE}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            aischolar.create_schema(conn)
            aischolar.load_sample(conn, documents=self.documents, seed=2026)
        redis_server = RedisServer(host="127.0.0.1", port=ports["redis"])
        client = redis_server.client()
        try:
            client.flushall()
        finally:
            client.close()
        appdata.load_redis(redis_server, scale=self.scale, seed=2026)
        chroma = chromadb.HttpClient(
            host="127.0.0.1", port=ports["chroma"], settings=Settings(anonymized_telemetry=False)
        )
        for col in chroma.list_collections():
            chroma.delete_collection(col if isinstance(col, str) else col.name)
        appdata.load_chroma(chroma, scale=self.scale, seed=2026)
        uploads = self.home / "aischolar" / "uploads"
        shutil.rmtree(uploads, ignore_errors=True)
        appdata.make_uploads(uploads, scale=self.scale, seed=2026)
        state["done"]["sample"] = True
        self._save(state)

    # -- Prefect: work pool, blocks, deployments, automations, workers, runs ----------------

    def _run(
        self,
        argv: list[str],
        what: str,
        *,
        env: Mapping[str, str],
        cwd: Path,
        timeout: float,
        stdin: str | None = None,
    ) -> str:
        log = self.logs / f"{what}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=dict(env),
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"{what} did not finish within {timeout:.0f} s: see {log}") from None
        with log.open("a") as f:
            f.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n")
            f.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            last = lines[-1] if lines else ""
            raise StackError(f"{what} failed (exit {proc.returncode}): {last} (see {log})")
        return proc.stdout

    def _api(self, ports: Mapping[str, int]) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{ports['prefect']}/api", timeout=30)

    def _request(
        self, ports: Mapping[str, int], method: str, path: str, *, patience: float = 90, **kw: Any
    ) -> httpx.Response:
        """A Prefect API call, retried while the server answers 503 (a busy SQLite
        database: Prefect says "retry") or 5xx, or cannot be reached, for ``patience`` s."""
        deadline = time.monotonic() + patience
        delay = 0.5
        with self._api(ports) as api:
            while True:
                try:
                    r = api.request(method, path, **kw)
                    if r.status_code < 500:
                        return r
                    why = f"HTTP {r.status_code}"
                except httpx.TransportError as e:
                    why = type(e).__name__
                if time.monotonic() + delay > deadline:
                    raise StackError(
                        f"the Prefect API did not answer {method} {path} ({why}) within "
                        f"{patience:.0f} s: see {self.logs / 'prefect.log'}"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 5)

    def _prefect_setup(
        self, ports: Mapping[str, int], state: dict[str, Any], remaining: Callable[[], float]
    ) -> None:
        env = self._env(ports)
        done = state["done"]
        database = self._database_identity()
        if done.get("database") != database:
            # another Prefect database (PREFECT_API_DATABASE_CONNECTION_URL changed): its
            # blocks, deployments and automations are made again; the sample data stays
            for key in ("blocks", "offsite", "deployments", "automations", "triggered"):
                done.pop(key, None)
            done["database"] = database
            self._save(state)
        if self._request(ports, "GET", f"/work_pools/{WORK_POOL}").status_code == 404:
            self.say(f"work pool {WORK_POOL} (process)")
            self._run(
                [str(self.bin / "prefect"), "work-pool", "create", WORK_POOL, "--type",
                 "process"],
                "work-pool", env=env, cwd=self.project, timeout=min(remaining(), 120),
            )  # fmt: skip
        if not done.get("blocks") or not done.get("offsite"):
            # a stack made before the second copy existed gets only its repository
            parts = ["offsite"] if done.get("blocks") else ["primary", "offsite"]
            self.say(
                "blocks (scholar-ops setup, monitoring settings, test plan, second copy)"
                if "primary" in parts
                else "blocks (the second copy's repository)"
            )
            settings = {
                "parts": parts,
                "home": str(self.home),
                "postgres_port": ports["postgres"],
                "database": SAMPLE_DATABASE,
                "pg_user": "postgres",
                "redis_port": ports["redis"],
                "chroma_port": ports["chroma"],
                "chroma_url": f"http://127.0.0.1:{ports['chroma']}",
                "uploads": str(self.home / "aischolar" / "uploads"),
                "config_dir": str(self.home / "aischolar" / "uploads" / "config"),
                "pushgateway_url": f"http://127.0.0.1:{ports['pushgateway']}",
                "app_url": f"http://127.0.0.1:{ports['app']}",
                "test_user": TEST_USER,
                "test_password": self._secret("aischolar-test-user"),
            }
            out = self._run(
                [sys.executable, "-m", "scholar_ops.stack.configure"],
                "blocks", env=env, cwd=self.project, timeout=min(remaining(), 300),
                stdin=json.dumps(settings),
            )  # fmt: skip
            for line in out.splitlines():
                self.say(f"  {line}")
            done["blocks"] = done["offsite"] = True
            self._save(state)
        deployments = self.project / "deployments.yaml"
        if done.get("deployments") != _digest(deployments) or not self._deployed(ports):
            self.say("prefect deploy --all --prefect-file deployments.yaml")
            self._run(
                [str(self.bin / "prefect"), "deploy", "--all", "--prefect-file", str(deployments),
                 "--no-prompt"],
                "deploy", env=env, cwd=self.project, timeout=min(remaining(), 600),
            )  # fmt: skip
            done["deployments"] = _digest(deployments)
            self._save(state)
        automations = self.project / "automations.yaml"
        if done.get("automations") != _digest(automations):
            self.say("scholar-ops automations apply")
            self._run(
                [sys.executable, "-m", "scholar_ops.cli", "automations", "apply", "--file",
                 str(automations), "--alertmanager-url",
                 f"http://127.0.0.1:{ports['alertmanager']}"],
                "automations", env=env, cwd=self.project, timeout=min(remaining(), 300),
            )  # fmt: skip
            done["automations"] = _digest(automations)
            self._save(state)

    def _database_identity(self) -> str:
        """Which database the Prefect server uses, as a digest (the URL may hold a password)."""
        url = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL") or str(
            self.home / "prefect" / "prefect.db"
        )
        return hashlib.sha256(url.encode()).hexdigest()[:16]

    def _deployed(self, ports: Mapping[str, int]) -> bool:
        import yaml

        doc = yaml.safe_load((self.project / "deployments.yaml").read_text())
        wanted = {d["name"] for d in doc.get("deployments", [])}
        r = self._request(ports, "POST", "/deployments/filter", json={"limit": 200})
        r.raise_for_status()
        have = {d["name"] for d in r.json()}
        return wanted <= have

    def _ensure_workers(
        self,
        ports: Mapping[str, int],
        state: dict[str, Any],
        records: dict[str, ProcessRecord],
        remaining: Callable[[], float],
    ) -> list[str]:
        started = []
        database_url, redis_url = self._app_urls(ports)
        env = self._env(
            ports,
            AISCHOLAR_TEST_DATABASE_URL=database_url,
            AISCHOLAR_TEST_REDIS_URL=redis_url,
            PREFECT_LOGGING_LEVEL="INFO",
        )
        names = [f"worker-{i}" for i in range(1, self.workers + 1)]
        for name in [n for n in records if n.startswith("worker-") and n not in names]:
            self.say(f"stopping {name} (more workers than asked for)")
            stop_record(records.pop(name), 20)
            state["processes"].pop(name, None)
            self._save(state)
        for name in names:
            worker_name = f"scholar-ops-stack-{name}"
            record = records.get(name)
            if record is not None and record.alive():
                continue
            self.say(f"starting {name} (pool {WORK_POOL})")
            argv = worker_argv(str(self.bin / "prefect"), worker_name)
            log = self.logs / f"{name}.log"
            proc, record = spawn(
                name,
                argv,
                cwd=self.project,
                log=log,
                env=env,
                stop_signals=WORKER_STOP_SIGNALS,
            )
            try:
                wait_until(
                    name,
                    lambda n=worker_name: self._worker_online(ports, n),  # type: ignore[misc]
                    timeout=min(remaining(), 120),
                    proc=proc,
                    log=log,
                    interval=1,
                )
            except BaseException:  # not online, or interrupted: not left unrecorded
                stop_record(record, 10)
                raise
            records[name] = record
            state["processes"][name] = record.to_json()
            self._save(state)
            started.append(name)
        return started

    def _worker_online(self, ports: Mapping[str, int], name: str) -> bool:
        r = self._request(ports, "POST", f"/work_pools/{WORK_POOL}/workers/filter", json={})
        return any(w["name"] == name and w.get("status") == "ONLINE" for w in r.json())

    def _trigger(self, ports: Mapping[str, int]) -> dict[str, str]:
        runs = {}
        for name in TRIGGERED:
            r = self._request(ports, "GET", f"/deployments/name/{name}")
            r.raise_for_status()
            run = self._request(
                ports,
                "POST",
                f"/deployments/{r.json()['id']}/create_flow_run",
                # a retried request returns the run the first one made
                json={"idempotency_key": f"scholar-ops-stack-first-up-{name}"},
            )
            run.raise_for_status()
            runs[name] = str(run.json()["id"])
            self.say(f"triggered a run of {name} ({runs[name]})")
        return runs

    def _wait_runs(self, ports: Mapping[str, int], runs: Mapping[str, str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(runs)
        while pending:
            for name, run_id in list(pending.items()):
                run = self._request(ports, "GET", f"/flow_runs/{run_id}").json()
                state = (run.get("state") or {}).get("type")
                if state in _TERMINAL:
                    self.say(f"run of {name}: {state}")
                    pending.pop(name)
            if pending and time.monotonic() > deadline:
                raise StackError(
                    f"the triggered runs of {', '.join(pending)} did not finish within "
                    f"{timeout:.0f} s: see the Prefect UI and {self.logs}"
                )
            time.sleep(2)

    # -- down, status -------------------------------------------------------------------

    def down(self, timeout: float = 60) -> list[str]:
        """Stop every process the stack started (workers first, the Prefect server last),
        then anything still carrying the stack's mark (a flow run a worker started); the
        names of what was running. Data stays; a stopped stack is left as it is."""
        if not self.state_path.exists():
            return []
        with self._locked():
            state = self._load()
            records = self._records(state)
            order = sorted(
                records,
                key=lambda n: (
                    0 if n.startswith("worker-") else 2 if n == "prefect" else 1,
                    -SERVICES.index(n) if n in SERVICES else 0,
                ),
            )
            stopped = []
            for name in order:
                if stop_record(records[name], min(timeout, 20)):
                    self.say(f"stopped {name} (pid {records[name].pid})")
                    stopped.append(name)
            leftovers = marked_processes(self.home)
            if leftovers:
                signalled = stop_pids(leftovers, min(timeout, 15))
                for pid in signalled:
                    self.say(f"stopped pid {pid} (started by the stack)")
                stopped += [f"pid {p}" for p in signalled]
            state["processes"] = {}
            self._save(state)
            return stopped

    def status(self) -> dict[str, Any]:
        state = self._load()
        records = self._records(state)
        ports = {k: int(v) for k, v in state["ports"].items()}
        processes = {
            name: {"pid": r.pid, "alive": r.alive(), "port": r.port, "log": r.log}
            for name, r in records.items()
        }
        return {
            "home": str(self.home),
            "running": bool(processes) and all(p["alive"] for p in processes.values()),
            "processes": processes,
            "ports": ports,
            "urls": urls_for(ports) if len(ports) == len(DEFAULT_PORTS) else {},
            "postgres_data": state.get("postgres_root"),
            "prefect_database": state.get("prefect_database"),
            # the backups and their second copy (a block the user made elsewhere: not here)
            "repositories": {
                block: str(path)
                for block, path in repository_paths(self.home).items()
                if path.is_dir()
            },
        }

    def purge(self) -> list[Path]:
        """Remove the stack's data (home, and PostgreSQL's directory when it is elsewhere);
        refuses while anything of it runs. The paths removed."""
        if self.status()["running"] or any(p["alive"] for p in self.status()["processes"].values()):
            raise StackError(f"the stack in {self.home} is running: run `down` first")
        removed = []
        pg = self._load().get("postgres_root")
        if pg and not Path(pg).is_relative_to(self.home):
            shutil.rmtree(Path(pg).parent, ignore_errors=True)
            removed.append(Path(pg).parent)
        if self.home.exists():
            shutil.rmtree(self.home, ignore_errors=True)
            removed.append(self.home)
        return removed
