"""WAL file names, segment arithmetic, and what a segment's first page says about itself.

PostgreSQL hands ``archive_command`` four kinds of file:

- a segment, ``TTTTTTTTXXXXXXXXYYYYYYYY`` (timeline, then the segment number split in two);
- a partial segment, the same name with ``.partial`` (the last segment of a timeline that a
  promotion ended, or pg_receivewal's unfinished one);
- a backup history file, ``<segment>.<offset 8 hex>.backup`` (written when a base backup ends);
- a timeline history file, ``TTTTTTTT.history`` (written at a promotion).

A segment's number and its start LSN depend on the segment size (``initdb --wal-segsize``,
1 MB to 1 GB): the size is read from the segment's own long page header, never assumed.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scholar_ops.vault.errors import ConfigError

WalKind = Literal["segment", "partial", "backup", "history"]

_SEGMENT = re.compile(r"([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})")
_PARTIAL = re.compile(r"([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial")
_BACKUP = re.compile(r"([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.([0-9A-F]{8})\.backup")
_HISTORY = re.compile(r"([0-9A-F]{8})\.history")

MIN_SEGMENT_SIZE = 1 << 20
MAX_SEGMENT_SIZE = 1 << 30
XLP_LONG_HEADER = 0x0002
_SHORT_HEADER = struct.Struct("=HHIQI")  # xlp_magic, xlp_info, xlp_tli, xlp_pageaddr, xlp_rem_len
_LONG_TAIL = struct.Struct("=QII")  # xlp_sysid, xlp_seg_size, xlp_xlog_blcksz (at offset 24)
_LONG_TAIL_OFFSET = 24  # MAXALIGN(sizeof(XLogPageHeaderData))
LONG_HEADER_SIZE = _LONG_TAIL_OFFSET + _LONG_TAIL.size


class WalNameError(ConfigError):
    """Not a file name PostgreSQL archives."""


@dataclass(frozen=True)
class WalName:
    name: str
    kind: WalKind
    timeline: int
    log: int = 0  # high half of the segment number (segments / backup history / partial)
    seg: int = 0  # low half
    offset: int = 0  # backup history files: the backup's start offset within the segment

    @property
    def has_segment(self) -> bool:
        return self.kind != "history"

    def segno(self, segment_size: int) -> int:
        return self.log * segments_per_xlogid(segment_size) + self.seg

    def start_lsn(self, segment_size: int) -> int:
        """First LSN the file covers (a backup history file: the backup's start LSN)."""
        return self.segno(segment_size) * segment_size + self.offset


def parse_wal_name(name: str) -> WalName:
    """The kind and position of a WAL file name; WalNameError for anything else."""
    if m := _SEGMENT.fullmatch(name):
        return WalName(name, "segment", int(m[1], 16), int(m[2], 16), int(m[3], 16))
    if m := _PARTIAL.fullmatch(name):
        return WalName(name, "partial", int(m[1], 16), int(m[2], 16), int(m[3], 16))
    if m := _BACKUP.fullmatch(name):
        return WalName(name, "backup", int(m[1], 16), int(m[2], 16), int(m[3], 16), int(m[4], 16))
    if m := _HISTORY.fullmatch(name):
        return WalName(name, "history", int(m[1], 16))
    raise WalNameError(
        f"{name!r} is not a WAL file name (a 24-hex-digit segment, .partial, .backup or "
        "TTTTTTTT.history): check that archive_command passes %p and restore_command %f"
    )


def segments_per_xlogid(segment_size: int) -> int:
    return 0x1_0000_0000 // segment_size


def segment_name(timeline: int, segno: int, segment_size: int) -> str:
    per = segments_per_xlogid(segment_size)
    return f"{timeline:08X}{segno // per:08X}{segno % per:08X}"


def segno_of(lsn: int, segment_size: int) -> int:
    """Number of the segment holding ``lsn``."""
    return lsn // segment_size


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """``16/B374D848`` -> int; ConfigError for anything else."""
    hi, sep, lo = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError
        return (int(hi, 16) << 32) | int(lo, 16)
    except ValueError:
        raise ConfigError(f"{text!r} is not an LSN (like 0/16B3748)") from None


def valid_segment_size(size: int) -> bool:
    return MIN_SEGMENT_SIZE <= size <= MAX_SEGMENT_SIZE and size & (size - 1) == 0


@dataclass(frozen=True)
class SegmentHeader:
    magic: int
    timeline: int
    page_address: int
    system_id: int
    segment_size: int
    block_size: int


def read_segment_header(data: bytes | memoryview, wal: WalName) -> SegmentHeader:
    """The long page header that starts every segment, checked against the file's name and size.

    A WalNameError names the file when the content is not the segment its name says.
    """
    if len(data) < LONG_HEADER_SIZE:
        raise WalNameError(
            f"{wal.name}: {len(data)} bytes, too short for a WAL segment: not archiving it"
        )
    magic, info, tli, pageaddr, _rem = _SHORT_HEADER.unpack_from(data, 0)
    sysid, seg_size, blcksz = _LONG_TAIL.unpack_from(data, _LONG_TAIL_OFFSET)
    problem = ""
    if not info & XLP_LONG_HEADER:
        problem = "its first page has no long header"
    elif not valid_segment_size(seg_size):
        problem = f"its header gives segment size {seg_size}"
    elif len(data) != seg_size:
        problem = f"it is {len(data)} bytes, its header says segments are {seg_size}"
    elif tli != wal.timeline and wal.kind == "segment":
        problem = f"its header says timeline {tli}"
    elif pageaddr != wal.segno(seg_size) * seg_size:
        problem = f"its header says it starts at {format_lsn(pageaddr)}"
    if problem:
        raise WalNameError(
            f"{wal.name}: not the WAL segment its name says ({problem}): not archiving it; "
            "check that archive_command passes %p"
        )
    return SegmentHeader(magic, tli, pageaddr, sysid, seg_size, blcksz)


def system_id_of_datadir(datadir: Path) -> int | None:
    """The database system identifier in ``datadir/global/pg_control``; None when unreadable."""
    try:
        with open(datadir / "global" / "pg_control", "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if len(head) != 8:
        return None
    (sysid,) = struct.unpack("=Q", head)
    return int(sysid) or None


def datadir_of(wal_path: Path) -> Path:
    """The data directory a path handed by PostgreSQL lies in (``pg_wal/NAME`` under it)."""
    return Path(wal_path).absolute().parent.parent


def parse_history(text: str) -> list[tuple[int, int]]:
    """A timeline history file's (parent timeline, switch point LSN) lines, oldest first."""
    out: list[tuple[int, int]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2:
            raise ValueError(f"history line {line!r} has no switch point")
        out.append((int(fields[0]), parse_lsn(fields[1])))
    return out
