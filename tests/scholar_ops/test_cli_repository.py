"""The repository verbs (snapshots, check, unlock, migrate, key list) on the operator's
worst day: damaged and swapped objects, a backup killed with -9, an old format.

They read the repository directly: these tests need no Prefect at all (the profile is
what `setup` writes next to the blocks).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scholar_ops.cli import main
from scholar_ops.cli.direct import Profile
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage

ROOT = Path(__file__).resolve().parents[2]
KEY = "repository-verbs-master-key-0123456789"
BLOCK = "verbs-repository"


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Repository:
    key_file = tmp_path / "master.key"
    key_file.write_text(KEY + "\n")
    for var in ("SCHOLAR_OPS_MASTER_KEY", "SCHOLAR_OPS_MASTER_KEY_FILE", "PREFECT_API_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SCHOLAR_OPS_REPOSITORY", BLOCK)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "no-prefect-here"))
    r = Repository.init(LocalStorage(tmp_path / "repo"), MasterKey.from_string(KEY))
    Profile(BLOCK, str(tmp_path / "repo"), "unused-secret", str(key_file), r.config.repo_id).save()
    return r


def _backup(repo: Repository, component: str, target: str, data: bytes) -> str:
    return backup_stream(repo, io.BytesIO(data), component=component, target=target).backup_id


def test_snapshots_lists_every_readable_snapshot_and_names_a_damaged_one(repo, capsys):
    ids = [_backup(repo, "postgres", f"pg{i}", os.urandom(5000)) for i in range(3)]
    name = f"snapshots/{ids[1]}"
    data = bytearray(repo.storage.get(name))
    data[-5] ^= 0xFF
    repo.storage.put(name, bytes(data))
    assert main(["snapshots"]) == 3
    out, err = capsys.readouterr()
    assert "2 snapshots" in out and ids[0][:8] in out and ids[2][:8] in out
    assert ids[1][:8] not in out
    assert f"damaged: {name}: authentication failed" in err
    assert main(["snapshots", "--json", "--target", "pg2"]) == 3
    assert [s["backup_id"] for s in json.loads(capsys.readouterr().out)] == [ids[2]]


def test_a_swapped_snapshot_is_named_by_check_and_refused_by_restore(repo, capsys):
    pg = _backup(repo, "postgres", "aischolar-postgres", os.urandom(20_000))
    rd = _backup(repo, "redis", "aischolar-redis", os.urandom(20_000))
    repo.storage.put(f"snapshots/{pg}", repo.storage.get(f"snapshots/{rd}"))
    assert main(["check", "--read-data"]) == 3
    err = capsys.readouterr().err
    assert f"damaged: snapshots/{pg}: holds the snapshot written as snapshots/{rd}" in err
    # The listing does not show the Redis snapshot twice and says the PostgreSQL one is unusable.
    assert main(["snapshots", "--json"]) == 3
    listed = json.loads(capsys.readouterr().out)
    assert [(s["component"], s["backup_id"]) for s in listed] == [("redis", rd)]
    # Restoring it refuses before anything is written, naming both objects.
    assert main(["restore", pg[:12], "--to", "restored_db"]) == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"snapshots/{pg}" in line and f"snapshots/{rd}" in line


def test_kill_9_of_a_backup_then_check_unlock_and_prune(repo, tmp_path, capsys):
    spec = {"kind": "local", "root": str(tmp_path / "repo"), "master": KEY,
            "size": 400 << 20, "seed": 3}  # fmt: skip
    child = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "scholar_ops" / "vault" / "crash_backup.py"),
            json.dumps(spec),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(repo.storage.list("data/")):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    # An interrupted upload of the dead process, from before the prune's age limit.
    partial = tmp_path / "repo" / "data" / "00" / ".tmp-killed"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half a pack")
    os.utime(partial, (time.time() - 7200, time.time() - 7200))

    # check: not damaged; the dead lock and the leftover are notices that say what to do.
    assert main(["check"]) == 0
    err = capsys.readouterr().err
    assert f"pid {child.pid} on" in err and "is gone" in err and "scholar-ops unlock" in err
    assert "data/00/.tmp-killed" in err and "the next prune removes it" in err
    # A prune does not wait for a dead process: its lock is stale at once.
    from scholar_ops.vault.prune import forget_and_prune

    report = forget_and_prune(Repository.open(repo.storage, MasterKey.from_string(KEY)), [])
    assert report.partial_uploads_removed == 1 and not partial.exists()
    # unlock removes the dead lock, naming it; nothing is left to report.
    assert main(["unlock"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("removed shared lock") and f"pid {child.pid}" in out
    assert main(["check"]) == 0
    assert capsys.readouterr().err == ""


def test_unlock_keeps_live_locks_unless_forced(repo, capsys):
    with repo.lock("backup postgres/aischolar"):
        assert main(["unlock"]) == 0
        assert "no stale locks (1 live lock(s) kept" in capsys.readouterr().out
        assert main(["unlock", "--force"]) == 0
        err = capsys.readouterr().err
        assert "warning: removed a lock that was not stale" in err and "(backup postgres" in err
        assert not list(repo.storage.list("locks/"))


def test_a_format_1_repository_names_migrate_and_migrate_upgrades_it(tmp_path, repo, capsys):
    fixture = ROOT / "tests" / "scholar_ops" / "vault" / "data" / "format1-repository"
    old = tmp_path / "old-repo"
    shutil.copytree(fixture, old)
    key_file = tmp_path / "format1.key"
    key_file.write_text("format-1-fixture-master-key-0123456789\n")
    Profile("old", str(old), "unused", str(key_file)).save()
    assert main(["--repository", "old", "snapshots"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "format-1 repository" in line and "scholar-ops migrate" in line
    assert main(["--repository", "old", "migrate"]) == 0
    assert "from format 1 to 2" in capsys.readouterr().out
    assert main(["--repository", "old", "snapshots"]) == 0
    assert "3 snapshots" in capsys.readouterr().out
    assert main(["--repository", "old", "migrate"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["--repository", "old", "check", "--read-data"]) == 0


def test_key_list(repo, capsys):
    assert main(["key", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(repo.key.key_id_hex) and out[1].endswith("current")


def test_read_only_verbs_import_no_prefect(repo, tmp_path):
    """A separate process, as an operator runs it: `snapshots`, `check` and `key list`
    answer without importing Prefect (no temporary API server, no settings to load)."""
    _backup(repo, "files", "uploads", os.urandom(10_000))
    code = (
        "import sys\n"
        "from scholar_ops.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "heavy = [m for m in ('prefect', 'prefect_aws', 'chromadb', 'great_expectations') "
        "if m in sys.modules]\n"
        "print('imported:', heavy, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    for verb in (["snapshots"], ["check"], ["key", "list"], ["unlock"], ["--help"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *verb],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        if verb != ["--help"]:
            assert "imported: []" in proc.stderr, (verb, proc.stderr)
