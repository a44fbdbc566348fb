"""Master key rotation and key handling."""

from __future__ import annotations

import io

import pytest

from scholar_ops.testbed.datagen import GeneratedStream
from scholar_ops.vault import audit
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import ConfigError, WrongKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream


def test_rotation_rewraps_keys_without_touching_data(repo, master):
    data = GeneratedStream(5 << 20, seed=21).read()
    snap = backup_stream(repo, io.BytesIO(data), component="c", target="t")
    before = {o.name: repo.storage.get(o.name) for o in repo.storage.list()}
    new = MasterKey.from_string("a-brand-new-master-key-42424242")
    rewritten = repo.rotate_master_key(new)
    after = {o.name: repo.storage.get(o.name) for o in repo.storage.list()}
    changed = {n for n in after if before.get(n) != after[n]}
    # Besides the key sets, only the rotation's new audit record (vault.audit).
    (record,) = {n for n in changed if n.startswith("audit/")}
    assert record not in before and audit.read_record(repo, record).operation == "key-rotate"
    changed.discard(record)
    assert changed == set(rewritten) and all(n.startswith("keys/") for n in changed)
    with pytest.raises(WrongKey):
        Repository.open(repo.storage, master)
    reopened = Repository.open(repo.storage, new)
    out = io.BytesIO()
    restore_stream(reopened, reopened.find_snapshot(snap.backup_id), out)
    assert out.getvalue() == data
    assert snap.encryption_key_id == reopened.key.key_id_hex


def test_master_key_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("SCHOLAR_OPS_MASTER_KEY", raising=False)
    monkeypatch.delenv("SCHOLAR_OPS_MASTER_KEY_FILE", raising=False)
    with pytest.raises(ConfigError, match="no master key"):
        MasterKey.from_env()
    keyfile = tmp_path / "key"
    keyfile.write_text("from-a-file-0123456789\n")
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY_FILE", str(keyfile))
    assert MasterKey.from_env().secret == b"from-a-file-0123456789"
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", "from-the-environment-0123")
    assert MasterKey.from_env().secret == b"from-the-environment-0123"
    assert "from" not in repr(MasterKey.from_env())
    with pytest.raises(ConfigError, match="shorter than 16"):
        MasterKey.from_string("short")
