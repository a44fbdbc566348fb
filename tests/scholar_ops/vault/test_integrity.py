"""Tampering, wrong keys and confidentiality: damage is named, never returned."""

from __future__ import annotations

import io

import pytest

from scholar_ops.testbed.datagen import GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import IntegrityError, WrongKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream

MB = 1 << 20


def _objects(storage):
    return {o.name: storage.get(o.name) for o in storage.list()}


def _flip(storage, name, pos):
    data = bytearray(storage.get(name))
    data[pos % len(data)] ^= 0x01
    storage.put(name, bytes(data))


@pytest.fixture
def populated(repo):
    data = GeneratedStream(6 * MB, seed=11).read()
    snap = backup_stream(repo, io.BytesIO(data), component="pg", target="db")
    return repo, snap, data


def test_flipped_byte_in_any_object_is_detected_by_check_naming_it(populated, master):
    repo, _snap, _ = populated
    names = sorted(n for n in _objects(repo.storage) if not n.startswith("locks/"))
    kinds = {n.split("/")[0] for n in names}
    assert {"config", "keys", "data", "index", "snapshots"} <= kinds
    for name in names:
        for pos in (0, 40, -20):  # header, body, tail
            original = repo.storage.get(name)
            _flip(repo.storage, name, pos)
            try:
                if name == "config" or name.startswith("keys/"):
                    # these are read when the repository opens
                    with pytest.raises((IntegrityError, WrongKey)) as exc:
                        Repository.open(repo.storage, master)
                    assert name in str(exc.value) or isinstance(exc.value, WrongKey)
                    continue
                report = check(Repository.open(repo.storage, master), read_data=1.0)
                assert not report.ok, f"flip at {pos} in {name} went unnoticed"
                assert any(p.object_name == name for p in report.problems), report.problems
            finally:
                repo.storage.put(name, original)
    assert check(Repository.open(repo.storage, master), read_data=1.0).ok


def test_flipped_byte_is_detected_by_restore_naming_the_object(populated, master):
    repo, snap, _ = populated
    targets = [n for n in _objects(repo.storage) if n.startswith(("data/", "index/", "snapshots/"))]
    for name in targets:
        original = repo.storage.get(name)
        _flip(repo.storage, name, len(original) // 3)
        try:
            fresh = Repository.open(repo.storage, master)
            with pytest.raises(IntegrityError) as exc:
                s = fresh.find_snapshot(snap.backup_id)
                restore_stream(fresh, s, io.BytesIO())
            assert exc.value.object_name == name
            assert name in str(exc.value)
        finally:
            repo.storage.put(name, original)


def test_wrong_key_is_a_clear_error_and_writes_nothing(populated):
    repo, _snap, _ = populated
    before = _objects(repo.storage)
    with pytest.raises(WrongKey, match="master key does not open"):
        Repository.open(repo.storage, MasterKey.from_string("not-the-right-key-at-all"))
    assert _objects(repo.storage) == before


def test_no_16_byte_substring_of_the_source_is_stored(repo):
    source = GeneratedStream(2 * MB, seed=12).read()
    backup_stream(repo, io.BytesIO(source), component="pg", target="db")
    windows = {source[i : i + 16] for i in range(len(source) - 15)}
    for name, data in _objects(repo.storage).items():
        leaked = next((i for i in range(len(data) - 15) if data[i : i + 16] in windows), None)
        assert leaked is None, f"{name} contains source bytes at {leaked}"


def test_check_fraction_reads_some_packs(populated):
    repo, _, _ = populated
    full = check(repo, read_data=1.0)
    part = check(repo, read_data=0.5, seed=1)
    assert full.ok and part.ok
    assert 0 < part.packs_read <= full.packs_read
    assert check(repo).packs_read == 0


def test_check_reports_missing_pack_and_snapshot(populated):
    repo, snap, _ = populated
    victim = f"data/{snap.packs[0][:2]}/{snap.packs[0]}"
    repo.storage.delete(victim)
    report = check(repo)
    assert not report.ok
    assert any(
        p.object_name == victim and snap.backup_id in p.snapshot_ids for p in report.problems
    )
