"""BackupWriter.add_unchanged: reusing an earlier snapshot's entry without reading its data."""

from __future__ import annotations

import dataclasses
import io

from scholar_ops.testbed.datagen import GeneratedStream
from scholar_ops.vault.archiver import BackupWriter
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.snapshot import Entry

MB = 1 << 20


def _first(repo, data: bytes):
    with BackupWriter(repo, component="files", target="t") as w:
        w.add_stream("a.bin", io.BytesIO(data), kind="file", mode=0o644, mtime_ns=1)
        return w.commit()


def test_incremental_reuses_an_entry_whose_chunks_are_indexed(repo):
    data = GeneratedStream(9 * MB, seed=11).read()
    first = _first(repo, data)
    prev = first.entries[0]
    assert len(prev.chunks) >= 2
    with BackupWriter(repo, component="files", target="t") as w:
        reused = dataclasses.replace(prev, chunks=list(prev.chunks), mode=0o600)
        assert w.add_unchanged(reused)
        snap = w.commit()
    assert snap.entries == [reused]
    assert snap.size_bytes == len(data)
    assert snap.checksum == first.checksum
    assert snap.stats["chunks_total"] == len(prev.chunks)
    assert snap.stats["chunks_new"] == 0
    assert snap.stats["bytes_new"] == 0
    assert snap.stats["packs_written"] == 0
    out = io.BytesIO()
    restore_stream(repo, repo.load_snapshot(snap.backup_id), out)
    assert out.getvalue() == data


def test_full_backup_refuses_to_reuse(repo):
    first = _first(repo, GeneratedStream(2 * MB, seed=12).read())
    with BackupWriter(repo, component="files", target="t", backup_type="full") as w:
        assert not w.add_unchanged(first.entries[0])
        assert w.entries == []
        assert w.stats.chunks_total == 0


def test_missing_chunk_refuses_to_reuse(repo):
    first = _first(repo, GeneratedStream(2 * MB, seed=13).read())
    entry = first.entries[0]
    with BackupWriter(repo, component="files", target="t") as w:
        assert not w.add_unchanged(dataclasses.replace(entry, chunks=[*entry.chunks, "00" * 32]))
        assert not w.add_unchanged(dataclasses.replace(entry, chunks=["not hex"]))
        assert w.entries == []
        # An entry without chunks (an empty file) needs nothing from the index.
        empty = Entry(name="empty", kind="file", sha256=entry.sha256)
        assert w.add_unchanged(empty)
        assert w.entries == [empty]


def test_chunks_written_earlier_in_the_same_backup_count_as_present(repo):
    data = GeneratedStream(2 * MB, seed=14).read()
    with BackupWriter(repo, component="files", target="t") as w:
        e = w.add_stream("a", io.BytesIO(data))  # new chunks, not in any index yet
        assert w.add_unchanged(dataclasses.replace(e, name="b"))
        snap = w.commit()
    assert [x.name for x in snap.entries] == ["a", "b"]
    assert snap.stats["bytes_new"] == len(data)
    assert snap.stats["chunks_total"] == 2 * len(e.chunks)
    out = io.BytesIO()
    restore_stream(repo, snap, out, name="b")
    assert out.getvalue() == data


class _FailingStream:
    """Gives ``ok`` bytes of ``data``, then fails like a disk read error."""

    def __init__(self, data: bytes, ok: int) -> None:
        self.data, self.ok, self.pos = data, ok, 0

    def readinto(self, b: memoryview) -> int:
        if self.pos >= self.ok:
            raise OSError(5, "Input/output error")
        n = min(len(b), self.ok - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_a_stream_failing_midway_still_stores_the_chunks_it_claimed(repo):
    # A caller may skip the failed entry and go on; an entry sharing its chunks must restore.
    data = GeneratedStream(14 * MB, seed=15).read()
    with BackupWriter(repo, component="files", target="t") as w:
        try:
            w.add_stream("broken", _FailingStream(data, 12 * MB))
        except OSError:
            pass
        else:
            raise AssertionError("the stream error was swallowed")
        w.add_stream("whole", io.BytesIO(data))
        snap = w.commit()
    assert [e.name for e in snap.entries] == ["whole"]
    out = io.BytesIO()
    restore_stream(repo, repo.load_snapshot(snap.backup_id), out)
    assert out.getvalue() == data
