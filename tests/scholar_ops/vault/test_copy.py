"""Copying snapshots between repositories (a second copy), on local and S3 storage."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from scholar_ops.testbed.datagen import GeneratedStream
from scholar_ops.vault import audit
from scholar_ops.vault.archiver import BackupWriter, backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.copy import COPIED_FROM, copy_snapshots
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import ConfigError, IntegrityError
from scholar_ops.vault.prune import RetentionPolicy, forget_and_prune, prune_by_policy
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer, restore_stream
from scholar_ops.vault.storage import LocalStorage

MB = 1 << 20
SOURCE_KEY = MasterKey.from_string("copy-test-source-master-key-0123")
DEST_KEY = MasterKey.from_string("copy-test-destination-master-key")


def _init(storage, master) -> Repository:
    return Repository.init(storage, master, pack_size=4 << 20)


@pytest.fixture(params=["local->s3", "s3->local"])
def pair(request, tmp_path):
    """(source, destination) across backends, each with its own master key."""
    src_kind, dst_kind = request.param.split("->")
    src_storage = request.getfixturevalue(f"{src_kind}_storage")
    dst_storage = request.getfixturevalue(f"{dst_kind}_storage")
    return _init(src_storage, SOURCE_KEY), _init(dst_storage, DEST_KEY)


@pytest.fixture
def local_pair(tmp_path):
    return (
        _init(LocalStorage(tmp_path / "source"), SOURCE_KEY),
        _init(LocalStorage(tmp_path / "destination"), DEST_KEY),
    )


def _restored(repo: Repository, backup_id: str) -> bytes:
    out = io.BytesIO()
    restore_stream(repo, repo.find_snapshot(backup_id), out)
    return out.getvalue()


def _copy_of(dest: Repository, source_id: str):
    (snap,) = [s for s in dest.snapshots() if s.details[COPIED_FROM]["backup_id"] == source_id]
    return snap


def test_copy_across_backends_restores_byte_identical_and_keeps_identity(pair):
    source, dest = pair
    data = GeneratedStream(6 * MB, seed=1).read()
    snap = backup_stream(
        source,
        io.BytesIO(data),
        component="postgres",
        target="db",
        backup_type="full",
        group="g1",
        tags=["weekly"],
        details={"database": "db"},
    )
    report = copy_snapshots(source, dest)
    assert report.ok and (report.copied, report.skipped) == (1, 0)
    assert report.bytes_transferred > len(data) // 10
    copy = _copy_of(dest, snap.backup_id)
    assert copy.backup_id != snap.backup_id
    for attr in ("component", "target", "group", "timestamp", "backup_type", "checksum", "tags"):
        assert getattr(copy, attr) == getattr(snap, attr), attr
    assert [(e.name, e.size, e.sha256) for e in copy.entries] == [
        (e.name, e.size, e.sha256) for e in snap.entries
    ]
    assert copy.details["database"] == "db"
    assert copy.details[COPIED_FROM]["repo_id"] == source.config.repo_id
    assert copy.encryption_key_id == dest.key.key_id_hex
    assert copy.storage_location == dest.location
    # Chunk ids are the destination's own keyed hashes.
    assert not set(copy.chunk_ids()) & set(snap.chunk_ids())
    fresh = Repository.open(dest.storage, DEST_KEY)
    assert _restored(fresh, copy.backup_id) == data
    assert check(fresh, read_data=1.0).ok


def test_second_copy_is_incremental_and_a_rerun_copies_nothing(local_pair):
    source, dest = local_pair
    base = GeneratedStream(8 * MB, seed=2).read()
    first = backup_stream(source, io.BytesIO(base), component="postgres", target="db")
    r1 = copy_snapshots(source, dest)
    assert r1.copied == 1
    changed = base[: 4 * MB] + b"an insert in the middle" + base[4 * MB :]
    second = backup_stream(source, io.BytesIO(changed), component="postgres", target="db")
    r2 = copy_snapshots(source, dest)
    assert (r2.copied, r2.skipped) == (1, 1)
    (item,) = [s for s in r2.snapshots if s.status == "copied"]
    assert item.source_id == second.backup_id
    # Only the chunks around the edit are read from the source and uploaded.
    assert item.chunks_new == item.chunks_read == second.stats["chunks_new"]
    assert item.chunks_new < item.chunks_total / 2
    assert item.bytes_transferred < r1.bytes_transferred / 2
    assert _restored(dest, _copy_of(dest, second.backup_id).backup_id) == changed
    assert _restored(dest, _copy_of(dest, first.backup_id).backup_id) == base

    objects = {o.name for o in dest.storage.list()}
    r3 = copy_snapshots(source, dest)
    assert (r3.copied, r3.skipped, r3.bytes_transferred) == (0, 2, 0)
    assert {s.reason for s in r3.snapshots} == {"already in the destination"}
    assert {o.name for o in dest.storage.list() if not o.name.startswith("locks/")} == {
        n for n in objects if not n.startswith("locks/")
    }


def test_selection_by_id_component_target_and_dry_run(local_pair):
    source, dest = local_pair
    a = backup_stream(source, io.BytesIO(b"a" * 5000), component="redis", target="cache")
    b = backup_stream(source, io.BytesIO(b"b" * 5000), component="postgres", target="db")
    c = backup_stream(source, io.BytesIO(b"c" * 5000), component="postgres", target="other")

    dry = copy_snapshots(source, dest, component="postgres", dry_run=True)
    assert [(s.source_id, s.status) for s in dry.snapshots] == [
        (b.backup_id, "would copy"),
        (c.backup_id, "would copy"),
    ]
    assert dest.snapshots() == []
    assert copy_snapshots(source, dest, ids=[a.backup_id[:10]]).copied == 1
    assert copy_snapshots(source, dest, component="postgres", target="other").copied == 1
    copied = {s.details[COPIED_FROM]["backup_id"] for s in dest.snapshots()}
    assert copied == {a.backup_id, c.backup_id}
    with pytest.raises(ConfigError, match="same repository"):
        copy_snapshots(source, Repository.open(source.storage, SOURCE_KEY))


def test_multi_entry_snapshot_restores_every_entry(local_pair, tmp_path):
    source, dest = local_pair
    files = {f"f{i}": GeneratedStream(300_000 * (i + 1), seed=i).read() for i in range(3)}
    with BackupWriter(source, component="files", target="uploads") as w:
        for name, content in files.items():
            w.add_stream(name, io.BytesIO(content), kind="file", mode=0o640)
        w.add_stream("again", io.BytesIO(files["f1"]), kind="file")  # duplicate chunks
        w.add_stream("empty", io.BytesIO(b""), kind="file")
        snap = w.commit()
    copy_snapshots(source, dest)
    copy = _copy_of(dest, snap.backup_id)
    restorer = Restorer(dest)
    for entry in copy.entries:
        out = io.BytesIO()
        restorer.restore_entry(copy, entry, out)
        expected = files.get(entry.name, files["f1"] if entry.name == "again" else b"")
        assert out.getvalue() == expected
        assert hashlib.sha256(out.getvalue()).hexdigest() == entry.sha256
    assert next(e for e in copy.entries if e.name == "f0").mode == 0o640


def _first_pack(repo: Repository) -> str:
    return next(o.name for o in repo.storage.list("data/"))


def test_damaged_source_chunk_fails_naming_it_and_leaves_no_snapshot(local_pair):
    source, dest = local_pair
    data = GeneratedStream(5 * MB, seed=3).read()
    good = backup_stream(source, io.BytesIO(b"fine" * 10_000), component="redis", target="r")
    snap = backup_stream(source, io.BytesIO(data), component="postgres", target="db")
    damaged = next(
        n
        for n in (o.name for o in source.storage.list("data/"))
        if n.rsplit("/", 1)[1] in snap.packs
    )
    raw = bytearray(source.storage.get(damaged))
    raw[len(raw) // 3] ^= 1
    source.storage.put(damaged, bytes(raw))

    report = copy_snapshots(source, dest)
    assert not report.ok and (report.copied, report.failed) == (1, 1)
    assert damaged in report.errors[0]
    with pytest.raises(IntegrityError) as exc:
        report.raise_for_errors()
    assert exc.value.object_name == damaged
    # Only the good snapshot arrived; no half snapshot, and the repository checks clean.
    assert [s.details[COPIED_FROM]["backup_id"] for s in dest.snapshots()] == [good.backup_id]
    assert check(dest).ok


@pytest.mark.parametrize("verify", ["full", "new"])
def test_an_upload_that_does_not_read_back_commits_nothing(local_pair, monkeypatch, verify):
    source, dest = local_pair
    backup_stream(
        source, io.BytesIO(GeneratedStream(2 * MB, seed=4).read()), component="c", target="t"
    )
    real_put = dest.storage.put

    def bad_put(name: str, data: bytes) -> None:
        if name.startswith("data/"):
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        real_put(name, data)

    monkeypatch.setattr(dest.storage, "put", bad_put)
    report = copy_snapshots(source, dest, verify=verify)
    assert report.failed == 1 and "data/" in report.errors[0]
    monkeypatch.undo()
    assert dest.snapshots() == []
    assert list(dest.storage.list("data/")) == []  # the packs that did not read back are gone
    # Fixed storage: the next run copies it (and prune would clear the damaged pack).
    assert copy_snapshots(source, dest, verify=verify).copied == 1
    assert check(dest, read_data=1.0).ok


def test_destination_retention_is_its_own(local_pair):
    source, dest = local_pair
    snaps = [
        backup_stream(
            source, io.BytesIO(GeneratedStream(MB, seed=s).read()), component="c", target="t"
        )
        for s in (5, 6, 7)
    ]
    copy_snapshots(source, dest)
    report = prune_by_policy(dest, RetentionPolicy(keep_last=1))
    assert len(report.snapshots_forgotten) == 2
    # The source keeps everything and still restores it.
    assert [s.backup_id for s in source.snapshots()] == [s.backup_id for s in snaps]
    assert check(source, read_data=1.0).ok
    for s in snaps:
        assert _restored(source, s.backup_id) == GeneratedStream(MB, seed=5 + snaps.index(s)).read()
    # What the destination's retention forgot is not copied again.
    again = copy_snapshots(source, dest)
    assert again.copied == 0
    assert sorted(s.reason for s in again.snapshots) == [
        "already in the destination",
        "forgotten by the destination's retention",
        "forgotten by the destination's retention",
    ]
    # Pruning the source does not touch the destination's copy.
    forget_and_prune(source, [snaps[-1].backup_id])
    kept = _copy_of(dest, snaps[-1].backup_id)
    assert _restored(dest, kept.backup_id) == GeneratedStream(MB, seed=7).read()


def test_copy_back_and_onwards_is_recognised(local_pair, tmp_path: Path):
    source, dest = local_pair
    snap = backup_stream(source, io.BytesIO(b"x" * 70_000), component="c", target="t")
    copy_snapshots(source, dest)
    back = copy_snapshots(dest, source)
    assert back.copied == 0
    assert back.snapshots[0].reason == "a copy of a snapshot of the destination"
    third = _init(
        LocalStorage(tmp_path / "third"), MasterKey.from_string("third-repository-key-0123")
    )
    assert copy_snapshots(dest, third).copied == 1
    (onwards,) = third.snapshots()
    # The primary loses the snapshot (no prune: a disaster): it is copied back from the copy.
    source.storage.delete(f"snapshots/{snap.backup_id}")
    restored = copy_snapshots(dest, source)
    assert restored.copied == 1
    (back_again,) = source.snapshots()
    assert _restored(source, back_again.backup_id) == b"x" * 70_000
    assert _restored(third, onwards.backup_id) == b"x" * 70_000
    assert onwards.details[COPIED_FROM]["repo_id"] == dest.config.repo_id
    assert onwards.checksum == snap.checksum


def test_the_independent_reader_reads_a_copy_and_its_id(local_pair, tmp_path):
    """docs/design.md is enough to read a copy: tests/spec/reader.py, and the id rule."""
    import blake3

    from tests.spec.reader import SpecReader

    source, dest = local_pair
    data = GeneratedStream(3 * MB, seed=9).read()
    snap = backup_stream(source, io.BytesIO(data), component="postgres", target="db")
    copy_snapshots(source, dest)
    reader = SpecReader(tmp_path / "destination", "copy-test-destination-master-key")
    ((backup_id, doc),) = reader.snapshots().items()
    key = reader.keys[bytes.fromhex(reader.config["current_key_id"])].id_key
    msg = f"scholar-ops copy\0{source.config.repo_id}\0{snap.backup_id}".encode()
    assert backup_id == blake3.blake3(msg, key=key).hexdigest()
    assert doc["details"]["copied_from"]["backup_id"] == snap.backup_id
    assert reader.entry_content(doc, doc["entries"][0]) == data
    assert reader.checksum(doc["entries"]) == doc["checksum"] == snap.checksum


def test_verify_new_reads_back_only_what_was_uploaded(local_pair, monkeypatch):
    source, dest = local_pair
    base = GeneratedStream(6 * MB, seed=12).read()
    backup_stream(source, io.BytesIO(base), component="c", target="t")
    copy_snapshots(source, dest)
    backup_stream(source, io.BytesIO(base + b"tail"), component="c", target="t")
    gets: list[tuple[str, int]] = []
    real_get = dest.storage.get

    def counting_get(name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = real_get(name, offset, length)
        if name.startswith("data/"):
            gets.append((name, len(data)))
        return data

    monkeypatch.setattr(dest.storage, "get", counting_get)
    report = copy_snapshots(source, dest, verify="new")
    assert report.copied == 1 and report.verify == "new"
    (item,) = [s for s in report.snapshots if s.status == "copied"]
    assert item.chunks_new >= 1
    # Only the one new pack is read (whole, once; and its key id), none of the first copy's.
    (pack,) = {name for name, _ in gets}
    assert pack.rsplit("/", 1)[1] in _copy_of(dest, item.source_id).packs
    assert sum(n for _, n in gets) <= dest.storage.stat(pack).size + 12 < MB
    monkeypatch.undo()
    assert _restored(dest, _copy_of(dest, item.source_id).backup_id) == base + b"tail"
    with pytest.raises(ConfigError, match="verify must be one of"):
        copy_snapshots(source, dest, verify="some")  # type: ignore[arg-type]


def test_a_copy_is_in_both_audit_trails(local_pair):
    source, dest = local_pair
    snap = backup_stream(source, GeneratedStream(2 << 20, seed=31), component="c", target="t")
    copy_snapshots(source, dest)
    source_records, problems = audit.read_all(source)
    assert problems == []
    (read,) = [r for r in source_records if r.operation == "copy"]
    assert read.outcome == "ok" and read.snapshots == [snap.backup_id]
    assert read.details["destination"] == dest.location and read.details["copied"] == 1
    dest_records, problems = audit.read_all(dest)
    assert problems == []
    assert [r.operation for r in dest_records if r.operation != "init"] == ["copy"]
    assert dest_records[-1].snapshots == [_copy_of(dest, snap.backup_id).backup_id]
    assert audit.verify(source).problems == [] and audit.verify(dest).problems == []
