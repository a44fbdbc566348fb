"""`scholar-ops audit`: listing, --since, --json and --verify on a tampered trail; read
directly, without Prefect (the profile `setup` writes)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scholar_ops.cli import main
from scholar_ops.cli.direct import Profile
from scholar_ops.vault import audit
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage

ROOT = Path(__file__).resolve().parents[2]
KEY = "audit-verb-master-key-0123456789"
BLOCK = "audit-repository"


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Repository:
    key_file = tmp_path / "master.key"
    key_file.write_text(KEY + "\n")
    for var in ("SCHOLAR_OPS_MASTER_KEY", "SCHOLAR_OPS_MASTER_KEY_FILE", "PREFECT_API_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(audit.FLOW_RUN_ENV, raising=False)
    monkeypatch.setenv("SCHOLAR_OPS_REPOSITORY", BLOCK)
    monkeypatch.setenv("SCHOLAR_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "no-prefect-here"))
    r = Repository.init(LocalStorage(tmp_path / "repo"), MasterKey.from_string(KEY))
    Profile(BLOCK, str(tmp_path / "repo"), "unused-secret", str(key_file), r.config.repo_id).save()
    return r


def _backup(repo: Repository) -> str:
    return backup_stream(
        repo, io.BytesIO(os.urandom(5000)), component="files", target="uploads"
    ).backup_id


def test_lists_filters_and_verifies(repo, capsys):
    sid = _backup(repo)
    assert main(["check"]) == 0
    capsys.readouterr()
    assert main(["audit"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["seq", "time", "operation", "outcome", "who"]
    assert [line.split()[2] for line in out[1:-1]] == ["init", "backup", "check"]
    assert sid[:8] in out[2] and out[-1] == "3 records"
    assert main(["audit", "--json", "--since", "1h"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["seq"], r["operation"], r["outcome"]) for r in records] == [
        (1, "init", "ok"),
        (2, "backup", "ok"),
        (3, "check", "ok"),
    ]
    assert records[1]["snapshots"] == [sid]
    assert records[2]["prev"][0]["name"] == records[1]["name"]
    assert main(["audit", "--json", "--since", "2999-01-01"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["audit", "--verify"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("audit trail verified: 3 records, tip 3 (")
    with pytest.raises(SystemExit):
        main(["audit", "--since", "yesterday"])
    assert "neither an ISO date/time nor a duration" in capsys.readouterr().err


def test_verify_names_a_deleted_record_and_check_reports_it(repo, capsys):
    for _ in range(3):
        _backup(repo)
    names = sorted(o.name for o in repo.storage.list(audit.AUDIT_PREFIX))
    repo.storage.delete(names[2])
    assert main(["audit", "--verify"]) == 3
    err = capsys.readouterr().err
    assert f"damaged: {names[2]}: missing: record {names[3]} names it" in err
    assert f"the audit trail is damaged at {names[2]}" in err
    assert main(["check"]) == 3
    assert f"damaged: {names[2]}: audit trail: missing" in capsys.readouterr().err


def test_verify_names_edited_and_swapped_records(repo, capsys):
    for _ in range(3):
        _backup(repo)
    names = sorted(o.name for o in repo.storage.list(audit.AUDIT_PREFIX))
    data = bytearray(repo.storage.get(names[1]))
    data[-1] ^= 0x80
    repo.storage.put(names[1], bytes(data))
    assert main(["audit", "--verify"]) == 3
    err = capsys.readouterr().err
    assert f"the audit trail is damaged at {names[1]}" in err
    # Without --verify the listing still names an unreadable record (exit 3).
    assert main(["audit"]) == 3
    assert f"damaged: {names[1]}" in capsys.readouterr().err
    repo.storage.put(names[1], bytes(data[:-1]) + bytes([data[-1] ^ 0x80]))  # repaired
    a, b = repo.storage.get(names[2]), repo.storage.get(names[3])
    repo.storage.put(names[2], b)
    repo.storage.put(names[3], a)
    assert main(["audit", "--verify"]) == 3
    err = capsys.readouterr().err
    assert f"damaged: {names[2]}: holds the audit record written as {names[3]}" in err
    assert f"the audit trail is damaged at {names[2]}" in err


def test_audit_imports_no_prefect(repo, tmp_path):
    _backup(repo)
    code = (
        "import sys\n"
        "from scholar_ops.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "heavy = [m for m in ('prefect', 'prefect_aws') if m in sys.modules]\n"
        "print('imported:', heavy, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "audit", "--verify"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "imported: []" in proc.stderr
    assert "audit trail verified: 2 records" in proc.stdout
