"""Reading a backup back: fetch -> decrypt -> decompress -> re-hash -> write, in order.

Chunks are fetched by a small thread pool ahead of the writer (bounded
window), so restore speed is not one round trip per chunk. Consecutive chunks
that lie next to each other in one pack (the usual case: a backup writes a
stream's new chunks in order) are fetched with one ranged read of up to
``READ_SPAN`` bytes; small chunks (Redis, Chroma) would otherwise cost one
request each. A span that fails is read again chunk by chunk, from other copies
where there are any. Every chunk is
authenticated and re-hashed, and the whole entry's sha256 is compared with the
manifest: damaged data raises IntegrityError naming the object, never returns.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Protocol

import blake3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scholar_ops.vault import audit
from scholar_ops.vault.compress import decompress
from scholar_ops.vault.crypto import aead
from scholar_ops.vault.errors import IntegrityError, MisplacedObject, ObjectNotFound, VaultError
from scholar_ops.vault.index import Index, Location
from scholar_ops.vault.pack import pack_key_id, pack_name, read_header
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Entry, Snapshot


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class ChunkReader:
    """Fetches and verifies chunks; shared by the restorer and the checker."""

    def __init__(self, repo: Repository, index: Index) -> None:
        self.repo = repo
        self.index = index
        self._keys = {kid: (AESGCM(ks.enc_key), ks.id_key) for kid, ks in repo.keys.items()}
        self._pack_keys: dict[str, bytes] = {}

    def _key_for_pack(self, pack_id: str) -> tuple[AESGCM, bytes]:
        """(cipher, id key) of the key set the pack was written with."""
        kid = self._pack_keys.get(pack_id)
        if kid is None:
            name = pack_name(pack_id)
            kid = pack_key_id(self.repo.storage.get(name, 0, 12), name)
            self._pack_keys[pack_id] = kid
        keys = self._keys.get(kid)
        if keys is None:
            name = pack_name(pack_id)
            raise IntegrityError(f"{name}: written with unknown key {kid.hex()}", name)
        return keys

    def read_at(self, chunk_id: bytes, loc: Location) -> bytes:
        name = pack_name(loc.pack_id)
        blob = self.repo.storage.get(name, loc.offset, loc.length)
        if len(blob) != loc.length:
            raise IntegrityError(f"{name}: truncated (blob at {loc.offset} is cut short)", name)
        return self.verify(chunk_id, blob, loc, name)

    def verify(self, chunk_id: bytes, blob: bytes | memoryview, loc: Location, name: str) -> bytes:
        aes, id_key = self._key_for_pack(loc.pack_id)
        alg, body = aead.decrypt_blob(aes, chunk_id, blob, name)
        try:
            data = decompress(alg, body, loc.raw_length)
        except Exception as e:
            raise IntegrityError(
                f"{name}: blob {chunk_id.hex()[:16]}… does not decompress ({e})", name
            ) from None
        if len(data) != loc.raw_length or blake3.blake3(data, key=id_key).digest() != chunk_id:
            raise IntegrityError(
                f"{name}: blob {chunk_id.hex()[:16]}… content does not match its id", name
            )
        return data

    def read(self, chunk_id: bytes, prefer: frozenset[str] = frozenset()) -> bytes:
        """Read a chunk from its best location, falling back to other copies."""
        locs = sorted(self.index.locations(chunk_id), key=lambda loc: loc.pack_id not in prefer)
        if not locs:
            raise IntegrityError(
                f"chunk {chunk_id.hex()[:16]}… is not in the index (missing data)", "index"
            )
        errors: list[Exception] = []
        for loc in locs:
            try:
                return self.read_at(chunk_id, loc)
            except (IntegrityError, ObjectNotFound) as e:
                errors.append(e)
        first = errors[0]
        if isinstance(first, IntegrityError):
            misplaced = self.misplaced_pack(locs[0].pack_id)
            if misplaced is not None:
                raise misplaced from first
        name = getattr(first, "object_name", pack_name(locs[0].pack_id))
        raise IntegrityError(str(first), name) from first

    def misplaced_pack(self, pack_id: str) -> MisplacedObject | None:
        """When a pack's blobs fail: is the object another pack copied over its name?"""
        name = pack_name(pack_id)
        try:
            size = self.repo.storage.stat(name).size
            read_header(self.repo.storage, name, size, self.repo.enc_keys)
        except MisplacedObject as e:
            return e
        except (VaultError, ValueError):
            return None
        return None


#: The most bytes (stored, and decompressed) one ranged read fetches for a run of
#: adjacent chunks; a larger chunk is read alone.
READ_SPAN = 1 << 20

