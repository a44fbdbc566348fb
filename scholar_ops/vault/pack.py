"""Packs: many encrypted blobs in one object, with an encrypted header listing them.

Layout: ``magic "SOP1" | key-id (8) | blob ... | sealed header | header length (4, BE)``.
The header is a sealed JSON list of ``[chunk-id hex, offset, length, raw length]``,
so a pack describes itself and the index can be rebuilt from packs alone. The
header is sealed under the pack's own object name: a pack copied over another
pack's name is recognised as such.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass

from scholar_ops.vault.crypto import aead
from scholar_ops.vault.errors import IntegrityError, MisplacedObject
from scholar_ops.vault.storage.base import Storage

PACK_MAGIC = b"SOP1"
PACK_PREFIX = "data/"
HEADER_KIND = "pack-header"
_TAIL_GUESS = 64 * 1024


@dataclass(frozen=True)
class BlobEntry:
    chunk_id: bytes
    offset: int
    length: int
    raw_length: int


def pack_name(pack_id: str) -> str:
    return f"{PACK_PREFIX}{pack_id[:2]}/{pack_id}"


def pack_id_of(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def new_pack_id() -> str:
    return os.urandom(32).hex()


class PackBuilder:
    """Accumulates encrypted blobs in memory until the pack is large enough."""

    def __init__(self, key_id: bytes, pack_id: str | None = None) -> None:
        self.pack_id = pack_id or new_pack_id()
        self.key_id = key_id
        self.parts: list[bytes] = [PACK_MAGIC + key_id]
        self.size = len(self.parts[0])
        self.entries: list[BlobEntry] = []

    def add(self, chunk_id: bytes, blob_parts: tuple[bytes, ...], raw_length: int) -> None:
        length = sum(len(p) for p in blob_parts)
        self.entries.append(BlobEntry(chunk_id, self.size, length, raw_length))
        self.parts.extend(blob_parts)
        self.size += length

    def finish(self, enc_key: bytes) -> bytes:
        header = json.dumps(
            [[e.chunk_id.hex(), e.offset, e.length, e.raw_length] for e in self.entries],
            separators=(",", ":"),
        ).encode()
        sealed = aead.seal(enc_key, self.key_id, pack_name(self.pack_id), header)
        data = b"".join([*self.parts, sealed, struct.pack(">I", len(sealed))])
        self.parts = []
        return data


def pack_key_id(data: bytes, name: str) -> bytes:
    if len(data) < 4 + aead.KEY_ID_LEN or data[:4] != PACK_MAGIC:
        raise IntegrityError(f"{name}: not a scholar-ops pack (bad magic)", name)
    return data[4 : 4 + aead.KEY_ID_LEN]


def parse_header(
    sealed: bytes, enc_key: bytes, name: str, pack_size: int, *, legacy: bool = False
) -> list[BlobEntry]:
    """The header's entries. ``legacy`` also accepts a format-1 header (the migration)."""
    if legacy and aead.sealed_version(sealed, name) == 1:
        payload = aead.unseal_v1(enc_key, HEADER_KIND, sealed, name)
    else:
        try:
            payload = aead.unseal(enc_key, sealed, name, HEADER_KIND)
        except MisplacedObject as e:
            # The header is named after its pack: say "pack", not "pack header".
            raise MisplacedObject(name, e.declared_name, "pack") from None
    try:
        rows = json.loads(payload)
        entries = [BlobEntry(bytes.fromhex(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
    except (ValueError, TypeError, IndexError) as e:
        raise IntegrityError(f"{name}: pack header is malformed ({e})", name) from None
    for entry in entries:
        if entry.offset < 4 + aead.KEY_ID_LEN or entry.offset + entry.length > pack_size:
            raise IntegrityError(f"{name}: pack header points outside the pack", name)
    return entries


def read_header(
    storage: Storage, name: str, size: int, keys: dict[bytes, bytes], *, legacy: bool = False
) -> tuple[bytes, list[BlobEntry]]:
    """Read a pack's header with ranged gets of its tail. Returns (key id, entries).

    ``keys`` maps key ids to AES keys.
    """
    if size < 4 + aead.KEY_ID_LEN + aead.SEALED_OVERHEAD_V1 + 4:
        raise IntegrityError(f"{name}: pack too short ({size} bytes)", name)
    start = max(0, size - _TAIL_GUESS)
    tail = storage.get(name, start)
    (hlen,) = struct.unpack(">I", tail[-4:])
    if hlen + 4 > size - 4 - aead.KEY_ID_LEN:
        raise IntegrityError(f"{name}: pack header length is corrupt", name)
    if hlen + 4 > len(tail):
        tail = storage.get(name, size - hlen - 4)
    sealed = tail[len(tail) - 4 - hlen : len(tail) - 4]
    key_id = aead.sealed_key_id(sealed, name)
    enc_key = keys.get(key_id)
    if enc_key is None:
        raise IntegrityError(f"{name}: written with unknown key {key_id.hex()}", name)
    return key_id, parse_header(sealed, enc_key, name, size, legacy=legacy)
