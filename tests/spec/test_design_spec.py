"""docs/design.md is a spec: an independent reader that follows it reads a committed
repository, and the store's own reader agrees with it."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer
from scholar_ops.vault.storage import LocalStorage
from tests.spec.reader import SpecError, SpecReader

HERE = Path(__file__).resolve().parent
EXPECTED = json.loads((HERE / "expected.json").read_text())


@pytest.fixture
def reader() -> SpecReader:
    return SpecReader(HERE / "repository", EXPECTED["master_key"])


def test_the_spec_reader_finds_every_snapshot_and_restores_every_entry(reader):
    snaps = reader.snapshots()
    assert set(snaps) == set(EXPECTED["snapshots"])  # the forgotten one is tombstoned
    assert set(reader.tombstones()) == set(EXPECTED["forgotten"])
    for backup_id, want in EXPECTED["snapshots"].items():
        snap = snaps[backup_id]
        assert {k: snap[k] for k in ("component", "target", "backup_type", "checksum")} == {
            k: want[k] for k in ("component", "target", "backup_type", "checksum")
        }
        assert reader.checksum(snap["entries"]) == want["checksum"]
        for entry in snap["entries"]:
            assert want["entries"][entry["name"]]["sha256"] == entry["sha256"]
            content = reader.entry_content(snap, entry)
            assert len(content) == want["entries"][entry["name"]]["size"]


def test_every_pack_header_matches_the_index(reader):
    where = reader.index()
    for pack_dir in (reader.root / "data").iterdir():
        for pack in pack_dir.iterdir():
            for cid, offset, length, raw in reader.pack_header(pack.name):
                assert (pack.name, offset, length, raw) in where[bytes.fromhex(cid)]


def test_the_store_and_the_spec_reader_agree_byte_for_byte(reader):
    repo = Repository.open(
        LocalStorage(HERE / "repository"), MasterKey.from_string(EXPECTED["master_key"])
    )
    restorer = Restorer(repo)
    for snap in repo.snapshots():
        spec_snap = reader.snapshots()[snap.backup_id]
        for entry, spec_entry in zip(snap.entries, spec_snap["entries"], strict=True):
            ours = io.BytesIO()
            restorer.restore_entry(snap, entry, ours)
            assert ours.getvalue() == reader.entry_content(spec_snap, spec_entry)


def test_the_spec_reader_refuses_a_swapped_snapshot_too(tmp_path):
    root = tmp_path / "repository"
    shutil.copytree(HERE / "repository", root)
    a, b, *_ = sorted((root / "snapshots").iterdir())
    a.write_bytes(b.read_bytes())
    with pytest.raises(SpecError, match=f"snapshots/{a.name} holds snapshots/{b.name}"):
        SpecReader(root, EXPECTED["master_key"]).snapshots()