_Span = list[tuple[bytes, Location | None]]


class Restorer:
    def __init__(
        self, repo: Repository, index: Index | None = None, *, workers: int = 4, window: int = 8
    ) -> None:
        self.repo = repo
        self.index = index if index is not None else repo.load_index()
        self.reader = ChunkReader(repo, self.index)
        self.workers = workers
        self.window = window

    def _spans(self, entry: Entry, prefer: frozenset[str]) -> Iterator[_Span]:
        """The entry's chunks in order, grouped into runs adjacent in one pack."""
        span: _Span = []
        size = 0  # stored bytes of the span, and below its decompressed bytes: both bounded,
        raw = 0  # so a span of large chunks is one chunk (memory as per-chunk reads)
        for cid_hex in entry.chunks:
            cid = bytes.fromhex(cid_hex)
            locs = sorted(self.index.locations(cid), key=lambda loc: loc.pack_id not in prefer)
            loc = locs[0] if locs else None
            last = span[-1][1] if span else None
            if span and (
                loc is None
                or last is None
                or loc.pack_id != last.pack_id
                or loc.offset != last.offset + last.length
                or size + loc.length > READ_SPAN
                or raw + loc.raw_length > READ_SPAN
            ):
                yield span
                span, size, raw = [], 0, 0
            span.append((cid, loc))
            size += loc.length if loc is not None else 0
            raw += loc.raw_length if loc is not None else 0
        if span:
            yield span

    def _read_span(self, span: _Span, prefer: frozenset[str]) -> list[bytes]:
        first, last = span[0][1], span[-1][1]
        if len(span) == 1 or first is None or last is None:
            return [self.reader.read(cid, prefer) for cid, _ in span]
        name = pack_name(first.pack_id)
        try:
            blob = self.repo.storage.get(
                name, first.offset, last.offset + last.length - first.offset
            )
            view = memoryview(blob)
            out = []
            for cid, loc in span:
                assert loc is not None
                rel = loc.offset - first.offset
                piece = view[rel : rel + loc.length]
                if len(piece) != loc.length:
                    raise IntegrityError(
                        f"{name}: truncated (blob at {loc.offset} is cut short)", name
                    )
                out.append(self.reader.verify(cid, piece, loc, name))
            return out
        except (IntegrityError, ObjectNotFound):
            # Chunk by chunk: the error names the damaged blob, other copies are tried.
            return [self.reader.read(cid, prefer) for cid, _ in span]

    def iter_entry(self, snap: Snapshot, entry: Entry) -> Iterator[bytes]:
        """Yield the entry's content chunk by chunk, verified."""
        prefer = frozenset(snap.packs)
        sha = hashlib.sha256()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="vault-get") as pool:
            queue: deque[Future[list[bytes]]] = deque()
            try:
                for span in self._spans(entry, prefer):
                    queue.append(pool.submit(self._read_span, span, prefer))
                    if len(queue) >= self.window:
                        for data in queue.popleft().result():
                            sha.update(data)
                            yield data
                while queue:
                    for data in queue.popleft().result():
                        sha.update(data)
                        yield data
            except IntegrityError as e:
                e.snapshot_id = snap.backup_id
                raise IntegrityError(
                    f"snapshot {snap.short_id}: {e}", e.object_name, snap.backup_id
                ) from e
            finally:
                for f in queue:
                    f.cancel()
        if entry.sha256 and sha.hexdigest() != entry.sha256:
            raise IntegrityError(
                f"snapshot {snap.short_id}: entry {entry.name!r} restored with a different sha256 than recorded",
                f"snapshots/{snap.backup_id}",
                snap.backup_id,
            )

    def restore_entry(self, snap: Snapshot, entry: Entry, sink: Writable | BinaryIO) -> int:
        total = 0
        for data in self.iter_entry(snap, entry):
            sink.write(data)
            total += len(data)
        return total


def restore_stream(
    repo: Repository, snap: Snapshot, sink: Writable | BinaryIO, name: str | None = None
) -> int:
    """Restore one entry (the only one, or ``name``) of a snapshot into ``sink``."""
    entry = pick_entry(snap, name)
    with audit.restoring(repo, snap):
        return Restorer(repo).restore_entry(snap, entry, sink)


def pick_entry(snap: Snapshot, name: str | None) -> Entry:
    if name is None:
        if len(snap.entries) != 1:
            raise VaultError(
                f"snapshot {snap.short_id} has {len(snap.entries)} entries: name the one to restore"
            )
        return snap.entries[0]
    for e in snap.entries:
        if e.name == name:
            return e
    raise VaultError(f"snapshot {snap.short_id} has no entry {name!r}")
