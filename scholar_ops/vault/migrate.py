"""Upgrading a repository to the current format, in place.

Format 1 sealed objects bound only their kind; format 2 binds every object to
its name (docs/design.md). The upgrade re-seals, under an exclusive lock:
every pack's header (the pack is rewritten whole with the same blobs at the
same offsets: one download and one upload per pack), every index object, every
snapshot, and last the config, which is the commit point. Blobs, chunk ids
and keys do not change. A crash part-way leaves a format-1 config with some
objects already re-sealed; running the upgrade again finishes it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

from scholar_ops.vault.crypto import aead
from scholar_ops.vault.crypto.keys import KeySet, MasterKey
from scholar_ops.vault.errors import IntegrityError
from scholar_ops.vault.index import INDEX_KIND, INDEX_PREFIX
from scholar_ops.vault.pack import PACK_PREFIX, pack_key_id, read_header
from scholar_ops.vault.repository import (
    CONFIG_KIND,
    CONFIG_NAME,
    FORMAT_VERSION,
    RepoConfig,
    Repository,
    load_key_sets,
)
from scholar_ops.vault.snapshot import SNAPSHOT_KIND, SNAPSHOT_PREFIX
from scholar_ops.vault.storage.base import Storage


@dataclass
class MigrationReport:
    from_version: int
    to_version: int = FORMAT_VERSION
    packs: int = 0
    index_objects: int = 0
    snapshots: int = 0

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version


def migrate(
    storage: Storage,
    master: MasterKey,
    *,
    wait: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Upgrade the repository in ``storage`` to the current format (nothing if it is current)."""
    keys = load_key_sets(storage, master)
    sealed_config = storage.get(CONFIG_NAME)
    kid = aead.sealed_key_id(sealed_config, CONFIG_NAME)
    if kid not in keys:
        raise IntegrityError(f"{CONFIG_NAME}: written with unknown key {kid.hex()}", CONFIG_NAME)
    if aead.sealed_version(sealed_config, CONFIG_NAME) == 2:
        payload = aead.unseal(keys[kid].enc_key, sealed_config, CONFIG_NAME, CONFIG_KIND)
        return MigrationReport(from_version=RepoConfig.from_json(payload).version)
    config = RepoConfig.from_json(
        aead.unseal_v1(keys[kid].enc_key, CONFIG_KIND, sealed_config, CONFIG_NAME)
    )
    repo = Repository(storage, master, keys, config)
    report = MigrationReport(from_version=config.version)
    say = progress or (lambda _msg: None)
    from scholar_ops.vault import audit

    with (
        audit.recorded(repo, "migrate", details={"from_version": config.version}) as rec,
        repo.lock("migrate", exclusive=True, wait=wait),
    ):
        for info in list(storage.list(PACK_PREFIX)):
            if _reseal_pack(storage, keys, info.name, info.size):
                report.packs += 1
        say(f"{report.packs} pack headers re-sealed")
        for prefix, kind in ((INDEX_PREFIX, INDEX_KIND), (SNAPSHOT_PREFIX, SNAPSHOT_KIND)):
            for info in list(storage.list(prefix)):
                data = storage.get(info.name)
                if aead.sealed_version(data, info.name) == 2:
                    repo.unseal(info.name, data, kind)  # re-sealed by an earlier, interrupted run
                    continue
                obj_kid = aead.sealed_key_id(data, info.name)
                if obj_kid not in keys:
                    raise IntegrityError(
                        f"{info.name}: written with unknown key {obj_kid.hex()}", info.name
                    )
                payload = aead.unseal_v1(keys[obj_kid].enc_key, kind, data, info.name)
                if kind == SNAPSHOT_KIND:
                    backup_id = json.loads(payload)["backup_id"]
                    if SNAPSHOT_PREFIX + backup_id != info.name:
                        raise IntegrityError(
                            f"{info.name}: holds the manifest of snapshot {backup_id} (copied "
                            "over this one before the upgrade): remove one of them, then run "
                            "the upgrade again",
                            info.name,
                        )
                    report.snapshots += 1
                else:
                    report.index_objects += 1
                storage.put(info.name, repo.seal(info.name, payload))
        say(f"{report.index_objects} index objects and {report.snapshots} snapshots re-sealed")
        new_config = RepoConfig(**{**config.__dict__, "version": FORMAT_VERSION})
        storage.put(CONFIG_NAME, repo.seal(CONFIG_NAME, new_config.to_json()))
        rec.details.update(
            packs=report.packs, index_objects=report.index_objects, snapshots=report.snapshots
        )
    return report


def _reseal_pack(storage: Storage, keys: dict[bytes, KeySet], name: str, size: int) -> bool:
    """Rewrite one pack with its header sealed under its name; False if it already is."""
    enc_keys = {k: ks.enc_key for k, ks in keys.items()}
    tail = storage.get(name, max(0, size - 4))
    (hlen,) = struct.unpack(">I", tail[-4:])
    sealed_tail = storage.get(name, size - 4 - hlen, hlen)
    if aead.sealed_version(sealed_tail, name) == 2:
        read_header(storage, name, size, enc_keys)  # authenticates it under this name
        return False
    _, entries = read_header(storage, name, size, enc_keys, legacy=True)
    data = storage.get(name)
    kid = pack_key_id(data, name)
    header = json.dumps(
        [[e.chunk_id.hex(), e.offset, e.length, e.raw_length] for e in entries],
        separators=(",", ":"),
    ).encode()
    sealed = aead.seal(keys[kid].enc_key, kid, name, header)
    body = data[: size - 4 - hlen]
    storage.put(name, body + sealed + struct.pack(">I", len(sealed)))
    # Blobs keep their offsets, so every index entry stays valid.
    return True
