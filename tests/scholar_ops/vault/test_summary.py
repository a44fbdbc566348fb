"""The formats every report uses: counted words, durations, rates, dedup ratios, and what
a snapshot holds in words."""

from __future__ import annotations

import pytest

from scholar_ops.vault.snapshot import Snapshot
from scholar_ops.vault.summary import (
    DEDUP_MIN_BYTES,
    BackupSummary,
    RestoreSummary,
    human_dedup,
    human_elapsed,
    human_rate,
    plural,
    snapshot_items,
)


@pytest.mark.parametrize(
    ("n", "word", "many", "text"),
    [
        (0, "database", None, "0 databases"),
        (1, "database", None, "1 database"),
        (2, "database", None, "2 databases"),
        (1, "entry", "entries", "1 entry"),
        (3, "entry", "entries", "3 entries"),
    ],
)
def test_plural(n, word, many, text):
    assert plural(n, word, many) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.00 s"),
        (0.004, "0.00 s"),
        (0.04, "0.04 s"),
        (0.3, "0.3 s"),
        (0.33333, "0.3 s"),
        (9.94, "9.9 s"),
        (9.96, "10 s"),
        (12.4, "12 s"),
        (59.4, "59 s"),
        (59.6, "1 min 00 s"),
        (245, "4 min 05 s"),
        (3599.4, "59 min 59 s"),
        (3600, "1 h 00 min"),
        (7500, "2 h 05 min"),
        (-1, "0.00 s"),
    ],
)
def test_human_elapsed(seconds, text):
    assert human_elapsed(seconds) == text


@pytest.mark.parametrize(
    ("nbytes", "seconds", "text"),
    [
        (4, 0.0, None),  # a 4-byte file in no measurable time: no "0.0 MB/s", no absurd rate
        (10_000_000, 0.049, None),
        (500, 1.0, "500 B/s"),
        (45_000, 1.0, "45 KB/s"),
        (4_500, 1.0, "4.5 KB/s"),
        (999_700, 1.0, "1.0 MB/s"),
        (2_500_000, 1.0, "2.5 MB/s"),
        (120_000_000, 1.0, "120 MB/s"),
        (3_000_000_000, 1.0, "3.0 GB/s"),
        (0, 2.0, "0 B/s"),
    ],
)
def test_human_rate(nbytes, seconds, text):
    assert human_rate(nbytes, seconds) == text


def test_dedup_only_when_it_means_something():
    assert human_dedup(4, 400) is None  # the 4-byte file: overhead, not deduplication
    assert human_dedup(DEDUP_MIN_BYTES - 1, 1000) is None
    assert human_dedup(10 << 20, 0) is None  # nothing stored
    assert human_dedup(32 << 20, 10 << 20) == "3.2x"
    assert human_dedup(100 << 20, 1 << 20) == "100x"


def _summary(size: int, stored: int, duration: float) -> BackupSummary:
    return BackupSummary(
        backup_id="0123456789abcdef",
        component="files",
        target="uploads",
        backup_type="full",
        timestamp="2026-12-04T08:00:00+00:00",
        size_bytes=size,
        new_bytes=stored,
        stored_bytes=stored,
        dedup_ratio=None,
        duration_s=duration,
        throughput_mb_s=0.0,
        checksum="x",
        retention_until=None,
        items="1 file",
    )


def test_a_tiny_backup_reads_well():
    tiny = _summary(4, 410, 0.0)
    assert tiny.timing() == "0.00 s"
    assert tiny.rate is None and tiny.dedup is None
    big = _summary(90_000_000, 30_000_000, 2.0)
    assert big.timing() == "2.0 s at 45 MB/s"
    assert big.dedup == "3.0x"


def _snap(component: str, details: dict) -> Snapshot:
    return Snapshot(
        backup_id="b" * 64,
        backup_type="full",
        timestamp="2026-12-04T08:00:00+00:00",
        size_bytes=0,
        checksum="",
        encryption_key_id="",
        storage_location="",
        retention_until=None,
        component=component,
        target="t",
        details=details,
    )


def test_snapshot_items_count_in_the_singular_and_the_plural():
    one_db = {"databases": {"0": {"keys": 1}}}
    assert snapshot_items(_snap("redis", one_db)) == "1 key in 1 database"
    two_dbs = {"databases": {"0": {"keys": 3}, "1": {"keys": 1}}}
    assert snapshot_items(_snap("redis", two_dbs)) == "4 keys in 2 databases"
    one_col = {"collections": [{"name": "chunks", "records": 1}]}
    assert snapshot_items(_snap("chroma", one_col)) == "1 collection, 1 record"
    assert snapshot_items(_snap("postgres", {"tables": ["a"]})) == "1 table"
    files = {"counts": {"files": 1, "files_unchanged": 0, "dirs": 2, "symlinks": 1}}
    assert snapshot_items(_snap("files", files)) == "1 file (0 unchanged), 2 dirs, 1 symlink"


def test_restore_line_says_how_long_in_words():
    r = RestoreSummary("files", "a" * 64, "/srv/x", "1 file", "checked", 0.3, {}, [], [])
    assert r.line() == "restored snapshot aaaaaaaa into /srv/x: 1 file in 0.3 s; checked"
