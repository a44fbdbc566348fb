"""Two processes creating the same new repository at once: both end up able to read everything."""

from __future__ import annotations

import threading

from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.errors import RepositoryExists
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.storage import LocalStorage


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)


def test_concurrent_init_then_cross_reads(tmp_path, master):
    storage = LocalStorage(str(tmp_path / "repo"))
    barrier = threading.Barrier(4)
    repos: list[Repository] = []
    lock = threading.Lock()

    def create() -> None:
        barrier.wait()
        try:
            r = Repository.init(storage, master)
        except RepositoryExists:
            r = Repository.open(storage, master)
        with lock:
            repos.append(r)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(repos) == 4
    payloads = [bytes([i]) * 300_000 + bytes(range(256)) * i for i in range(4)]
    snaps = [
        backup_stream(r, _Stream(p), component="files", target=f"t{i}")
        for i, (r, p) in enumerate(zip(repos, payloads, strict=True))
    ]
    # Every handle reads what every other one wrote (key sets written meanwhile are loaded).
    for r in repos:
        for snap, payload in zip(snaps, payloads, strict=True):
            sink = _Sink()
            restore_stream(r, snap, sink)
            assert bytes(sink.data) == payload
    fresh = Repository.open(storage, master)
    assert sorted(s.target for s in fresh.snapshots()) == ["t0", "t1", "t2", "t3"]


class _Stream:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def readinto(self, b: memoryview | bytearray) -> int:
        n = min(len(b), len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n
