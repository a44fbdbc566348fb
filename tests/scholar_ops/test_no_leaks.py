"""Nothing the project writes during a full run holds a secret or the backed-up plaintext.

One run through the command line (in-process, under the Prefect test harness) with
distinctive secrets everywhere: a PostgreSQL password (PGPASSWORD), a Redis server with
``requirepass``, a master key; and distinctive markers inside the data: a table row, a
Redis value, a Chroma document, a file. It sets up, backs up every component (full, then
incremental), restores every component, checks with --read-data and exports metrics, then
scans, as raw bytes:

- what the command line printed and every log record captured;
- the Prefect API: flow and task runs (their parameters), artifacts, run logs;
- the Pushgateway's /metrics;
- every object of the repository (lock objects too: one held while it is read) and every
  file the project left in its state and configuration directories, and in Prefect's
  result storage;

and finds no secret (nor its base64) and, in the repository, no plaintext marker.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import redis

from scholar_ops.cli import main
from scholar_ops.sources.process import free_port
from scholar_ops.sources.redis.server import throwaway_redis
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage
from tests.helpers import fill_chroma


def _variants(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode()]


def _leaks(blob: bytes, needles: dict[str, list[bytes]]) -> list[str]:
    return [name for name, forms in needles.items() if any(f in blob for f in forms)]


def _files(root: Path, since: float | None = None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            if since is not None and path.stat().st_mtime < since:
                continue
            out[str(path)] = path.read_bytes()
    return out


def _prefect_records() -> dict[str, bytes]:
    """Flow runs (with their parameters), task runs, artifacts and run logs, read back."""
    from prefect.client.orchestration import get_client

    out: dict[str, bytes] = {}
    with get_client(sync_client=True) as client:
        readers = {
            "flow run": client.read_flow_runs,
            "task run": client.read_task_runs,
            "artifact": client.read_artifacts,
            "log": client.read_logs,
        }
        for kind, read in readers.items():
            offset = 0
            while page := read(limit=100, offset=offset):  # type: ignore[operator]
                for i, item in enumerate(page):
                    out[f"{kind} {offset + i}"] = item.model_dump_json().encode()
                offset += len(page)
            assert offset, f"no {kind} read back"
    return out


def _health_responses(
    secrets: dict[str, str], *, postgres: str, redis_url: str, chroma: Path
) -> dict[str, bytes]:
    """Every endpoint of the health service (in-process), with checks given passwords."""
    from fastapi.testclient import TestClient

    from scholar_ops.monitoring.health.auth import AccessControl
    from scholar_ops.monitoring.health.config import (
        ChromaSettings,
        HealthConfig,
        PostgresSettings,
        RedisSettings,
    )
    from scholar_ops.monitoring.health.service import create_app

    config = HealthConfig(
        postgres=PostgresSettings(dsn=postgres, timeout=2),
        redis=RedisSettings(url=redis_url),
        chroma=ChromaSettings(path=str(chroma)),
    )
    app = create_app(config, AccessControl(read=(secrets["health token"],)))
    out: dict[str, bytes] = {}
    auth = {"Authorization": f"Bearer {secrets['health token']}"}
    paths = ["/livez", "/health", "/", "/metrics", "/health/comprehensive", "/health/database"]
    paths += ["/health/services", "/health/performance"]
    with TestClient(app) as client:
        for path in paths:
            for name, headers in (("token", auth), ("no token", {})):
                r = client.get(path, headers=headers)
                out[f"health {path} ({name})"] = f"{r.status_code} {r.headers} {r.text}".encode()
        report = client.get("/health/database", headers=auth).json()
    assert "redis" in json.dumps(report) or "postgres" in json.dumps(report)
    return out


def test_a_full_run_leaks_no_secret_and_no_plaintext(
    prefect_harness, pg_server, pushgateway, tmp_path, monkeypatch, capsys, caplog
):
    import chromadb
    from chromadb.config import Settings

    from blocks.redis import RedisTarget

    started = time.time() - 1
    caplog.set_level(logging.INFO)
    tag = uuid.uuid4().hex[:10]
    secrets = {
        "postgres password": f"PgPw-{tag}-Zq81Lx",
        "redis password": f"RedisPw-{tag}-Kf27Hs",
        "master key": f"MasterKey-{tag}-0123456789abcdef",
        "health token": f"HealthTok-{tag}-Wm55Rt",
    }
    # Short markers: Redis keeps strings of at most 20 bytes uncompressed in its RDB, so
    # each marker is in the plaintext stream that the backup encrypts.
    markers = {
        "table row": f"PgRow{tag}",
        "redis value": f"RdVal{tag}",
        "chroma document": f"ChDoc{tag}",
        "file": f"FiLe{tag}",
    }

    # Sources, each holding a marker; the PostgreSQL role's password hash is a secret too.
    db = f"leak_{tag}"
    pg_server.create_database(db)
    with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
        c.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        c.execute("INSERT INTO notes VALUES (1, %s), (2, 'plain')", (markers["table row"],))
        c.execute(f"CREATE ROLE leak_{tag} LOGIN PASSWORD '{secrets['postgres password']}'")
        c.execute(f"ALTER TABLE notes OWNER TO leak_{tag}")  # the dump names the role
        row = c.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (f"leak_{tag}",))
        secrets["postgres password hash"] = str(row.fetchone()[0])  # type: ignore[index]
    redis_server = throwaway_redis(tmp_path / "redis", password=secrets["redis password"])
    rs = redis_server.__enter__()
    try:
        client = redis.Redis(host=rs.host, port=rs.port, password=secrets["redis password"])
        client.set("note", markers["redis value"])
        client.hset("session:1", mapping={"user": "u1"})
        client.close()
        chroma = chromadb.PersistentClient(
            path=str(tmp_path / "vectors"), settings=Settings(anonymized_telemetry=False)
        )
        fill_chroma(chroma, {"chunks": 20}, dim=8)
        chroma.get_collection("chunks", embedding_function=None).add(
            ids=["marked"],
            embeddings=np.full((1, 8), 0.5, dtype=np.float32),
            documents=[markers["chroma document"]],
        )
        (tmp_path / "uploads").mkdir()
        (tmp_path / "uploads" / "note.txt").write_text(f"note: {markers['file']}\n")

        monkeypatch.setenv("SCHOLAR_OPS_REPOSITORY", f"repo-{tag}")
        monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", secrets["master key"])
        monkeypatch.setenv("PGPASSWORD", secrets["postgres password"])
        monkeypatch.setenv("REDIS_PASSWORD", secrets["redis password"])
        for var in ("PGDATABASE", "REDIS_HOST", "REDIS_PORT", "REDISCLI_AUTH", "CHROMA_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.chdir(tmp_path)
        pg, rd, ch, fi = (f"{c}-{tag}" for c in ("pg", "redis", "chroma", "files"))
        assert main([
            "setup", "--repo-path", "repo", "--master-key-secret", f"key-{tag}",
            "--target", pg, "--pg-host", pg_server.host, "--pg-port", str(pg_server.port),
            "--pg-database", db, "--pg-user", pg_server.user,
            "--redis-target", rd, "--redis-host", rs.host, "--redis-port", str(rs.port),
            "--chroma-target", ch, "--chroma-path", "vectors", "--files", f"{fi}=uploads",
            "--pushgateway-url", pushgateway.url, "--monitoring-block", f"mon-{tag}",
        ]) == 0  # fmt: skip
        monkeypatch.delenv("PGPASSWORD")
        monkeypatch.delenv("REDIS_PASSWORD")
        targets = ["--postgres", pg, "--redis", rd, "--chroma", ch, "--files", fi]
        assert main(["backup", "--full", *targets]) == 0
        client = redis.Redis(host=rs.host, port=rs.port, password=secrets["redis password"])
        client.set("later", "x")
        client.close()
        assert main(["backup", *targets]) == 0

        # Restores: PostgreSQL into a new database, Redis into another server with the
        # same password, Chroma and files into new directories.
        assert main(["restore", "latest", "--component", "postgres", "--to", f"r_{tag}",
                     "--target", pg]) == 0  # fmt: skip
        with throwaway_redis(tmp_path / "redis2", password=secrets["redis password"]) as other:
            RedisTarget(
                host=other.host, port=other.port, password_secret=f"{rd}-password", label="other"
            ).save(f"other-{tag}")
            assert main(["restore", "latest", "--component", "redis", "--from-target", rd,
                         "--target", f"other-{tag}"]) == 0  # fmt: skip
        assert main(["restore", "latest", "--component", "chroma", "--to", "vectors2"]) == 0
        assert main(["restore", "latest", "--component", "files", "--to", "uploads2"]) == 0
        assert (tmp_path / "uploads2" / "note.txt").read_text() == f"note: {markers['file']}\n"
        assert main(["check", "--read-data"]) == 0
        assert main(["metrics", "export", "--monitoring", f"mon-{tag}"]) == 0
        printed = capsys.readouterr()
        # The export reached both servers with their passwords (no collector failed).
        assert f"collector postgres/{pg}: ok" in printed.out, printed.out
        assert f"collector redis/{rd}: ok" in printed.out, printed.out

        health = _health_responses(
            secrets,
            postgres=f"postgresql://{pg_server.user}:{secrets['postgres password']}"
            f"@127.0.0.1:{free_port()}/{db}",  # a closed port: the error path too
            redis_url=f"redis://:{secrets['redis password']}@{rs.host}:{rs.port}/0",
            chroma=tmp_path / "vectors",
        )

        # A lock object, read while held.
        repo = Repository.open(LocalStorage(tmp_path / "repo"), MasterKey.from_string(
            secrets["master key"]))  # fmt: skip
        with repo.lock("backup"):
            held = {o.name: repo.storage.get(o.name) for o in repo.storage.list("locks/")}
        assert held
    finally:
        redis_server.__exit__(None, None, None)
        pg_server.drop_database(db)
        pg_server.drop_database(f"r_{tag}")
        with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
            c.execute(f"DROP ROLE IF EXISTS leak_{tag}")

    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    with get_client(sync_client=True) as prefect_client:  # positive control: the needle's form
        block = prefect_client.read_block_document_by_name(
            f"key-{tag}", "secret", include_secrets=True
        )
        assert _leaks(json.dumps(block.data).encode(), {"k": _variants(secrets["master key"])})

    outputs: dict[str, bytes] = {
        "stdout": printed.out.encode(),
        "stderr": printed.err.encode(),
        "log records": "\n".join(
            f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
        ).encode(),
        "pushgateway": pushgateway.metrics().encode(),
        **health,
        **_prefect_records(),
        **held,
        **_files(Path(os.environ["SCHOLAR_OPS_STATE_DIR"])),
        **_files(Path(os.environ["SCHOLAR_OPS_CONFIG_DIR"])),
        **_files(Path(get_current_settings().results.local_storage_path), since=started),
    }
    repository = _files(tmp_path / "repo")
    assert len(repository) > 10
    secret_forms = {name: _variants(value) for name, value in secrets.items()}
    marker_forms = {name: _variants(value) for name, value in markers.items()}

    found = {
        where: _leaks(blob, secret_forms)
        for where, blob in {**outputs, **repository}.items()
        if _leaks(blob, secret_forms)
    }
    assert not found, f"secrets found: {json.dumps(found, indent=1)}"
    plain = {
        where: _leaks(blob, marker_forms)
        for where, blob in {**repository, **held}.items()
        if _leaks(blob, marker_forms)
    }
    assert not plain, f"plaintext found in the repository: {json.dumps(plain, indent=1)}"
    # The markers were backed up and restored: the scan looked for something that was there.
    assert any(markers["file"].encode() in b for b in _files(tmp_path / "uploads2").values())
