"""AES-256-GCM primitives: sealed objects and blobs.

Sealed object (format 2)::

    magic "SOS2" | key-id (8) | name length (2, BE) | name (UTF-8) | nonce (12) | ciphertext+tag

Everything before the nonce is associated data, so the object is bound to the
name it was written under: a snapshot copied over another snapshot's name, an
index over another index or a pack header moved into another pack still
authenticates, but under its own (declared) name, and the reader refuses it
naming both. The name also fixes the object's kind (``snapshots/...`` is a
snapshot). Format-1 objects (``SOS1``: no name, the kind as associated data)
are read only by the format migration (``scholar_ops.vault.migrate``).

Blob: ``alg (1) | nonce (12) | ciphertext+tag`` with the chunk id and the
compression byte as associated data.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scholar_ops.vault.errors import IntegrityError, MisplacedObject

SEALED_MAGIC = b"SOS2"
SEALED_MAGIC_V1 = b"SOS1"
KEY_ID_LEN = 8
NONCE_LEN = 12
TAG_LEN = 16
MAX_NAME_LEN = 1024
#: Fixed overhead of a sealed object, not counting its name.
SEALED_OVERHEAD = len(SEALED_MAGIC) + KEY_ID_LEN + 2 + NONCE_LEN + TAG_LEN
SEALED_OVERHEAD_V1 = len(SEALED_MAGIC_V1) + KEY_ID_LEN + NONCE_LEN + TAG_LEN
BLOB_OVERHEAD = 1 + NONCE_LEN + TAG_LEN


def seal(key: bytes, key_id: bytes, name: str, payload: bytes) -> bytes:
    """Encrypt ``payload`` as the object called ``name``."""
    encoded = name.encode()
    if len(encoded) > MAX_NAME_LEN:
        raise ValueError(f"object name too long to seal: {name[:64]}…")
    header = SEALED_MAGIC + key_id + struct.pack(">H", len(encoded)) + encoded
    nonce = os.urandom(NONCE_LEN)
    return header + nonce + AESGCM(key).encrypt(nonce, payload, header)


def sealed_key_id(data: bytes, name: str) -> bytes:
    """The key id a sealed object (of either format) was written with."""
    if len(data) >= SEALED_OVERHEAD_V1 and data[:4] in (SEALED_MAGIC, SEALED_MAGIC_V1):
        return data[4 : 4 + KEY_ID_LEN]
    raise IntegrityError(f"{name}: not a scholar-ops object (bad magic or too short)", name)


def sealed_version(data: bytes, name: str) -> int:
    sealed_key_id(data, name)
    return 2 if data[:4] == SEALED_MAGIC else 1


def _split(data: bytes, name: str) -> tuple[bytes, str, bytes, bytes]:
    """(header, declared name, nonce, ciphertext) of a format-2 object."""
    if sealed_version(data, name) != 2:
        raise IntegrityError(
            f"{name}: a format-1 object in a format-2 repository (written by an old version, "
            "or put there from an older copy)",
            name,
        )
    start = len(SEALED_MAGIC) + KEY_ID_LEN
    (length,) = struct.unpack(">H", data[start : start + 2])
    end = start + 2 + length
    if len(data) < end + NONCE_LEN + TAG_LEN:
        raise IntegrityError(f"{name}: truncated sealed object", name)
    try:
        declared = data[start + 2 : end].decode()
    except UnicodeDecodeError:
        raise IntegrityError(f"{name}: damaged (the sealed name is not text)", name) from None
    return data[:end], declared, data[end : end + NONCE_LEN], data[end + NONCE_LEN :]


def unseal(key: bytes, data: bytes, name: str, kind: str = "") -> bytes:
    """Decrypt the object read under ``name``; refuse one written under another name.

    ``kind`` only words the error messages (snapshot, index, pack header...).
    """
    header, declared, nonce, ciphertext = _split(data, name)
    try:
        payload = AESGCM(key).decrypt(nonce, ciphertext, header)
    except InvalidTag:
        what = f"{kind} object" if kind else "object"
        raise IntegrityError(
            f"{name}: authentication failed ({what} damaged or tampered with)", name
        ) from None
    if declared != name:
        raise MisplacedObject(name, declared, kind)
    return payload


def unseal_v1(key: bytes, kind: str, data: bytes, name: str) -> bytes:
    """Decrypt a format-1 object (the migration only): the kind, not the name, is bound."""
    if sealed_version(data, name) != 1:
        raise IntegrityError(f"{name}: not a format-1 object", name)
    header = data[: len(SEALED_MAGIC_V1) + KEY_ID_LEN]
    nonce = data[len(header) : len(header) + NONCE_LEN]
    try:
        return AESGCM(key).decrypt(nonce, data[len(header) + NONCE_LEN :], header + kind.encode())
    except InvalidTag:
        raise IntegrityError(
            f"{name}: authentication failed ({kind} object damaged or tampered with)", name
        ) from None


def encrypt_blob(
    aes: AESGCM, chunk_id: bytes, alg: int, body: bytes | memoryview
) -> tuple[bytes, bytes]:
    """Returns the blob as two parts (prefix, ciphertext), so no large copy is made to join them."""
    prefix = bytes([alg]) + os.urandom(NONCE_LEN)
    return prefix, aes.encrypt(prefix[1:], body, chunk_id + prefix[:1])


def decrypt_blob(
    aes: AESGCM, chunk_id: bytes, blob: bytes | memoryview, name: str
) -> tuple[int, bytes]:
    """Returns (compression algorithm, body)."""
    if len(blob) < BLOB_OVERHEAD:
        raise IntegrityError(f"{name}: blob {chunk_id.hex()[:16]}… is truncated", name)
    try:
        alg = blob[0]
        body = aes.decrypt(
            bytes(blob[1 : 1 + NONCE_LEN]), blob[1 + NONCE_LEN :], chunk_id + bytes([alg])
        )
        return alg, body
    except InvalidTag:
        raise IntegrityError(
            f"{name}: blob {chunk_id.hex()[:16]}… failed authentication (damaged or tampered with)",
            name,
        ) from None
