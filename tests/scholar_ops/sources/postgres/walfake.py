"""Fabricated WAL files for the WAL archive's tests: a data directory with global/pg_control
and segments whose long page header says what a real one says (system id, timeline,
address, segment size), filled with random bytes. 1 MB segments keep them small."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from scholar_ops.sources.postgres.wal.names import segment_name

SEG = 1 << 20


class FakeCluster:
    def __init__(self, datadir: Path, system_id: int, seg_size: int = SEG) -> None:
        self.datadir = datadir
        self.system_id = system_id
        self.seg_size = seg_size
        (datadir / "pg_wal").mkdir(parents=True, exist_ok=True)
        (datadir / "global").mkdir(exist_ok=True)
        (datadir / "global" / "pg_control").write_bytes(struct.pack("=Q", system_id) + bytes(248))

    def segment(self, timeline: int, segno: int, *, seed: bytes = b"") -> Path:
        """A segment file in pg_wal (random content after the header, or ``seed`` repeated)."""
        name = segment_name(timeline, segno, self.seg_size)
        header = struct.pack("=HHIQI", 0xD110, 0x0002, timeline, segno * self.seg_size, 0)
        header += bytes(24 - len(header)) + struct.pack("=QII", self.system_id, self.seg_size, 8192)
        rest = self.seg_size - len(header)
        body = (seed * (rest // len(seed) + 1))[:rest] if seed else os.urandom(rest)
        path = self.datadir / "pg_wal" / name
        path.write_bytes(header + body)
        return path

    def file(self, name: str, content: bytes) -> Path:
        path = self.datadir / "pg_wal" / name
        path.write_bytes(content)
        return path
