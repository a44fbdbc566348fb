"""An independent reader of a scholar-ops repository, written from docs/design.md alone.

It imports nothing from scholar_ops: only the primitives the spec names
(scrypt, HMAC-SHA256, AES-256-GCM, BLAKE3, zstd, gzip). If the store's format
and the document drift apart, this reader stops reading what the store writes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SpecError(Exception):
    pass


@dataclass
class KeySet:
    key_id: bytes
    enc_key: bytes
    id_key: bytes
    cdc_seed: int


def _b64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


class SpecReader:
    """Reads a local repository directory with the master key."""

    def __init__(self, root: Path, master_key: str) -> None:
        self.root = root
        self.secret = master_key.strip().encode()
        self.keys: dict[bytes, KeySet] = {}
        for path in sorted((root / "keys").iterdir()):
            ks = self._unwrap(path.name, path.read_bytes())
            self.keys[ks.key_id] = ks
        self.config = json.loads(self.unseal("config"))
        if self.config["version"] != 2:
            raise SpecError(f"format {self.config['version']}, not 2")

    # -- Keys ---------------------------------------------------------------------------

    def _unwrap(self, name: str, data: bytes) -> KeySet:
        doc = json.loads(data)
        kdf = doc["kdf"]
        assert kdf["name"] == "scrypt" and (kdf["n"], kdf["r"], kdf["p"]) == (32768, 8, 1)
        kek = hashlib.scrypt(
            self.secret, salt=_b64(kdf["salt"]), n=32768, r=8, p=1, maxmem=64 << 20, dklen=32
        )
        mkid = hmac.new(kek, b"scholar-ops master key id", hashlib.sha256).hexdigest()[:16]
        if mkid != doc["master_key_id"]:
            raise SpecError("wrong master key")
        aad = json.dumps({k: v for k, v in doc.items() if k != "wrapped"}, sort_keys=True)
        payload = json.loads(
            AESGCM(kek).decrypt(_b64(doc["nonce"]), _b64(doc["wrapped"]), aad.encode())
        )
        if name != doc["key_id"]:
            raise SpecError(f"keys/{name} holds key set {doc['key_id']}")
        return KeySet(
            bytes.fromhex(doc["key_id"]),
            _b64(payload["enc_key"]),
            _b64(payload["id_key"]),
            int(payload["cdc_seed"]),
        )

    # -- Sealed objects -----------------------------------------------------------------

    def open_sealed(self, name: str, data: bytes) -> bytes:
        if data[:4] != b"SOS2":
            raise SpecError(f"{name}: not a format-2 sealed object")
        key_id = data[4:12]
        (length,) = struct.unpack(">H", data[12:14])
        declared = data[14 : 14 + length].decode()
        header_end = 14 + length
        nonce = data[header_end : header_end + 12]
        payload = AESGCM(self.keys[key_id].enc_key).decrypt(
            nonce, data[header_end + 12 :], data[:header_end]
        )
        if declared != name:
            raise SpecError(f"{name} holds {declared}")
        return payload

    def unseal(self, name: str) -> bytes:
        return self.open_sealed(name, (self.root / name).read_bytes())

    def _objects(self, prefix: str) -> list[str]:
        base = self.root / prefix
        return sorted(f"{prefix}/{p.name}" for p in base.iterdir()) if base.is_dir() else []

    # -- Index, snapshots, tombstones ---------------------------------------------------

    def index(self) -> dict[bytes, list[tuple[str, int, int, int]]]:
        where: dict[bytes, list[tuple[str, int, int, int]]] = {}
        for name in self._objects("index"):
            doc = json.loads(self.unseal(name))
            for pack_id, rows in doc["packs"].items():
                for cid, offset, length, raw in rows:
                    where.setdefault(bytes.fromhex(cid), []).append((pack_id, offset, length, raw))
        return where

    def tombstones(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self._objects("forgotten"):
            out.update(json.loads(self.unseal(name))["forgotten"])
        return out

    def snapshots(self) -> dict[str, dict[str, Any]]:
        out = {}
        forgotten = self.tombstones()
        for name in self._objects("snapshots"):
            snap = json.loads(self.unseal(name))
            if "snapshots/" + snap["backup_id"] != name:
                raise SpecError(f"{name} describes {snap['backup_id']}")
            if snap["backup_id"] not in forgotten:
                out[snap["backup_id"]] = snap
        return out

    # -- Packs and blobs ----------------------------------------------------------------

    def pack_header(self, pack_id: str) -> list[list[Any]]:
        name = f"data/{pack_id[:2]}/{pack_id}"
        data = (self.root / name).read_bytes()
        assert data[:4] == b"SOP1"
        (hlen,) = struct.unpack(">I", data[-4:])
        return json.loads(self.open_sealed(name, data[-4 - hlen : -4]))

    def chunk(self, cid: bytes, loc: tuple[str, int, int, int]) -> bytes:
        pack_id, offset, length, raw = loc
        data = (self.root / "data" / pack_id[:2] / pack_id).read_bytes()
        keys = self.keys[data[4:12]]
        blob = data[offset : offset + length]
        alg = blob[0]
        body = AESGCM(keys.enc_key).decrypt(blob[1:13], blob[13:], cid + bytes([alg]))
        if alg == 0:
            plain = body
        elif alg == 1:
            plain = zstandard.ZstdDecompressor().decompress(body, max_output_size=raw)
        elif alg == 2:
            plain = zlib.decompress(body, wbits=31)
        else:
            raise SpecError(f"unknown compression {alg}")
        if len(plain) != raw or blake3.blake3(plain, key=keys.id_key).digest() != cid:
            raise SpecError(f"chunk {cid.hex()} does not match its id")
        return plain

    def entry_content(self, snap: dict[str, Any], entry: dict[str, Any]) -> bytes:
        where = self.index()
        own = set(snap["packs"])
        out = bytearray()
        for cid_hex in entry["chunks"]:
            cid = bytes.fromhex(cid_hex)
            locs = sorted(where[cid], key=lambda loc: loc[0] not in own)
            out += self.chunk(cid, locs[0])
        if entry["sha256"] and hashlib.sha256(out).hexdigest() != entry["sha256"]:
            raise SpecError(f"entry {entry['name']} restored with another sha256")
        return bytes(out)

    @staticmethod
    def checksum(entries: list[dict[str, Any]]) -> str:
        if len(entries) == 1:
            return "sha256:" + entries[0]["sha256"]
        h = hashlib.sha256()
        for e in sorted(entries, key=lambda e: e["name"]):
            h.update(f"{e['name']}\0{e['kind']}\0{e['sha256']}\n".encode())
        return "sha256:" + h.hexdigest()
