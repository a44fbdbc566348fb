"""scholar-ops-wal (scholar_ops.walcmd): PostgreSQL archiving real segments through it as
its OS user, the documented exit codes and one-line messages, the status file, the key
cache, and what it imports (nothing slow)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from scholar_ops.sources.postgres.cluster import throwaway_cluster
from scholar_ops.sources.postgres.wal import fetch_wal, list_wal
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage
from scholar_ops.walcmd import (
    EXIT_CONFLICT,
    EXIT_FETCH_CONFIG,
    EXIT_FETCH_DAMAGED,
    EXIT_NOT_ARCHIVED,
    EXIT_OK,
    EXIT_USAGE,
)
from tests.scholar_ops.sources.postgres.walenv import wal_archive
from tests.scholar_ops.sources.postgres.walfake import FakeCluster

KEY = "walcmd-test-master-key-0123456789"
SYSID = 6999999999999999999


def test_postgres_archives_real_segments_through_the_command(tmp_path):
    with wal_archive() as wa:
        with (
            throwaway_cluster(settings=wa.archive_settings()) as server,
            psycopg.connect(server.dsn(), autocommit=True) as conn,
        ):
            conn.execute("CREATE TABLE t (id int, note text)")
            conn.execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 200000) g")
            for _ in range(2):
                conn.execute("INSERT INTO t VALUES (0, 'switch')")
                conn.execute("SELECT pg_switch_wal()")
            deadline = time.monotonic() + 60
            while True:
                row = conn.execute(
                    "SELECT archived_count, failed_count, last_archived_wal FROM pg_stat_archiver"
                ).fetchone()
                assert row is not None
                archived, failed, last = row
                ready = list((server.datadir / "pg_wal" / "archive_status").glob("*.ready"))
                if (archived >= 3 and not ready) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert failed == 0, (server.datadir.parent / "postgres.log").read_text()[-3000:]
            assert archived >= 3 and not ready
            wal_files = {
                p.name: p.read_bytes() for p in (server.datadir / "pg_wal").iterdir() if p.is_file()
            }
        repo = wa.repo()
        archived_files = list_wal(repo)
        assert last in {f.name for f in archived_files}
        compared = 0
        for f in archived_files:  # every pushed object decrypts to the exact bytes
            dest = tmp_path / f.name
            assert fetch_wal(repo, f.name, dest)
            if f.name in wal_files:
                assert dest.read_bytes() == wal_files[f.name], f.name
                compared += 1
        assert compared >= 3
        status = json.loads(wa.status_file.read_text())
        assert status["push"]["successes"] >= archived and status["push"]["failures"] == 0

        # restore_command as the PostgreSQL user, in a data directory of that cluster
        datadir = wa.root / "restored"
        fake = FakeCluster(datadir, archived_files[0].system_id)
        wa.give_to_pg()
        proc = wa.run("fetch", last, "pg_wal/RECOVERYXLOG", cwd=datadir)
        assert proc.returncode == EXIT_OK, proc.stderr
        assert (fake.datadir / "pg_wal" / "RECOVERYXLOG").read_bytes() == wal_files[last]
        proc = wa.run("fetch", "0000000100000000000000FF", "pg_wal/RECOVERYXLOG", cwd=datadir)
        assert proc.returncode == EXIT_NOT_ARCHIVED

        # the time per 16 MB segment, end to end (a new process each time, like archive_command)
        _time_push(wa.root / "timing", *_densest(wal_files))


def _densest(files: dict[str, bytes]) -> tuple[str, bytes]:
    """The real segment that compresses least (the most WAL records in it)."""
    import zstandard

    segs = [(n, d) for n, d in files.items() if len(n) == 24 and len(d) == 16 << 20]
    return max(segs, key=lambda s: len(zstandard.ZstdCompressor(level=1).compress(s[1])))


def _time_push(root: Path, name: str, data: bytes) -> None:
    fake = FakeCluster(root / "data", 1)
    path = fake.file(name, data)
    repo_dir = root / "repo"
    Repository.init(LocalStorage(repo_dir), MasterKey.from_string(KEY))
    (root / "key").write_text(KEY)
    argv = [
        sys.executable,
        "-m",
        "scholar_ops.walcmd",
        "--repository",
        str(repo_dir),
        "--key-file",
        str(root / "key"),
        "--status-file",
        str(root / "status.json"),
        "--key-cache-dir",
        str(root / "cache"),
        "push",
        f"pg_wal/{path.name}",
    ]
    times = []
    for _ in range(6):
        shutil.rmtree(repo_dir / "wal", ignore_errors=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            argv, cwd=fake.datadir, capture_output=True, text=True, timeout=60, check=False
        )
        times.append(time.perf_counter() - t0)
        assert proc.returncode == 0, proc.stderr
    stored = sum(p.stat().st_size for p in (repo_dir / "wal").rglob("*") if p.is_file())
    print(
        f"\nscholar-ops-wal push of a 16 MB segment (stored {stored / 1e6:.2f} MB): median "
        f"{statistics.median(times[1:]):.3f} s, best {min(times):.3f} s, first (no key cache) {times[0]:.3f} s"
    )


# -- exit codes, messages, status -------------------------------------------------------------


@pytest.fixture
def env(tmp_path):
    repo_dir = tmp_path / "repo"
    Repository.init(LocalStorage(repo_dir), MasterKey.from_string(KEY))
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "wrong").write_text("another-master-key-0123456789\n")
    return FakeCluster(tmp_path / "data", SYSID), repo_dir, tmp_path


def _cmd(
    tmp_path: Path, *args: str, key: str = "key", repo: str | None = "repo", cwd: Path | None = None
):
    argv = [sys.executable, "-m", "scholar_ops.walcmd"]
    if repo is not None:
        argv += ["--repository", str(tmp_path / repo)]
    argv += ["--key-file", str(tmp_path / key), "--status-file", str(tmp_path / "status.json")]
    argv += ["--key-cache-dir", str(tmp_path / "cache"), *args]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SCHOLAR_OPS_")}
    return subprocess.run(
        argv,
        cwd=cwd or tmp_path / "data",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("scholar-ops-wal: ")
    return lines[0]


def test_push_twice_is_fine_a_different_file_is_a_conflict(env):
    pg, repo_dir, tmp = env
    seg = pg.segment(1, 3)
    assert _cmd(tmp, "push", f"pg_wal/{seg.name}").returncode == EXIT_OK
    obj = repo_dir / "wal" / str(SYSID) / "00000001" / seg.name
    stored = obj.read_bytes()
    again = _cmd(tmp, "push", f"pg_wal/{seg.name}")
    assert again.returncode == EXIT_OK and again.stderr == ""
    pg.segment(1, 3)  # new content, same name
    proc = _cmd(tmp, "push", f"pg_wal/{seg.name}")
    assert proc.returncode == EXIT_CONFLICT
    line = _one_line(proc)
    assert seg.name in line and "a different file is already archived" in line
    assert obj.read_bytes() == stored
    status = json.loads((tmp / "status.json").read_text())["push"]
    assert (status["successes"], status["failures"], status["consecutive_failures"]) == (2, 1, 1)
    assert (
        status["last_failure"]["name"] == seg.name
        and status["last_failure"]["exit_code"] == EXIT_CONFLICT
    )
    assert status["last_success"]["name"] == seg.name


def test_fetch_exit_codes_missing_damaged_misplaced(env):
    pg, repo_dir, tmp = env
    a, b = pg.segment(1, 1), pg.segment(1, 2)
    for seg in (a, b):
        assert _cmd(tmp, "push", f"pg_wal/{seg.name}").returncode == EXIT_OK
    ok = _cmd(tmp, "fetch", a.name, "pg_wal/RECOVERYXLOG")
    assert (
        ok.returncode == EXIT_OK
        and (pg.datadir / "pg_wal" / "RECOVERYXLOG").read_bytes() == a.read_bytes()
    )

    missing = _cmd(tmp, "fetch", "000000010000000000000009", "pg_wal/RECOVERYXLOG")
    assert missing.returncode == EXIT_NOT_ARCHIVED
    assert "000000010000000000000009" in _one_line(missing)

    obj_a = repo_dir / "wal" / str(SYSID) / "00000001" / a.name
    obj_b = repo_dir / "wal" / str(SYSID) / "00000001" / b.name
    good = obj_a.read_bytes()
    flipped = bytearray(good)
    flipped[-100] ^= 0x04
    obj_a.write_bytes(bytes(flipped))
    damaged = _cmd(tmp, "fetch", a.name, "pg_wal/RECOVERYXLOG")
    assert damaged.returncode == EXIT_FETCH_DAMAGED > 125  # PostgreSQL stops recovery
    assert f"wal/{SYSID}/00000001/{a.name}" in _one_line(damaged)

    obj_b.write_bytes(good)  # a's (intact) object copied over b's name
    misplaced = _cmd(tmp, "fetch", b.name, "pg_wal/RECOVERYXLOG")
    assert misplaced.returncode == EXIT_FETCH_DAMAGED
    line = _one_line(misplaced)
    assert b.name in line and "copied or renamed" in line
    status = json.loads((tmp / "status.json").read_text())["fetch"]
    assert status["failures"] == 2 and status["last_failure"]["exit_code"] == EXIT_FETCH_DAMAGED


def test_configuration_errors_push_retries_fetch_stops(env):
    pg, _, tmp = env
    seg = pg.segment(1, 1)
    wrong = _cmd(tmp, "push", f"pg_wal/{seg.name}", key="wrong")
    assert wrong.returncode == EXIT_USAGE
    assert "master key does not open" in _one_line(wrong)
    wrong_fetch = _cmd(tmp, "fetch", seg.name, "pg_wal/RECOVERYXLOG", key="wrong")
    assert wrong_fetch.returncode == EXIT_FETCH_CONFIG
    no_repo = _cmd(tmp, "push", f"pg_wal/{seg.name}", repo=None)
    assert no_repo.returncode == EXIT_USAGE and "--repository" in _one_line(no_repo)
    assert _cmd(tmp, "fetch", seg.name, "x", repo=None).returncode == EXIT_FETCH_CONFIG
    assert _cmd(tmp, "fetch", seg.name).returncode == EXIT_FETCH_CONFIG  # usage: no destination
    no_key = _cmd(tmp, "push", f"pg_wal/{seg.name}", key="missing.key")
    assert no_key.returncode == EXIT_USAGE and "missing.key" in _one_line(no_key)
    not_wal = pg.file("notes.txt", b"x")
    bad = _cmd(tmp, "push", f"pg_wal/{not_wal.name}")
    assert bad.returncode == EXIT_USAGE and "not a WAL file name" in _one_line(bad)
    gone = _cmd(tmp, "push", "pg_wal/000000010000000000000042")
    assert gone.returncode == 1 and "000000010000000000000042" in _one_line(gone)
    assert KEY not in wrong.stderr + no_key.stderr


def test_the_key_cache_never_opens_for_another_key(env):
    pg, _, tmp = env
    seg = pg.segment(1, 1)
    assert _cmd(tmp, "push", f"pg_wal/{seg.name}").returncode == EXIT_OK
    cached = list((tmp / "cache").iterdir())
    assert len(cached) == 1 and KEY.encode() not in cached[0].read_bytes()
    assert oct(cached[0].stat().st_mode & 0o777) == "0o600"
    assert _cmd(tmp, "push", f"pg_wal/{seg.name}", key="wrong").returncode == EXIT_USAGE
    cached[0].write_bytes(b"garbage")  # a damaged cache costs time, not correctness
    assert _cmd(tmp, "push", f"pg_wal/{pg.segment(1, 2).name}").returncode == EXIT_OK


def test_the_command_imports_nothing_slow(env):
    pg, _, tmp = env
    seg = pg.segment(1, 1)
    code = (
        "import sys\n"
        "from scholar_ops import walcmd\n"
        f"rc = walcmd.main(['--repository', {str(tmp / 'repo')!r}, '--key-file', {str(tmp / 'key')!r},"
        f" '--status-file', {str(tmp / 'status.json')!r}, 'push', 'pg_wal/{seg.name}'])\n"
        "heavy = ('prefect', 'prefect_aws', 'great_expectations', 'chromadb', 'scholar_ops.cli', 'flows', 'tasks', 'blocks')\n"
        "print(rc, sorted(m for m in sys.modules if m in heavy or m.startswith(tuple(h + '.' for h in heavy))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=pg.datadir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr


def test_setup_hint_prints_the_postgresql_settings(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scholar_ops.walcmd",
            "--repository",
            "/srv/backup",
            "--key-file",
            "/etc/k",
            "setup-hint",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert "archive_mode = on" in proc.stdout
    assert "--repository /srv/backup --key-file /etc/k --resident push %p'" in proc.stdout
    assert "fetch %f %p'" in proc.stdout
