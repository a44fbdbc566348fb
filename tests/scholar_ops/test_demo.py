"""`make demo` end to end at a small scale (a subprocess, its own Prefect home), its
metrics in a throwaway Pushgateway and a Prometheus configuration promtool accepts, and
its servers stopped when it fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from scholar_ops.sources.redis.server import RedisServer
from scholar_ops.testbed.pushgateway import PushgatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = "/usr/bin/promtool"


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """The demo's data directory inside a mode-700 directory, like a checkout in root's
    home: run as root, the cluster belongs to `postgres`, which cannot enter it."""
    parent = Path(tempfile.mkdtemp(prefix="scholar-ops-demo-test-"))
    parent.chmod(0o700)
    try:
        yield parent / "demo"
    finally:
        link = parent / "demo" / "postgres"
        if link.is_symlink():
            shutil.rmtree(link.resolve(), ignore_errors=True)
        shutil.rmtree(parent, ignore_errors=True)


#: one verdict line per restored component (the Redis one twice: into a server, and an RDB)
IDENTICAL = [
    "restored database equals the source (schema, every table's rows, sequences): yes",
    "restored Redis server equals the source (every key, type, value and TTL, in every database): yes",
    "a server started from the restored RDB equals the source (the same): yes",
    "restored Chroma store equals the source (collections, ids, documents, metadatas, "
    "embeddings, nearest neighbours): yes",
    "restored uploads equal the source (paths, contents, modes, mtimes, symlinks): yes",
    "every component restored identical to its source: True",
]
#: component and target label of the demo's four backup targets
TARGETS = (
    ("postgres", "aischolar"),
    ("redis", "aischolar-redis"),
    ("chroma", "aischolar-chroma"),
    ("files", "uploads"),
)


def test_demo_backs_up_and_restores_every_component(tmp_path: Path, demo_dir: Path) -> None:
    # A clean Prefect environment: an ephemeral API in tmp_path, whatever the caller uses.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from scholar_ops.demo import run\n"
        "sys.exit(0 if run(Path(sys.argv[1]), documents=300, scale=0.1) else 3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(demo_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{out}\n{proc.stderr[-5000:]}"
    for line in IDENTICAL:
        assert line in out, out
    assert ": NO" not in out and "difference:" not in out, out
    for where in ("postgres/aischolar", "redis/aischolar-redis", "chroma/aischolar-chroma",
                  "files/uploads"):  # fmt: skip
        # a full and an incremental snapshot each, in the flows' output and in the catalog
        assert out.count(f"{where} ") >= 4, out
    assert (tmp_path / "prefect").is_dir()  # the run history did not go to ~/.prefect
    _check_metrics(out, demo_dir.resolve())
    _check_testing(out, demo_dir.resolve())


def _check_testing(out: str, demo_dir: Path) -> None:
    """The functionality-testing section: the healthy run passes every suite, the run
    with a fault fails naming it; no Prefect traceback; the reports are kept."""
    section = out[
        out.index("== the reference AI Scholar") : out.index("== the metrics in Prometheus")
    ]
    assert "PASSED, system_health_score 100" in section, section
    for suite in ("api", "database", "integration", "performance", "ui"):
        assert re.search(rf"^{suite} +passed ", section, re.M), section
    assert "FAILED, system_health_score" in section
    assert "[critical] api: search: POST /api/search answered 500, expected 200" in section
    assert "healthy run passed and the fault was named: True" in section
    assert "Traceback" not in section
    reports = list((demo_dir / "test-runs").rglob("report.json"))
    assert len(reports) == 2


def _check_metrics(out: str, demo_dir: Path) -> None:
    """The metrics section: every target's last status 1 as pushed by the backup flows,
    every collector of the export up, the databases up; a Prometheus configuration that
    promtool accepts, and the commands to look at it."""
    # the metrics sections, without the functionality tests' (checked on their own)
    metrics = (
        out[out.index("== metrics-export flow") : out.index("== the reference AI Scholar")]
        + out[out.index("== the metrics in Prometheus") :]
    )
    lines = [line.strip() for line in metrics.splitlines()]
    for component, target in TARGETS:
        labels = f'{{component="{component}",target="{target}"}}'
        assert f"scholar_ops_backup_last_status{labels} 1" in lines, metrics
        assert f"scholar_ops_backup_snapshots{labels} 2" in lines, metrics
        assert any(line.startswith(f"scholar_ops_backup_dedup_ratio{labels} ") for line in lines)
        if component != "files":
            assert f"scholar_ops_database_up{labels} 1" in lines, metrics
    for collector in ("system", "backups", "postgres/aischolar", "redis/aischolar-redis",
                      "chroma/aischolar-chroma"):  # fmt: skip
        assert f'scholar_ops_collector_up{{collector="{collector}"}} 1' in lines, metrics
    assert any(line.startswith("scholar_ops_system_cpu_usage_ratio ") for line in lines)
    assert any(line.startswith("scholar_ops_system_memory_used_bytes ") for line in lines)
    assert "NOT OK" not in metrics and "FAILED" not in metrics, metrics

    config = demo_dir / "prometheus.yml"
    check = subprocess.run(
        [PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    parsed = yaml.safe_load(config.read_text())
    rules = parsed["rule_files"]
    assert rules and all(Path(r).is_absolute() and Path(r).is_file() for r in rules), rules
    assert [job["job_name"] for job in parsed["scrape_configs"]] == ["pushgateway"]
    (address,) = parsed["scrape_configs"][0]["static_configs"][0]["targets"]
    assert parsed["global"]["scrape_interval"] == parsed["global"]["evaluation_interval"] == "15s"

    persistence = demo_dir / "pushgateway" / "pushgateway.data"
    assert persistence.is_file()  # written as the gateway stopped
    assert (
        f"prometheus-pushgateway --web.listen-address={address} "
        f"--persistence.file={persistence} &" in metrics
    ), metrics
    assert (
        f"prometheus --config.file={config} --storage.tsdb.path={demo_dir / 'prometheus-data'}"
        in metrics
    ), metrics
    assert "http://localhost:9090/graph" in metrics


def test_the_servers_stop_when_the_demo_fails(
    tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scholar_ops.cli
    import scholar_ops.testbed.pushgateway
    from scholar_ops import demo
    from scholar_ops.testbed.sample import appdata

    for name, value in (
        ("PREFECT_HOME", str(tmp_path / "prefect")),
        ("PREFECT_LOGGING_LEVEL", "WARNING"),
        ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
        ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"),
        ("ANONYMIZED_TELEMETRY", "False"),
    ):
        monkeypatch.setenv(name, value)  # run() only sets what is unset: restored after
    pids: list[int] = []
    load_redis = appdata.load_redis
    gateways: list[PushgatewayServer] = []
    throwaway_pushgateway = scholar_ops.testbed.pushgateway.throwaway_pushgateway

    @contextmanager
    def gateway_spy(root: Path, **kw: Any) -> Iterator[PushgatewayServer]:
        with throwaway_pushgateway(root, **kw) as gateway:
            gateways.append(gateway)
            yield gateway

    def spy(server: RedisServer, **kw: Any) -> dict[str, int]:
        assert server.pid is not None
        pids.append(server.pid)
        return load_redis(server, **kw)

    def failing_setup(argv: list[str]) -> int:
        raise RuntimeError("setup failed")

    monkeypatch.setattr(appdata, "load_redis", spy)
    monkeypatch.setattr(scholar_ops.testbed.pushgateway, "throwaway_pushgateway", gateway_spy)
    monkeypatch.setattr(scholar_ops.cli, "main", failing_setup)
    with pytest.raises(RuntimeError, match="setup failed"):
        demo.run(demo_dir, documents=50, scale=0.02)
    assert len(pids) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    assert not (demo_dir / "postgres/data/postmaster.pid").exists()
    assert len(gateways) == 1 and gateways[0].pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(gateways[0].pid, 0)
