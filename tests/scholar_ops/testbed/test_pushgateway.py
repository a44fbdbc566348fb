"""throwaway_pushgateway: ready when entered, stopped at the end, its groups kept in the
persistence file for a gateway started again on it; a clear error without the binary."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from scholar_ops.sources.process import stop_process
from scholar_ops.testbed import pushgateway as pg
from scholar_ops.testbed.pushgateway import PushgatewayStartError, throwaway_pushgateway

pytestmark = pytest.mark.services


def test_groups_survive_a_restart_on_the_persistence_file(tmp_path: Path) -> None:
    root = tmp_path / "gw"
    with throwaway_pushgateway(root, keep_data=True) as gw:
        assert httpx.get(f"{gw.url}/-/ready", timeout=5).status_code == 200
        httpx.post(
            f"{gw.url}/metrics/job/demo/target/a", content="scholar_ops_x 42\n", timeout=5
        ).raise_for_status()
        assert 'scholar_ops_x{instance="",job="demo",target="a"} 42' in gw.metrics()
        assert gw.command()[1:] == [
            f"--web.listen-address=127.0.0.1:{gw.port}",
            f"--persistence.file={root / 'pushgateway.data'}",
        ]
        pid = gw.pid
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert (root / "pushgateway.data").is_file()  # written on SIGTERM
    with throwaway_pushgateway(root) as again:
        assert 'scholar_ops_x{instance="",job="demo",target="a"} 42' in again.metrics()
    assert not root.exists()  # keep_data=False


def test_the_command_serves_the_same_groups(tmp_path: Path) -> None:
    with throwaway_pushgateway(tmp_path / "gw", keep_data=True) as gw:
        httpx.post(f"{gw.url}/metrics/job/demo", content="scholar_ops_y 7\n", timeout=5)
        argv = gw.command()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not pg.http_ready()(gw.port):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert 'scholar_ops_y{instance="",job="demo"} 7' in httpx.get(f"{gw.url}/metrics").text
    finally:
        stop_process(proc, 10)


def test_missing_binary_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg, "PUSHGATEWAY", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(PushgatewayStartError, match="apt-get install prometheus-pushgateway"),
        throwaway_pushgateway(tmp_path / "gw"),
    ):
        pass
