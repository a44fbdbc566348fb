"""The stack's background processes: started detached, recorded, recognised, stopped.

A process is recorded by its pid *and* its start time (field 22 of /proc/<pid>/stat,
clock ticks since boot): a pid the kernel gave to another program since is never
taken for ours. Each one is started in a session of its own (``start_new_session``),
so its process group id is its pid and stopping it stops its children too. Every
process carries ``SCHOLAR_OPS_STACK_HOME=<home>`` in its environment (children
inherit it): ``marked_processes`` finds what is left of a stack (a flow run a worker
started, say) and nothing else.

Plain Python, no Prefect import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from scholar_ops.vault.errors import ConfigError

MARKER_ENV = "SCHOLAR_OPS_STACK_HOME"


class StackError(ConfigError):
    """The stack cannot start or stop: one line naming the thing and what to do."""


@dataclass
class ProcessRecord:
    """One process the stack started (state.json ``processes``)."""

    name: str
    pid: int
    start_time: int  # /proc/<pid>/stat field 22
    port: int | None = None
    log: str | None = None
    #: how to stop it: signals to the process group in order, each followed by a wait
    stop_signals: tuple[str, ...] = ("SIGTERM", "SIGKILL")
    #: the group to signal (its own session by default: the pid)
    pgid: int | None = None

    def to_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc["stop_signals"] = list(self.stop_signals)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, object]) -> ProcessRecord:
        fields = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        if "stop_signals" in fields:
            fields["stop_signals"] = tuple(fields["stop_signals"])  # type: ignore[arg-type]
        return cls(**fields)  # type: ignore[arg-type]

    def alive(self) -> bool:
        """The very process recorded still runs (same pid, same start time, not a zombie)."""
        stat = proc_stat(self.pid)
        return stat is not None and stat[1] == self.start_time and stat[0] != "Z"


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, start time, process group) of ``pid`` from /proc, None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19]), int(fields[2])


def start_time(pid: int) -> int | None:
    stat = proc_stat(pid)
    return None if stat is None else stat[1]


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def marked_processes(home: Path) -> list[int]:
    """Pids of the running processes whose environment names this stack's home."""
    wanted = str(home)
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        if environ_of(int(entry.name)).get(MARKER_ENV) == wanted:
            stat = proc_stat(int(entry.name))
            if stat is not None and stat[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on host:port (we could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    env: Mapping[str, str],
    port: int | None = None,
    stop_signals: tuple[str, ...] = ("SIGTERM", "SIGKILL"),
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start ``argv`` in a session of its own, output appended to ``log``; not waited for."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    st = start_time(proc.pid)
    record = ProcessRecord(
        name=name,
        pid=proc.pid,
        start_time=st if st is not None else -1,
        port=port,
        log=str(log),
        stop_signals=stop_signals,
        pgid=proc.pid,
    )
    return proc, record


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    interval: float = 0.25,
) -> None:
    """Poll ``check`` until True; StackError naming ``what`` (and the log) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise StackError(
                f"{what} exited with status {proc.returncode} while starting: see {log}"
                + _tail(log)
            )
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            where = f": see {log}" + _tail(log) if log else ""
            raise StackError(f"{what} was not ready within {timeout:.0f} s{where}")
        time.sleep(interval)


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None:
        return ""
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n  " + "\n  ".join(text) if text else ""


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat[2] == pgid and stat[0] != "Z":
                members.append(int(entry.name))
    return members


def stop_record(record: ProcessRecord, timeout: float) -> bool:
    """Stop the recorded process and its group: each of its stop signals in turn, waiting
    up to ``timeout`` (SIGKILL: 10 s) for the group to empty. True when it had been
    running. A pid that now belongs to another program is left alone."""
    if not record.alive():
        return False
    pgid = record.pgid if record.pgid is not None else record.pid
    own_group = (proc_stat(record.pid) or ("", 0, -1))[2] == pgid
    for name in record.stop_signals:
        sig = getattr(signal, name)
        try:
            if own_group:
                os.killpg(pgid, sig)
            else:
                os.kill(record.pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            os.kill(record.pid, sig)
        wait = 10.0 if sig == signal.SIGKILL else timeout
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not record.alive() and not (own_group and _group_members(pgid)):
                return True
            time.sleep(0.1)
    return True


def stop_pids(pids: Sequence[int], timeout: float) -> list[int]:
    """SIGTERM, then SIGKILL after ``timeout``, to each pid (recorded with its start time
    first, so a reused pid is not signalled); the pids that were signalled."""
    records = [(pid, start_time(pid)) for pid in pids]
    signalled = []
    for pid, st in records:
        if st is not None and start_time(pid) == st:
            try:
                os.kill(pid, signal.SIGTERM)
                signalled.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
        start_time(p) == st and (proc_stat(p) or ("Z",))[0] != "Z" for p, st in records
    ):
        time.sleep(0.1)
    for pid, st in records:
        if st is not None and start_time(pid) == st:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return signalled
