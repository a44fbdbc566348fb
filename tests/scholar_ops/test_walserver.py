"""The resident WAL archiver (scholar_ops.walserver) behind ``scholar-ops-wal --resident``:
the first push starts it, later pushes go through it with the command's own answers, and
anything wrong with it falls back to pushing in the calling process."""

from __future__ import annotations

import _socket
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scholar_ops.sources.postgres.wal.store import fetch_wal
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage.local import LocalStorage
from scholar_ops.walcmd import EXIT_CONFLICT, EXIT_NOT_ARCHIVED, EXIT_OK
from tests.scholar_ops.sources.postgres.walfake import FakeCluster

KEY = "walserver-test-master-key-0123456789"
SYSID = 6888888888888888888


@pytest.fixture
def env(tmp_path):
    Repository.init(LocalStorage(tmp_path / "repo"), MasterKey.from_string(KEY))
    (tmp_path / "key").write_text(KEY + "\n")
    runtime = tmp_path / "rt"
    yield FakeCluster(tmp_path / "data", SYSID), tmp_path, runtime
    for pid_file in runtime.glob("*.pid") if runtime.exists() else ():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _wal(
    tmp: Path,
    *args: str,
    cwd: Path | None = None,
    repo: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SCHOLAR_OPS_")}
    environ["SCHOLAR_OPS_WAL_RUNTIME_DIR"] = str(tmp / "rt")
    environ.update(extra_env or {})
    argv = [sys.executable, "-m", "scholar_ops.walcmd"]
    argv += ["--repository", repo or str(tmp / "repo"), "--key-file", str(tmp / "key")]
    argv += ["--status-file", str(tmp / "status.json"), "--key-cache-dir", str(tmp / "cache")]
    return subprocess.run(
        [*argv, "--resident", *args],
        cwd=cwd or tmp / "data",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


def _servers(runtime: Path) -> dict[str, int]:
    """Live servers: socket digest -> pid."""
    out = {}
    for pid_file in runtime.glob("*.pid"):
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        out[pid_file.stem] = pid
    return out


def _wait(predicate, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _log(runtime: Path) -> str:
    return "".join(p.read_text() for p in runtime.glob("*.log"))


def test_first_push_starts_it_later_pushes_go_through_it(env):
    pg, tmp, runtime = env
    first, second, third = (pg.segment(1, n) for n in (1, 2, 3))
    proc = _wal(tmp, "push", f"pg_wal/{first.name}")
    assert proc.returncode == EXIT_OK and proc.stderr == ""
    assert _wait(lambda: len(_servers(runtime)) == 1)
    assert (runtime.stat().st_mode & 0o777) == 0o700
    (digest,) = _servers(runtime)
    assert (runtime / f"{digest}.sock").stat().st_mode & 0o777 == 0o600
    # From another directory, with a relative repository path: the same server.
    proc = _wal(tmp, "push", str(second), cwd=tmp, repo="repo")
    assert proc.returncode == EXIT_OK, proc.stderr
    proc = _wal(tmp, "push", f"pg_wal/{third.name}")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert list(_servers(runtime)) == [digest]
    log = _log(runtime)
    assert f"push {second}: exit 0" in log and f"push {third}: exit 0" in log
    repo = Repository.open(LocalStorage(tmp / "repo"), MasterKey.from_string(KEY))
    (tmp / "out").mkdir()
    for seg in (first, second, third):  # stored by the server, byte for byte
        assert fetch_wal(repo, seg.name, tmp / "out" / seg.name, system_id=SYSID)
        assert (tmp / "out" / seg.name).read_bytes() == seg.read_bytes()
    status = json.loads((tmp / "status.json").read_text())["push"]
    assert (status["successes"], status["failures"]) == (3, 0)

    proc = _wal(tmp, "stop-resident", cwd=tmp)
    assert proc.returncode == 0 and "stopped the resident archiver" in proc.stdout
    assert _wait(lambda: not _servers(runtime))
    assert not list(runtime.glob("*.sock"))


def test_its_answers_are_the_commands_own(env):
    pg, tmp, runtime = env
    seg = pg.segment(1, 4)
    assert _wal(tmp, "push", f"pg_wal/{seg.name}").returncode == EXIT_OK
    assert _wait(lambda: len(_servers(runtime)) == 1)
    pg.segment(1, 4)  # different content under the same name
    proc = _wal(tmp, "push", f"pg_wal/{seg.name}")
    assert proc.returncode == EXIT_CONFLICT
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scholar-ops-wal: push ")
    assert seg.name in lines[0] and "a different file is already archived" in lines[0]
    assert "exit 3" in _log(runtime)  # it was the server that answered
    status = json.loads((tmp / "status.json").read_text())["push"]
    assert status["last_failure"]["exit_code"] == EXIT_CONFLICT


def test_a_request_for_other_settings_is_refused(env):
    pg, tmp, runtime = env
    assert _wal(tmp, "push", str(pg.segment(1, 5))).returncode == EXIT_OK
    assert _wait(lambda: len(_servers(runtime)) == 1)
    (digest,) = _servers(runtime)
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(runtime / f"{digest}.sock"))
    s.sendall(b"\0".join((b"SOWR1", b"0" * 64, b"push", str(pg.segment(1, 6)).encode())))
    s.shutdown(_socket.SHUT_WR)
    answer = s.recv(4096)
    s.close()
    assert answer.startswith(b"2\t") and b"other settings" in answer
    assert not any(p.name.endswith("06") for p in (tmp / "repo" / "wal").rglob("*"))
    # Other settings (here another environment) get their own server.
    proc = _wal(tmp, "push", str(pg.segment(1, 7)), extra_env={"SCHOLAR_OPS_EXTRA": "1"})
    assert proc.returncode == EXIT_OK
    assert _wait(lambda: len(_servers(runtime)) == 2)


def test_a_dead_server_or_a_bad_runtime_directory_costs_only_time(env):
    pg, tmp, runtime = env
    assert _wal(tmp, "push", str(pg.segment(1, 8))).returncode == EXIT_OK
    assert _wait(lambda: len(_servers(runtime)) == 1)
    ((digest, pid),) = _servers(runtime).items()
    os.kill(pid, signal.SIGKILL)  # its socket stays behind
    assert _wait(lambda: not _servers(runtime))
    assert (runtime / f"{digest}.sock").exists()
    proc = _wal(tmp, "push", str(pg.segment(1, 9)))
    assert proc.returncode == EXIT_OK and proc.stderr == ""
    assert _wait(lambda: len(_servers(runtime)) == 1)  # a new one, on the same socket name
    assert _servers(runtime)[digest] != pid
    _wal(tmp, "stop-resident")
    assert _wait(lambda: not _servers(runtime))

    runtime.chmod(0o755)  # not private: no server, the push happens here, and says so
    proc = _wal(tmp, "push", str(pg.segment(1, 10)))
    assert proc.returncode == EXIT_OK
    assert "resident archiver did not start" in proc.stderr and "0700" in proc.stderr
    assert not _servers(runtime)
    status = json.loads((tmp / "status.json").read_text())["push"]
    assert (status["successes"], status["failures"]) == (3, 0)


def test_it_exits_when_idle(env):
    pg, tmp, runtime = env
    proc = _wal(
        tmp, "push", str(pg.segment(1, 11)), extra_env={"SCHOLAR_OPS_WAL_IDLE_SECONDS": "1"}
    )
    assert proc.returncode == EXIT_OK
    assert _wait(lambda: len(_servers(runtime)) == 1)
    assert _wait(lambda: not _servers(runtime), seconds=20)
    assert "idle for 1 s: exiting" in _log(runtime)
    assert not list(runtime.glob("*.sock"))


def test_a_push_through_it_loads_nothing_heavy(env):
    pg, tmp, runtime = env
    assert _wal(tmp, "push", str(pg.segment(1, 12))).returncode == EXIT_OK
    assert _wait(lambda: len(_servers(runtime)) == 1)
    seg = pg.segment(1, 13)
    code = (
        "import sys\n"
        "from scholar_ops import walcmd\n"
        f"rc = walcmd.main(['--repository', {str(tmp / 'repo')!r}, '--key-file', "
        f"{str(tmp / 'key')!r}, '--status-file', {str(tmp / 'status.json')!r}, "
        f"'--key-cache-dir', {str(tmp / 'cache')!r}, '--resident', 'push', {str(seg)!r}])\n"
        "heavy = ['argparse', 'json', 'zstandard', 'cryptography', 'scholar_ops.vault.repository',"
        " 'scholar_ops.sources.postgres.wal.store']\n"
        "print(rc, [m for m in heavy if m in sys.modules])\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SCHOLAR_OPS_")}
    environ["SCHOLAR_OPS_WAL_RUNTIME_DIR"] = str(runtime)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp / "data",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr
    assert f"push {seg}: exit 0" in _log(runtime)


def test_fetch_goes_through_it_with_the_commands_exit_codes(env):
    pg, tmp, runtime = env
    seg = pg.segment(1, 14)
    assert _wal(tmp, "push", str(seg)).returncode == EXIT_OK
    assert _wait(lambda: len(_servers(runtime)) == 1)
    restored = FakeCluster(tmp / "restored", SYSID)
    proc = _wal(tmp, "fetch", seg.name, "pg_wal/RECOVERYXLOG", cwd=restored.datadir)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert (restored.datadir / "pg_wal" / "RECOVERYXLOG").read_bytes() == seg.read_bytes()
    missing = "0000000100000000000000FF"
    proc = _wal(tmp, "fetch", missing, "pg_wal/RECOVERYXLOG", cwd=restored.datadir)
    assert proc.returncode == EXIT_NOT_ARCHIVED
    assert missing in proc.stderr and "not in the archive" in proc.stderr
    log = _log(runtime)
    assert f"fetch {seg.name} to {restored.datadir}/pg_wal/RECOVERYXLOG: exit 0" in log
    assert f"fetch {missing} to" in log and "exit 10" in log
