"""Key handling: the master key, the data key set it wraps, and rotation.

The master key is an operator secret that never touches storage. It derives a
key-encryption key (KEK) with scrypt; the KEK wraps a *key set* (random AES-256
data key, BLAKE3 id key, chunker seed) stored under ``keys/<key-id>``. Rotating
the master key rewraps key sets; data is never re-encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scholar_ops.vault.crypto.aead import KEY_ID_LEN, NONCE_LEN
from scholar_ops.vault.errors import ConfigError, IntegrityError, MisplacedObject, WrongKey

MASTER_KEY_ENV = "SCHOLAR_OPS_MASTER_KEY"
MASTER_KEY_FILE_ENV = "SCHOLAR_OPS_MASTER_KEY_FILE"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_ID_LABEL = b"scholar-ops master key id"


@dataclass(frozen=True)
class MasterKey:
    """An operator secret. repr() never shows it."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ConfigError(
                "the master key is shorter than 16 bytes: use a random key, e.g. "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"

    @classmethod
    def from_string(cls, value: str) -> MasterKey:
        return cls(value.strip().encode())

    @classmethod
    def from_file(cls, path: str | Path) -> MasterKey:
        try:
            return cls.from_string(Path(path).read_text())
        except OSError as e:
            raise ConfigError(f"cannot read master key file {path}: {e.strerror}") from None

    @classmethod
    def from_env(cls) -> MasterKey:
        """From $SCHOLAR_OPS_MASTER_KEY, else the file named by $SCHOLAR_OPS_MASTER_KEY_FILE."""
        if value := os.environ.get(MASTER_KEY_ENV):
            return cls.from_string(value)
        if path := os.environ.get(MASTER_KEY_FILE_ENV):
            return cls.from_file(path)
        raise ConfigError(
            f"no master key: set {MASTER_KEY_ENV} (or {MASTER_KEY_FILE_ENV}), "
            "or configure the repository's Secret block"
        )

    def kek(self, salt: bytes) -> bytes:
        return _derive(self.secret, salt)


@lru_cache(maxsize=16)
def _derive(secret: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(
        secret, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32
    )


def master_key_id(kek: bytes) -> str:
    return hmac.new(kek, _ID_LABEL, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class KeySet:
    """The data keys: what actually encrypts and names data."""

    key_id: bytes  # 8 random bytes
    enc_key: bytes  # AES-256-GCM
    id_key: bytes  # BLAKE3 keyed hash for chunk ids
    cdc_seed: int  # chunker gear-table seed

    def __repr__(self) -> str:
        return f"KeySet(key_id={self.key_id.hex()})"

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    @classmethod
    def generate(cls) -> KeySet:
        return cls(
            key_id=os.urandom(KEY_ID_LEN),
            enc_key=os.urandom(32),
            id_key=os.urandom(32),
            cdc_seed=int.from_bytes(os.urandom(4), "big") or 1,
        )

    def wrap(self, master: MasterKey) -> bytes:
        """Serialise as a ``keys/<key-id>`` object, wrapped by the master key."""
        salt = os.urandom(16)
        kek = master.kek(salt)
        payload = json.dumps(
            {
                "enc_key": _b64(self.enc_key),
                "id_key": _b64(self.id_key),
                "cdc_seed": self.cdc_seed,
            }
        ).encode()
        doc: dict[str, object] = {
            "version": 1,
            "key_id": self.key_id.hex(),
            "created": _now_iso(),
            "kdf": {
                "name": "scrypt",
                "salt": _b64(salt),
                "n": SCRYPT_N,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
            },
            "master_key_id": master_key_id(kek),
            "nonce": _b64(os.urandom(NONCE_LEN)),
        }
        # Every other field is bound as associated data: no byte of the file can change unnoticed.
        doc["wrapped"] = _b64(AESGCM(kek).encrypt(_unb64(str(doc["nonce"])), payload, _aad(doc)))
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def unwrap(cls, data: bytes, master: MasterKey, name: str) -> KeySet:
        try:
            doc = json.loads(data)
            if doc.get("version") != 1:
                raise ValueError(f"unsupported key file version {doc.get('version')!r}")
            key_id = bytes.fromhex(doc["key_id"])
            kdf = doc["kdf"]
            if kdf["name"] != "scrypt" or (kdf["n"], kdf["r"], kdf["p"]) != (
                SCRYPT_N,
                SCRYPT_R,
                SCRYPT_P,
            ):
                raise ValueError("unsupported kdf parameters")
            salt, nonce, wrapped = _unb64(kdf["salt"]), _unb64(doc["nonce"]), _unb64(doc["wrapped"])
            stored_mkid = doc["master_key_id"]
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{name}: key file is damaged ({e})", name) from None
        kek = master.kek(salt)
        if not hmac.compare_digest(master_key_id(kek), stored_mkid):
            raise WrongKey(
                f"the master key does not open this repository (key file {name} was wrapped by "
                f"master key {stored_mkid}): check the Secret block or {MASTER_KEY_ENV}"
            )
        try:
            payload = json.loads(AESGCM(kek).decrypt(nonce, wrapped, _aad(doc)))
        except (InvalidTag, ValueError):
            raise IntegrityError(
                f"{name}: key file failed authentication (damaged or tampered with)", name
            ) from None
        # key_id is authenticated (associated data): a key file under another id's name
        # was copied or renamed there.
        if name.rsplit("/", 1)[-1] != key_id.hex():
            raise MisplacedObject(name, f"keys/{key_id.hex()}", "key set")
        return cls(
            key_id=key_id,
            enc_key=_unb64(payload["enc_key"]),
            id_key=_unb64(payload["id_key"]),
            cdc_seed=int(payload["cdc_seed"]),
        )


def _aad(doc: dict[str, object]) -> bytes:
    return json.dumps({k: v for k, v in doc.items() if k != "wrapped"}, sort_keys=True).encode()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _now_iso() -> str:
    from datetime import UTC, datetime  # imported when a key set is wrapped, not to open one

    return datetime.now(UTC).isoformat()
