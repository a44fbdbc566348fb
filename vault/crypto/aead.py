"""AES-256-GCM primitives: sealed objects and blobs.

Sealed object: ``magic "SOS1" | key-id (8) | nonce (12) | ciphertext+tag``, with
``magic | key-id | kind`` as associated data so an object of one kind cannot be
passed off as another. Blob: ``alg (1) | nonce (12) | ciphertext+tag`` with the
chunk id and the compression byte as associated data.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import IntegrityError

SEALED_MAGIC = b"SOS1"
KEY_ID_LEN = 8
NONCE_LEN = 12
TAG_LEN = 16
SEALED_OVERHEAD = len(SEALED_MAGIC) + KEY_ID_LEN + NONCE_LEN + TAG_LEN
BLOB_OVERHEAD = 1 + NONCE_LEN + TAG_LEN


def seal(key: bytes, key_id: bytes, kind: str, payload: bytes) -> bytes:
    nonce = os.urandom(NONCE_LEN)
    header = SEALED_MAGIC + key_id
    return header + nonce + AESGCM(key).encrypt(nonce, payload, header + kind.encode())


def sealed_key_id(data: bytes, name: str) -> bytes:
    """The key id a sealed object was written with (raises IntegrityError if malformed)."""
    if len(data) < SEALED_OVERHEAD or data[:4] != SEALED_MAGIC:
        raise IntegrityError(
            f"{name}: not a sealed scholar-ops object (bad magic or too short)", name
        )
    return data[4 : 4 + KEY_ID_LEN]


def unseal(key: bytes, kind: str, data: bytes, name: str) -> bytes:
    key_id = sealed_key_id(data, name)
    header = SEALED_MAGIC + key_id
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
