"""Opening, creating and reading a repository: config, keys, index, snapshots, tombstones.

Every sealed object is bound to its name (``scholar_ops.vault.crypto.aead``). A snapshot's
manifest must also carry its own id. Prune records the snapshots it forgets in
``forgotten/`` objects, so a snapshot put back from an older copy of the
repository is recognised (check reports it; listings skip it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scholar_ops.vault.chunker import ChunkerParams
from scholar_ops.vault.crypto import aead
from scholar_ops.vault.crypto.keys import KeySet, MasterKey
from scholar_ops.vault.errors import (
    FormatTooOld,
    IntegrityError,
    ObjectNotFound,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    VaultError,
    WrongKey,
)
from scholar_ops.vault.storage.base import Storage

# The index, packs, snapshots, thread pools and logging are imported where they are used:
# the WAL archive command opens a repository once per 16 MB segment and uses none of them.
if TYPE_CHECKING:
    import logging
    from datetime import datetime

    from scholar_ops.vault.index import Index
    from scholar_ops.vault.lock import Lock, LockListing
    from scholar_ops.vault.pack import BlobEntry
    from scholar_ops.vault.snapshot import Snapshot

FORMAT_VERSION = 2
CONFIG_NAME = "config"
CONFIG_KIND = "config"
KEYS_PREFIX = "keys/"
FORGOTTEN_PREFIX = "forgotten/"
FORGOTTEN_KIND = "forgotten-snapshots"
DEFAULT_PACK_SIZE = 16 << 20
SNAPSHOT_PREFIX = "snapshots/"  # scholar_ops.vault.snapshot's, without importing it


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("scholar_ops.vault.repository")


@dataclass(frozen=True)
class RepoConfig:
    repo_id: str
    version: int
    chunker: ChunkerParams
    compression: str
    compression_level: int | None
    pack_size: int
    current_key_id: str
    created: str

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "repo_id": self.repo_id,
                "version": self.version,
                "chunker": self.chunker.to_json(),
                "compression": self.compression,
                "compression_level": self.compression_level,
                "pack_size": self.pack_size,
                "current_key_id": self.current_key_id,
                "created": self.created,
            }
        ).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> RepoConfig:
        d: dict[str, Any] = json.loads(payload)
        d["chunker"] = ChunkerParams(**d["chunker"])
        return cls(**d)


class Repository:
    def __init__(
        self, storage: Storage, master: MasterKey, keys: dict[bytes, KeySet], config: RepoConfig
    ) -> None:
        self.storage = storage
        self.master = master
        self.keys = keys
        self.config = config
        self.key = keys[bytes.fromhex(config.current_key_id)]
        #: Size limit in bytes (vault.space), set by whoever opens the repository with one;
        #: backups written through BackupWriter stop before passing it.
        self.size_limit: int | None = None
        #: The Prefect flow run working on it, for the audit trail (vault.audit); set by the
        #: tasks layer (the engine never imports Prefect; else $PREFECT__FLOW_RUN_ID is read).
        self.flow_run_id: str | None = None

    @property
    def location(self) -> str:
        return self.storage.location

    # -- creating and opening -------------------------------------------------

    @classmethod
    def init(
        cls,
        storage: Storage,
        master: MasterKey,
        *,
        chunker: ChunkerParams | None = None,
        compression: str = "zstd",
        compression_level: int | None = None,
        pack_size: int = DEFAULT_PACK_SIZE,
    ) -> Repository:
        if any(True for _ in storage.list(KEYS_PREFIX)) or _exists(storage, CONFIG_NAME):
            raise RepositoryExists(
                f"{storage.location} already holds a scholar-ops repository; open it instead"
            )
        from scholar_ops.vault.compress import Compressor

        Compressor(compression, compression_level)  # validates the name early
        keyset = KeySet.generate()
        config = RepoConfig(
            repo_id=KeySet.generate().key_id.hex() * 4,
            version=FORMAT_VERSION,
            chunker=chunker or ChunkerParams(),
            compression=compression,
            compression_level=compression_level,
            pack_size=pack_size,
            current_key_id=keyset.key_id_hex,
            created=_now_iso(),
        )
        storage.put(KEYS_PREFIX + keyset.key_id_hex, keyset.wrap(master))
        repo = cls(storage, master, {keyset.key_id: keyset}, config)
        storage.put(CONFIG_NAME, repo.seal(CONFIG_NAME, config.to_json()))
        # Without conditional writes two concurrent inits can both get here: every key
        # set stays in keys/ (data sealed with any of them remains readable) and the
        # config last written wins. Open what the store now holds, not what was written.
        repo = cls.open(storage, master)
        from scholar_ops.vault import audit

        audit.append_quietly(repo, "init", details={"location": storage.location})
        return repo

    @classmethod
    def open(cls, storage: Storage, master: MasterKey) -> Repository:
        keys = load_key_sets(storage, master)
        try:
            sealed = storage.get(CONFIG_NAME)
        except ObjectNotFound:
            raise RepositoryNotFound(
                f"{storage.location} has keys but no config object: the repository is incomplete"
            ) from None
        if aead.sealed_version(sealed, CONFIG_NAME) == 1:
            raise FormatTooOld(
                f"{storage.location} is a format-1 repository, written before objects were "
                "bound to their names: upgrade it once with `scholar-ops migrate` (it rewrites "
                "the config, index, snapshot and pack-header objects; no backed-up data changes)"
            )
        payload = _unseal_with(keys, CONFIG_KIND, sealed, CONFIG_NAME)
        config = RepoConfig.from_json(payload)
        if config.version != FORMAT_VERSION:
            raise FormatTooOld(
                f"{storage.location} has repository format {config.version}; this scholar-ops "
                f"reads format {FORMAT_VERSION}"
            )
        return cls(storage, master, keys, config)

    # -- sealing --------------------------------------------------------------

    def seal(self, name: str, payload: bytes) -> bytes:
        """``payload`` sealed as the object called ``name`` (with the current key set)."""
        return aead.seal(self.key.enc_key, self.key.key_id, name, payload)

    def unseal(self, name: str, data: bytes, kind: str = "") -> bytes:
        """Open the object read under ``name``; an object written under another name is refused."""
        if aead.sealed_key_id(data, name) not in self.keys:
            # Another process may have added a key set since this one opened the store
            # (a key rotation, or a concurrent first-time init): load the key sets again.
            self.reload_keys()
        return _unseal_with(self.keys, kind, data, name)

    def reload_keys(self) -> None:
        """Add key sets written to the store since it was opened (those the master key opens)."""
        for info in self.storage.list(KEYS_PREFIX):
            kid_hex = info.name[len(KEYS_PREFIX) :]
            try:
                if bytes.fromhex(kid_hex) in self.keys:
                    continue
            except ValueError:
                pass
            try:
                ks = KeySet.unwrap(self.storage.get(info.name), self.master, info.name)
            except (WrongKey, ObjectNotFound):
                continue
            self.keys[ks.key_id] = ks

    def get_sealed(self, name: str, kind: str = "") -> bytes:
        return self.unseal(name, self.storage.get(name), kind)

    @property
    def enc_keys(self) -> dict[bytes, bytes]:
        return {kid: ks.enc_key for kid, ks in self.keys.items()}

    # -- locks ----------------------------------------------------------------

    def lock(
        self,
        operation: str,
        exclusive: bool = False,
        wait: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> Lock:
        """A lock on this repository (not yet acquired); ``on_wait`` hears who it waits for."""
        from scholar_ops.vault.lock import Lock  # here: the WAL command takes no lock

        return Lock(self.storage, self, operation, exclusive, wait=wait, on_wait=on_wait)

    def locks(self) -> LockListing:
        from scholar_ops.vault.lock import list_locks

        return list_locks(self.storage, self)

    # -- index ----------------------------------------------------------------

    def load_index(self) -> Index:
        from concurrent.futures import ThreadPoolExecutor

        from scholar_ops.vault.index import INDEX_PREFIX, Index

        index = Index()
        names = [o.name for o in self.storage.list(INDEX_PREFIX)]
        with ThreadPoolExecutor(8) as pool:
            for packs in pool.map(self._read_index, names):
                for pack_id, entries in packs.items():
                    index.add_pack(pack_id, entries)
        return index

    def _read_index(self, name: str) -> dict[str, list[BlobEntry]]:
        from scholar_ops.vault.index import INDEX_KIND, decode_index

        payload = self.get_sealed(name, INDEX_KIND)
        try:
            return decode_index(payload)
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{name}: index is malformed ({e})", name) from None

    def write_index(self, packs: dict[str, list[BlobEntry]]) -> tuple[str, int]:
        from scholar_ops.vault.index import encode_index, new_index_name

        name = new_index_name()
        data = self.seal(name, encode_index(packs))
        self.storage.put(name, data)
        return name, len(data)

    def pack_sizes(self) -> dict[str, int]:
        from scholar_ops.vault.pack import PACK_PREFIX, pack_id_of

        return {pack_id_of(o.name): o.size for o in self.storage.list(PACK_PREFIX)}

    def unindexed_packs(self, index: Index) -> Iterator[tuple[str, list[BlobEntry]]]:
        """Complete packs that no index names (left by an interrupted backup), with their headers."""
        from scholar_ops.vault.pack import PACK_PREFIX, read_header

        for pack_id, size in self.pack_sizes().items():
            if pack_id in index.packs:
                continue
            name = PACK_PREFIX + pack_id[:2] + "/" + pack_id
            try:
                _, entries = read_header(self.storage, name, size, self.enc_keys)
            except (IntegrityError, ObjectNotFound) as e:
                _log().warning("ignoring unreadable unindexed pack %s: %s", name, e)
                continue
            yield pack_id, entries

    # -- snapshots ------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        """Ids of every snapshot object present (forgotten ones put back included)."""
        return [o.name[len(SNAPSHOT_PREFIX) :] for o in self.storage.list(SNAPSHOT_PREFIX)]

    def load_snapshot(self, backup_id: str, forgotten: dict[str, str] | None = None) -> Snapshot:
        """One snapshot, verified: bound to its name, and not one that prune forgot.

        ``forgotten`` (from ``forgotten()``) saves reading the tombstones again.
        """
        from scholar_ops.vault.snapshot import SNAPSHOT_KIND, Snapshot

        name = SNAPSHOT_PREFIX + backup_id
        try:
            payload = self.get_sealed(name, SNAPSHOT_KIND)
        except ObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {backup_id} in {self.location}") from None
        except IntegrityError as e:
            e.snapshot_id = backup_id
            raise
        try:
            snap = Snapshot.from_json(payload)
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{name}: manifest is malformed ({e})", name, backup_id) from None
        if snap.backup_id != backup_id:
            raise IntegrityError(
                f"{name}: the manifest describes snapshot {snap.backup_id}", name, backup_id
            )
        when = (self.forgotten() if forgotten is None else forgotten).get(backup_id)
        if when is not None:
            raise IntegrityError(
                f"{name}: this snapshot was forgotten by a prune on {when}, yet it is present "
                "(put back from an older copy of the repository, or that prune did not finish); "
                "it is not used, and the next prune removes it",
                name,
                backup_id,
            )
        return snap

    def scan_snapshots(self) -> tuple[list[Snapshot], list[IntegrityError]]:
        """Every readable snapshot (oldest first), and the errors of the others."""
        from concurrent.futures import ThreadPoolExecutor

        from scholar_ops.vault.snapshot import Snapshot

        forgotten, errors = self.read_forgotten()
        snaps: list[Snapshot] = []

        def load(backup_id: str) -> Snapshot | IntegrityError | None:
            try:
                return self.load_snapshot(backup_id, forgotten)
            except IntegrityError as e:
                return e
            except SnapshotNotFound:
                return None  # deleted meanwhile (a prune)

        with ThreadPoolExecutor(8) as pool:
            for item in pool.map(load, self.snapshot_ids()):
                if isinstance(item, Snapshot):
                    snaps.append(item)
                elif item is not None:
                    errors.append(item)
        return sorted(snaps, key=lambda s: s.timestamp), errors

    def snapshots(self) -> list[Snapshot]:
        """Every committed snapshot, oldest first; the first damaged one raises IntegrityError."""
        snaps, errors = self.scan_snapshots()
        if errors:
            raise errors[0]
        return snaps

    # -- forgotten snapshots (tombstones) ---------------------------------------

    def read_forgotten(self) -> tuple[dict[str, str], list[IntegrityError]]:
        """Snapshot id -> when a prune forgot it, from every readable ``forgotten/`` object,
        and the errors of unreadable ones."""
        out: dict[str, str] = {}
        errors: list[IntegrityError] = []
        for info in self.storage.list(FORGOTTEN_PREFIX):
            try:
                doc = json.loads(self.get_sealed(info.name, FORGOTTEN_KIND))
                out.update({str(k): str(v) for k, v in doc["forgotten"].items()})
            except ObjectNotFound:
                continue  # consolidated by a prune meanwhile
            except IntegrityError as e:
                errors.append(e)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                errors.append(
                    IntegrityError(f"{info.name}: tombstone list is malformed ({e})", info.name)
                )
        return out, errors

    def forgotten(self) -> dict[str, str]:
        """The tombstones that can be read (unreadable ``forgotten/`` objects are logged)."""
        out, errors = self.read_forgotten()
        for e in errors:
            _log().warning("%s", e)
        return out

    def write_forgotten(self, forgotten: dict[str, str]) -> str:
        """One ``forgotten/`` object listing these tombstones; returns its name."""
        name = FORGOTTEN_PREFIX + os.urandom(32).hex()
        payload = json.dumps({"forgotten": forgotten}, separators=(",", ":")).encode()
        self.storage.put(name, self.seal(name, payload))
        return name

    def find_snapshot(
        self,
        selector: str,
        *,
        component: str | None = None,
        target: str | None = None,
        before: datetime | None = None,
        earlier_targets: Sequence[str] = (),
    ) -> Snapshot:
        """By full id, unique id prefix, or ``latest`` (optionally before a time).

        ``earlier_targets``: names the target's snapshots carried before (a renamed
        target): ``latest`` falls back to them when none carries ``target`` yet.
        """
        if selector != "latest":
            matches = [i for i in self.snapshot_ids() if i.startswith(selector)]
            if len(matches) > 1:
                raise SnapshotNotFound(
                    f"snapshot id prefix {selector!r} is ambiguous: give more digits"
                )
            if not matches:
                raise SnapshotNotFound(
                    f"no snapshot {selector!r} in {self.location}: list them with `scholar-ops snapshots`"
                )
            snap = self.load_snapshot(matches[0])
            if component is not None and snap.component != component:
                raise SnapshotNotFound(
                    f"snapshot {snap.short_id} is a {snap.component} backup "
                    f"({snap.component}/{snap.target}), not a {component} one"
                )
            return snap
        readable, errors = self.scan_snapshots()
        for e in errors:
            _log().warning("skipping an unreadable snapshot: %s", e)

        def matching(name: str | None) -> list[Snapshot]:
            return [
                s
                for s in readable
                if (component is None or s.component == component)
                and (name is None or s.target == name)
                and (before is None or s.time <= before)
            ]

        snaps = matching(target)
        for earlier in earlier_targets if not snaps and target is not None else ():
            snaps = matching(earlier)
            if snaps:
                _log().warning(
                    "no snapshot of %s yet: using %s, recorded under its earlier name %r",
                    target,
                    snaps[-1].short_id,
                    earlier,
                )
                break
        if not snaps:
            what = " ".join(
                x
                for x in (
                    f"component={component}" if component else "",
                    f"target={target}" if target else "",
                    f"before {before.isoformat()}" if before else "",
                )
                if x
            )
            raise SnapshotNotFound(
                f"no snapshot{' with ' + what if what else ''} in {self.location}"
            )
        return snaps[-1]

    def commit_snapshot(self, snap: Snapshot) -> int:
        name = SNAPSHOT_PREFIX + snap.backup_id
        data = self.seal(name, snap.to_json())
        self.storage.put(name, data)
        return len(data)

    # -- keys -----------------------------------------------------------------

    def rotate_master_key(self, new_master: MasterKey) -> list[str]:
        """Rewrap every key set with a new master key. No data object is rewritten."""
        from scholar_ops.vault import audit

        rewritten: list[str] = []
        with audit.recorded(self, "key-rotate") as rec:
            with self.lock("key rotate", exclusive=True, wait=60):
                for kid, ks in self.keys.items():
                    name = KEYS_PREFIX + kid.hex()
                    self.storage.put(name, ks.wrap(new_master))
                    rewritten.append(name)
                self.master = new_master
            rec.details["key_sets"] = len(rewritten)
        return rewritten


def load_key_sets(storage: Storage, master: MasterKey) -> dict[bytes, KeySet]:
    """Every key set the master key opens; RepositoryNotFound or WrongKey when there is none."""
    key_objects = [o.name for o in storage.list(KEYS_PREFIX)]
    if not key_objects:
        raise RepositoryNotFound(
            f"no scholar-ops repository at {storage.location}: create one with `scholar-ops setup` "
            "(or Repository.init)"
        )
    keys: dict[bytes, KeySet] = {}
    wrong: WrongKey | None = None
    damaged: list[IntegrityError] = []
    for name in key_objects:
        try:
            ks = KeySet.unwrap(storage.get(name), master, name)
        except WrongKey as e:
            wrong = e
            continue
        except IntegrityError as e:
            damaged.append(e)
            continue
        keys[ks.key_id] = ks
    if not keys:
        if damaged:
            raise damaged[0]
        assert wrong is not None
        raise wrong
    for problem in damaged:  # the others open the repository; check reports these
        _log().warning("ignoring key object: %s", problem)
    return keys


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def _exists(storage: Storage, name: str) -> bool:
    try:
        storage.stat(name)
        return True
    except ObjectNotFound:
        return False


def _unseal_with(keys: dict[bytes, KeySet], kind: str, data: bytes, name: str) -> bytes:
    kid = aead.sealed_key_id(data, name)
    ks = keys.get(kid)
    if ks is None:
        raise IntegrityError(f"{name}: written with unknown key {kid.hex()} (damaged?)", name)
    return aead.unseal(ks.enc_key, data, name, kind)


__all__ = ["RepoConfig", "Repository", "VaultError"]
