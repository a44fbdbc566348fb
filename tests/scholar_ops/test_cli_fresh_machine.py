"""`scholar-ops` as a new operator runs it: separate processes, a fresh Prefect home, no
Prefect server, from a directory of its own, default settings.

What it prints is the operator's: no Prefect INFO lines, no tracebacks (Prefect's first
run on a fresh home has printed a telemetry traceback, and its ephemeral server has
timed out starting), and one line per error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def operator(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SCHOLAR_OPS_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        PREFECT_HOME=str(tmp_path / "home" / ".prefect"),
        PYTHONPATH=str(ROOT),
        SCHOLAR_OPS_CONFIG_DIR=str(tmp_path / "home" / ".config" / "scholar-ops"),
        SCHOLAR_OPS_STATE_DIR=str(tmp_path / "home" / ".local" / "state" / "scholar-ops"),
    )
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "home").mkdir()
    uploads = tmp_path / "uploads"
    (uploads / "papers").mkdir(parents=True)
    (uploads / "papers" / "a.pdf").write_bytes(os.urandom(30_000))

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "scholar_ops.cli", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        for stream in (proc.stdout, proc.stderr):
            assert "Traceback" not in stream, stream
            assert " INFO " not in stream and "| INFO" not in stream, stream
        return proc

    return run, tmp_path, uploads


def test_a_new_operator_sets_up_backs_up_and_lists_quietly(operator):
    run, tmp_path, uploads = operator
    setup = run("setup", "--repo-path", str(tmp_path / "repo"), "--files", f"uploads={uploads}")
    assert setup.returncode == 0, setup.stderr
    assert setup.stderr == ""
    assert "generated a new master key in scholar-ops-master.key" in setup.stdout
    assert "target      uploads: files" in setup.stdout

    backup = run("backup", "--files", "uploads")
    assert backup.returncode == 0, backup.stderr
    assert backup.stderr == ""
    (line,) = backup.stdout.splitlines()
    assert line.startswith("snapshot ") and "files/uploads incremental: 1 file " in line

    started = time.monotonic()
    listing = run("snapshots")
    took = time.monotonic() - started
    assert listing.returncode == 0 and "1 snapshots" in listing.stdout
    # Not a benchmark (bench/cli_bench.py measures it): a process that started Prefect's
    # temporary server would take tens of seconds here.
    assert took < 10, took

    # A mistake is one line, with the documented exit code.
    bad = run("backup", "--files", "no-such-target")
    assert bad.returncode == 1
    (err,) = bad.stderr.strip().splitlines()
    assert err.startswith("scholar-ops backup: files/no-such-target failed: cannot load")
