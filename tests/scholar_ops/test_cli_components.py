"""The scholar-ops command line with Redis, Chroma and files targets, in-process against
the Prefect test harness, a real Redis server and embedded Chroma stores.

Chroma never downloads an embedding model here: embeddings are always given and
collections are opened with ``embedding_function=None``.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from scholar_ops.cli import main
from scholar_ops.sources.redis.server import throwaway_redis
from tests.helpers import fill_chroma, redis_state, tree_state

DIM = 16
TTL_S = 3600


def _fill_redis(client: redis.Redis) -> None:
    pipe = client.pipeline()
    for i in range(200):
        pipe.set(f"cache:{i}", os.urandom(32))
        pipe.hset(f"session:{i}", mapping={"user": str(i), "seen": "now"})
        if i % 2:
            pipe.expire(f"session:{i}", TTL_S)
    pipe.rpush("jobs", *[f"job-{i}" for i in range(20)])
    pipe.zadd("popular", {f"doc-{i}": i for i in range(30)})
    pipe.execute()
    kw = client.connection_pool.connection_kwargs
    db1 = redis.Redis(host=kw["host"], port=kw["port"], db=1)
    db1.sadd("tags", "ai", "rag", "ml")
    db1.set("token", "abc", ex=TTL_S)
    db1.close()


def _same_ttls(a: dict[Any, tuple[Any, Any, int]], b: dict[Any, tuple[Any, Any, int]]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][:2] == b[key][:2], key
        ttl_a, ttl_b = a[key][2], b[key][2]
        if ttl_a < 0:
            assert ttl_b == ttl_a, key
        else:  # the restore keeps the remaining time (give or take the test's own duration)
            assert abs(ttl_a - ttl_b) < 60_000 and 0 < ttl_b <= TTL_S * 1000, key


def _chroma_client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def _chroma_records(path: Path, name: str) -> dict[str, Any]:
    col = _chroma_client(path).get_collection(name, embedding_function=None)
    got = col.get(include=["embeddings", "documents", "metadatas"])
    order = np.argsort(got["ids"])
    return {
        "ids": [got["ids"][i] for i in order],
        "embeddings": np.asarray(got["embeddings"])[order],
        "documents": [got["documents"][i] for i in order],
        "metadatas": [got["metadatas"][i] for i in order],
    }


def _fill_files(root: Path) -> None:
    (root / "papers").mkdir(parents=True)
    (root / "papers" / "résumé ✓.pdf").write_bytes(os.urandom(50_000))
    (root / "papers" / "empty.txt").write_bytes(b"")
    (root / "config.yaml").write_text("retries: 3\n")
    (root / "config.yaml").chmod(0o640)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o750)
    (root / "latest.pdf").symlink_to("papers/résumé ✓.pdf")
    (root / "cache").mkdir()
    (root / "cache" / "x.tmp").write_text("skip me")


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def cli_env(prefect_harness, redis_client, tmp_path, monkeypatch):
    # Prefect sets its logging up once, when prefect.main is first imported: here, before
    # capsys, so that its console handler does not write into a test's captured stderr
    # (and outlive it). A real `scholar-ops` process sets PREFECT_LOGGING_LEVEL first.
    import prefect.main  # noqa: F401

    suffix = uuid.uuid4().hex[:6]
    monkeypatch.setenv("SCHOLAR_OPS_REPOSITORY", f"repo-{suffix}")
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", "cli-components-master-key-0123456789")
    for var in (
        "PGDATABASE", "PGPASSWORD", "REDIS_HOST", "REDIS_PORT", "REDISCLI_AUTH",
        "REDIS_PASSWORD", "CHROMA_TOKEN",
    ):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    kw = redis_client.connection_pool.connection_kwargs
    _fill_redis(redis_client)
    fill_chroma(_chroma_client(tmp_path / "vectors"), {"chunks": 120, "abstracts": 30}, dim=DIM)
    _fill_files(tmp_path / "uploads")
    return {
        "suffix": suffix,
        "key": f"key-{suffix}",
        "redis": f"redis-{suffix}",
        "chroma": f"chroma-{suffix}",
        "files": f"files-{suffix}",
        "redis_host": kw["host"],
        "redis_port": kw["port"],
    }


def _setup(env: dict[str, Any], *extra: str) -> int:
    return main([
        "setup", "--repo-path", "repo", "--master-key-secret", env["key"], *extra,
    ])  # fmt: skip


def test_setup_backup_and_restore_every_component(cli_env, tmp_path, capsys):
    from blocks.chroma import ChromaTarget
    from blocks.files import FilesTarget
    from blocks.redis import RedisTarget

    e = cli_env
    # Relative paths: the blocks get absolute ones (a flow may run elsewhere).
    assert _setup(
        e,
        "--redis-target", e["redis"], "--redis-host", e["redis_host"],
        "--redis-port", str(e["redis_port"]),
        "--chroma-target", e["chroma"], "--chroma-path", "vectors",
        "--files", f"{e['files']}=uploads", "--exclude", "*.tmp",
        "--pushgateway-url", "http://127.0.0.1:9091", "--monitoring-block", f"mon-{e['redis']}",
    ) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == [
        "repository", "master", "target", "target", "target", "monitoring",
    ]  # fmt: skip
    assert all(line.endswith("[created]") for line in out)
    from blocks.monitoring import MonitoringSettings

    mon = MonitoringSettings.load_sync(f"mon-{e['redis']}")
    assert (mon.redis_targets, mon.chroma_targets) == ([e["redis"]], [e["chroma"]])
    assert not any("postgres" in line for line in out)  # no --pg-database: no PostgreSQL target
    rt = RedisTarget.load_sync(e["redis"])
    assert (rt.host, rt.port, rt.password_secret) == (e["redis_host"], e["redis_port"], None)
    ct = ChromaTarget.load_sync(e["chroma"])
    assert ct.path == str(tmp_path / "vectors") and not ct.physical
    ft = FilesTarget.load_sync(e["files"])
    assert (ft.path, ft.exclude, ft.label) == (str(tmp_path / "uploads"), ["*.tmp"], e["files"])

    # One backup run, three snapshots in one group.
    assert main(["backup", "--full", "--redis", e["redis"], "--chroma", e["chroma"],
                 "--files", e["files"]]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    by_component = {line.split()[2].split("/")[0]: line for line in lines}
    assert "404 keys in 2 databases" in by_component["redis"]
    assert "2 collections, 150 records" in by_component["chroma"]
    assert (
        "4 files (0 unchanged), 2 dirs, 1 symlink" in by_component["files"]
    )  # cache/x.tmp excluded
    assert main(["snapshots", "--json"]) == 0
    snaps = {s["component"]: s for s in json.loads(capsys.readouterr().out)}
    assert sorted(snaps) == ["chroma", "files", "redis"]
    assert len({s["group"] for s in snaps.values()}) == 1 and snaps["redis"]["group"]
    assert {c: s["target"] for c, s in snaps.items()} == {
        "redis": e["redis"], "chroma": e["chroma"], "files": e["files"],
    }  # fmt: skip
    assert main(["snapshots"]) == 0
    assert "group" in capsys.readouterr().out.splitlines()[0]

    # Redis into another running server: the component comes from the snapshot id.
    source = redis_state(e["redis_host"], e["redis_port"])
    redis_id = snaps["redis"]["backup_id"][:10]
    with throwaway_redis(tmp_path / "r2") as other:
        RedisTarget(host=other.host, port=other.port, label="other").save(
            f"other-{e['suffix']}", overwrite=True
        )
        assert main(["restore", redis_id, "--target", f"other-{e['suffix']}"]) == 0
        out = capsys.readouterr().out
        assert f"{len(source)} keys in 2 databases" in out and "verified" in out
        _same_ttls(source, redis_state(other.host, other.port))
        # Into a non-empty server: refused, one line naming the option.
        assert main(["restore", redis_id, "--target", f"other-{e['suffix']}"]) == 2
        line = _one_error_line(capsys)
        assert "not empty" in line and "--existing" in line
        assert main(["restore", redis_id, "--target", f"other-{e['suffix']}",
                     "--existing", "replace"]) == 0  # fmt: skip
        capsys.readouterr()

    # Redis as dump.rdb for a new server ('latest' needs --component).
    rdb_dir = tmp_path / "rdb"
    assert main(["restore", "latest", "--component", "redis", "--from-target", e["redis"],
                 "--to", "rdb"]) == 0  # fmt: skip
    assert "404 keys" in capsys.readouterr().out
    assert (rdb_dir / "dump.rdb").stat().st_size > 0
    assert main(["restore", "latest", "--component", "redis", "--to", "rdb"]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    # A server started there loads it (the directory is removed afterwards).
    with throwaway_redis(rdb_dir) as loaded:
        _same_ttls(source, redis_state(loaded.host, loaded.port))

    # Chroma into a new embedded directory: ids, embeddings, documents, metadatas equal.
    chroma_id = snaps["chroma"]["backup_id"][:10]
    assert main(["restore", chroma_id, "--to", "vectors2"]) == 0
    assert "2 collections, 150 records" in capsys.readouterr().out
    for name in ("chunks", "abstracts"):
        want = _chroma_records(tmp_path / "vectors", name)
        have = _chroma_records(tmp_path / "vectors2", name)
        assert have["ids"] == want["ids"] and have["documents"] == want["documents"]
        assert have["metadatas"] == want["metadatas"]
        assert np.array_equal(have["embeddings"], want["embeddings"])
    assert main(["restore", chroma_id, "--to", "vectors2"]) == 2
    line = _one_error_line(capsys)
    assert "already has collection" in line and "--existing" in line
    assert main(["restore", chroma_id, "--to", "vectors2", "--existing", "skip",
                 "--collection", "abstracts"]) == 0  # fmt: skip
    assert "1 skipped" in capsys.readouterr().out

    # Files into a directory: contents, modes and the symlink as they were.
    files_id = snaps["files"]["backup_id"][:10]
    assert main(["restore", files_id, "--to", "uploads2"]) == 0
    assert "4 files, 2 dirs, 1 symlink" in capsys.readouterr().out
    expected = tree_state(tmp_path / "uploads")
    del expected["cache/x.tmp"]
    restored = tree_state(tmp_path / "uploads2")
    assert restored == expected
    assert restored["config.yaml"][1] == 0o640 and restored["latest.pdf"][0] == "link"
    assert main(["restore", files_id, "--to", "uploads2"]) == 2
    line = _one_error_line(capsys)
    assert "not empty" in line and "--overwrite" in line
    # 'latest' of a target before a (local, offset-less) time; a subset of the paths.
    assert main(["restore", "latest", "--component", "files", "--from-target", e["files"],
                 "--before", "2999-01-01T00:00", "--to", "uploads3", "--path", "papers"]) == 0  # fmt: skip
    assert f"restored snapshot {files_id[:8]}" in capsys.readouterr().out
    assert sorted(tree_state(tmp_path / "uploads3")) == ["papers", "papers/empty.txt",
                                                    "papers/résumé ✓.pdf"]  # fmt: skip
    # The component comes from the snapshot: another one is refused.
    assert main(["restore", files_id, "--component", "chroma", "--to", "x"]) == 2
    assert "is a files snapshot, not chroma" in _one_error_line(capsys)


def test_setup_and_restore_usage_errors(cli_env, monkeypatch, capsys):
    from blocks.chroma import ChromaTarget
    from blocks.redis import RedisTarget

    e = cli_env
    assert _setup(e) == 2
    line = _one_error_line(capsys)
    assert "at least one target" in line and "--pg-database" in line and "--files" in line
    assert _setup(e, "--files", "uploads") == 2
    assert "NAME=PATH" in _one_error_line(capsys)
    assert _setup(e, "--files", "Bad_Name=uploads") == 2
    assert "lowercase" in _one_error_line(capsys)
    assert _setup(e, "--chroma-path", "vectors", "--chroma-host", "h") == 2
    assert "not both" in _one_error_line(capsys)
    assert _setup(e, "--redis-username", "app") == 2  # no --redis-host/--redis-port
    assert "--redis-host" in _one_error_line(capsys)
    assert _setup(e, "--chroma-physical", "--chroma-port", "8000") == 2
    assert "--chroma-path" in _one_error_line(capsys)

    # Server targets: the password and the token go into Secret blocks, never to the output.
    monkeypatch.setenv("CHROMA_TOKEN", "s3cret-token-value")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret-redis-password")
    monkeypatch.setenv("REDIS_PORT", "6390")  # the environment alone makes a Redis target
    assert _setup(e, "--chroma-target", e["chroma"], "--chroma-host", "chroma.internal",
                  "--redis-target", e["redis"], "--redis-username", "app") == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "s3cret" not in captured.out + captured.err
    assert f"token in Secret block {e['chroma']}-token" in captured.out
    assert f"password in Secret block {e['redis']}-password" in captured.out
    ct = ChromaTarget.load_sync(e["chroma"])
    assert (ct.host, ct.port, ct.token_secret) == ("chroma.internal", 8000, f"{e['chroma']}-token")
    assert ct.source().token == "s3cret-token-value"
    rt = RedisTarget.load_sync(e["redis"])
    assert (rt.host, rt.port, rt.username) == ("127.0.0.1", 6390, "app")
    assert rt.password_secret == f"{e['redis']}-password"
    assert rt.conninfo().password == "s3cret-redis-password"

    # restore: what to pass, per component, in one line.
    assert main(["restore", "latest"]) == 2
    assert "--to DATABASE" in _one_error_line(capsys)
    assert main(["restore", "latest", "--component", "redis"]) == 2
    assert "--target NAME" in _one_error_line(capsys)
    assert main(["restore", "latest", "--component", "files", "--target", "x"]) == 2
    assert "--to DIR" in _one_error_line(capsys)
    assert main(["restore", "latest", "--component", "files", "--to", "d", "--clean"]) == 2
    assert "--clean does not apply" in _one_error_line(capsys)


def test_a_failing_component_fails_the_backup_and_keeps_the_others(cli_env, monkeypatch, capsys):
    import flows.backup.group as group
    from tasks.targets import backup_target

    # Connection errors are retried with backoff: not here.
    monkeypatch.setattr(group, "backup_target", backup_target.with_options(retries=0))
    e = cli_env
    bad = f"down-{e['suffix']}"
    assert _setup(e, "--redis-target", bad, "--redis-port", "1",
                  "--files", f"{e['files']}=uploads") == 0  # fmt: skip
    capsys.readouterr()
    assert main(["backup", "--redis", bad, "--files", e["files"]]) == 1
    # The snapshot that succeeded is printed as usual, then the failure, one line each.
    captured = capsys.readouterr()
    (ok,) = captured.out.splitlines()
    assert ok.startswith("snapshot ") and f"files/{e['files']} incremental" in ok
    failed, summary = captured.err.splitlines()
    assert failed.startswith(f"scholar-ops backup: redis/{bad} failed: cannot reach Redis")
    assert summary == "scholar-ops backup: 1 of 2 targets failed"
    assert main(["snapshots", "--json"]) == 0
    snaps = json.loads(capsys.readouterr().out)
    assert [(s["component"], s["target"]) for s in snaps] == [("files", e["files"])]
