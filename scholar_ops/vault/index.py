"""The index: where each chunk is stored (pack, offset, length).

Index objects are sealed JSON ``{"packs": {pack-id: [[chunk-id, offset, length, raw], ...]}}``.
In memory the index is the union of all of them; a chunk may live in several packs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from scholar_ops.vault.pack import BlobEntry

INDEX_PREFIX = "index/"
INDEX_KIND = "index"


class Location(NamedTuple):
    pack_id: str
    offset: int
    length: int
    raw_length: int


class Index:
    def __init__(self) -> None:
        self._chunks: dict[bytes, list[Location]] = {}
        self.packs: dict[str, list[BlobEntry]] = {}

    def __contains__(self, chunk_id: bytes) -> bool:
        return chunk_id in self._chunks

    def __len__(self) -> int:
        return len(self._chunks)

    def add_pack(self, pack_id: str, entries: Iterable[BlobEntry]) -> None:
        if pack_id in self.packs:
            return
        entries = list(entries)
        self.packs[pack_id] = entries
        for e in entries:
            self._chunks.setdefault(e.chunk_id, []).append(
                Location(pack_id, e.offset, e.length, e.raw_length)
            )

    def locations(self, chunk_id: bytes) -> list[Location]:
        return self._chunks.get(chunk_id, [])

    def chunk_ids(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def merge(self, other: Index) -> None:
        for pack_id, entries in other.packs.items():
            self.add_pack(pack_id, entries)


def new_index_name() -> str:
    return INDEX_PREFIX + os.urandom(32).hex()


def encode_index(packs: dict[str, list[BlobEntry]]) -> bytes:
    doc = {
        "packs": {
            pid: [[e.chunk_id.hex(), e.offset, e.length, e.raw_length] for e in entries]
            for pid, entries in packs.items()
        }
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_index(payload: bytes) -> dict[str, list[BlobEntry]]:
    doc = json.loads(payload)
    return {
        pid: [BlobEntry(bytes.fromhex(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
        for pid, rows in doc["packs"].items()
    }
