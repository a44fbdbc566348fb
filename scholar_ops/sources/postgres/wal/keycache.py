"""Opening the repository once per WAL segment without paying scrypt each time.

``Repository.open`` unwraps the key sets with a key derived from the master key by scrypt
(about 0.1 s by design: it slows down guessing a weak master key). archive_command runs
once per segment, so ``scholar-ops-wal`` keeps the unwrapped key sets in a local cache file,
itself encrypted (AES-256-GCM) with a key derived from the master key and the repository's
location by HMAC-SHA256, and bound to that location:

- without the master key the cache opens nothing; after a master key rotation the old
  cache no longer opens and is replaced on the next call;
- the cache is checked against the repository on every use: the repository's config object
  must open with the cached keys, else the repository is opened the slow way and the cache
  rewritten;
- it lives with the OS user's other files (``~/.cache/scholar-ops/keys/``, mode 0600); whoever
  can read it can read the master key file next to it as well. ``--no-key-cache`` turns it off.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scholar_ops.vault.crypto import aead
from scholar_ops.vault.crypto.keys import KeySet, MasterKey
from scholar_ops.vault.repository import (
    CONFIG_NAME,
    FORMAT_VERSION,
    RepoConfig,
    Repository,
)
from scholar_ops.vault.storage.base import Storage

CACHE_DIR_ENV = "SCHOLAR_OPS_KEY_CACHE_DIR"
_LABEL = b"scholar-ops WAL key cache v1\0"


def default_cache_dir() -> Path:
    if value := os.environ.get(CACHE_DIR_ENV):
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scholar-ops" / "keys"


def _cache_key(master: MasterKey, location: str) -> bytes:
    return hmac.new(master.secret, _LABEL + location.encode(), hashlib.sha256).digest()


def _cache_path(cache_dir: Path, location: str) -> Path:
    return cache_dir / (hashlib.sha256(location.encode()).hexdigest()[:32] + ".keys")


def _load(path: Path, master: MasterKey, location: str) -> dict[bytes, KeySet] | None:
    try:
        data = path.read_bytes()
        plain = AESGCM(_cache_key(master, location)).decrypt(
            data[:12], data[12:], location.encode()
        )
        out: dict[bytes, KeySet] = {}
        for d in json.loads(plain):
            ks = KeySet(
                key_id=bytes.fromhex(d["key_id"]),
                enc_key=base64.b64decode(d["enc_key"]),
                id_key=base64.b64decode(d["id_key"]),
                cdc_seed=int(d["cdc_seed"]),
            )
            out[ks.key_id] = ks
        return out or None
    except Exception:  # missing, unreadable, another master key, damaged: the slow way
        return None


def _save(path: Path, master: MasterKey, location: str, keys: dict[bytes, KeySet]) -> None:
    doc = [
        {
            "key_id": ks.key_id.hex(),
            "enc_key": base64.b64encode(ks.enc_key).decode(),
            "id_key": base64.b64encode(ks.id_key).decode(),
            "cdc_seed": ks.cdc_seed,
        }
        for ks in keys.values()
    ]
    nonce = os.urandom(12)
    blob = nonce + AESGCM(_cache_key(master, location)).encrypt(
        nonce, json.dumps(doc).encode(), location.encode()
    )
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        import tempfile  # a cache miss only

        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def open_with_cache(storage: Storage, master: MasterKey, cache_dir: Path | None) -> Repository:
    """``Repository.open``, skipping the key derivation when the cache opens the config."""
    if cache_dir is None:
        return Repository.open(storage, master)
    location = storage.location
    path = _cache_path(cache_dir, location)
    keys = _load(path, master, location)
    if keys is not None:
        try:
            sealed = storage.get(CONFIG_NAME)
            ks = keys.get(aead.sealed_key_id(sealed, CONFIG_NAME))
            if ks is not None:
                config = RepoConfig.from_json(aead.unseal(ks.enc_key, sealed, CONFIG_NAME))
                if (
                    config.version == FORMAT_VERSION
                    and bytes.fromhex(config.current_key_id) in keys
                ):
                    return Repository(storage, master, keys, config)
        except Exception:
            pass  # the repository says otherwise: open it the slow way (which names any problem)
    repo = Repository.open(storage, master)
    _save(path, master, location, repo.keys)
    return repo
