"""`scholar-ops copy --to BLOCK`: two repositories, each opened from its profile with its own
key file (no Prefect), a copy, a re-run, a dry run, and a damaged source."""

from __future__ import annotations

import io
import os

import pytest

from scholar_ops.cli import main
from scholar_ops.cli.direct import Profile
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.copy import COPIED_FROM
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.storage import LocalStorage


def _repo(tmp_path, block: str, key: str) -> Repository:
    key_file = tmp_path / f"{block}.key"
    key_file.write_text(key + "\n")
    r = Repository.init(LocalStorage(tmp_path / block), MasterKey.from_string(key))
    Profile(block, str(tmp_path / block), "unused-secret", str(key_file), r.config.repo_id).save()
    return r


@pytest.fixture
def repos(tmp_path, monkeypatch):
    for var in ("SCHOLAR_OPS_MASTER_KEY", "SCHOLAR_OPS_MASTER_KEY_FILE", "PREFECT_API_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SCHOLAR_OPS_REPOSITORY", "main-repo")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "no-prefect-here"))
    return (
        _repo(tmp_path, "main-repo", "copy-verb-source-key-0123456789"),
        _repo(tmp_path, "offsite-repo", "copy-verb-destination-key-01234"),
    )


def test_copy_verb_copies_reports_and_is_idempotent(repos, capsys):
    source, dest = repos
    data = {t: os.urandom(200_000) for t in ("pg", "cache")}
    pg = backup_stream(source, io.BytesIO(data["pg"]), component="postgres", target="pg")
    rd = backup_stream(source, io.BytesIO(data["cache"]), component="redis", target="cache")

    assert main(["copy", "--to", "offsite-repo", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"would copy {pg.short_id} postgres/pg")
    assert out[-1].startswith("would copy 2 snapshot(s), skipped 0")
    assert dest.snapshots() == []

    assert main(["copy", "--to", "offsite-repo", "--component", "postgres", "--verify", "new"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"copied   {pg.short_id} postgres/pg") and "1/1 chunks new" in out[0]
    assert out[-1].startswith("copied 1 snapshot(s), skipped 0;")

    assert main(["copy", "--to", "offsite-repo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        f"skipped  {pg.short_id} postgres/pg" in out[0] and "already in the destination" in out[0]
    )
    assert out[1].startswith(f"copied   {rd.short_id} redis/cache")
    assert out[-1].startswith("copied 1 snapshot(s), skipped 1;")

    for snap in dest.snapshots():
        sink = io.BytesIO()
        restore_stream(dest, snap, sink)
        assert sink.getvalue() == data[snap.target]
        assert snap.details[COPIED_FROM]["repo_id"] == source.config.repo_id

    # The destination lists them with the usual verb.
    assert main(["--repository", "offsite-repo", "snapshots"]) == 0
    assert "2 snapshots" in capsys.readouterr().out


def test_copy_verb_exit_codes(repos, capsys):
    source, dest = repos
    snap = backup_stream(source, io.BytesIO(os.urandom(100_000)), component="files", target="f")
    assert main(["copy", "--to", "offsite-repo", "--snapshot", "ffff"]) == 2
    assert "no snapshot 'ffff'" in capsys.readouterr().err
    assert main(["copy", "--to", "main-repo"]) == 2
    assert "same repository" in capsys.readouterr().err
    (pack,) = [o.name for o in source.storage.list("data/")]
    raw = bytearray(source.storage.get(pack))
    raw[40] ^= 1
    source.storage.put(pack, bytes(raw))
    assert main(["copy", "--to", "offsite-repo", "--snapshot", snap.short_id]) == 3
    captured = capsys.readouterr()
    assert captured.out.startswith(f"failed   {snap.short_id} files/f") and pack in captured.out
    assert pack in captured.err
    assert dest.snapshots() == []
