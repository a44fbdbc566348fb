"""The WAL archive in the repository: push, fetch, list, continuity, prune.

Layout (every object sealed with the repository's keys and bound to its own name)::

    wal/clusters/<system id>                cluster info: segment size, first archived
    wal/<system id>/<TLI 8 hex>/<file name> one WAL file as PostgreSQL named it

The database system identifier (decimal, as pg_controldata prints it) keeps the WAL of
several clusters apart in one repository: each ``initdb`` makes a new one, and a cluster
restored from a base backup keeps it (its new timeline goes next to the old one).

A WAL object is ``"SOW1" | header length (4, BE) | sealed header | sealed body``. The header
(JSON, sealed under the object's name) records the file's size and SHA-256, its compression,
the SHA-256 of the sealed body and when it was stored; the body is the zstd-compressed file,
sealed under ``<object name>#data``. A push of a name that exists reads only the header
(a ranged read) to tell "the same file again" (success, nothing written) from "different
content" (WalConflict, nothing written). A fetch checks the body against the header and the
file against its digest: a flipped byte, or an object copied over another's name, is an
IntegrityError naming the object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scholar_ops.vault.compress import Compressor, decompress
from scholar_ops.vault.errors import (
    ConfigError,
    IntegrityError,
    ObjectNotFound,
    SourceError,
    VaultError,
)

from .names import (
    WalKind,
    WalName,
    datadir_of,
    format_lsn,
    parse_history,
    parse_wal_name,
    read_segment_header,
    segment_name,
    segno_of,
    system_id_of_datadir,
    valid_segment_size,
)

if TYPE_CHECKING:
    from scholar_ops.vault.repository import Repository

WAL_PREFIX = "wal/"
CLUSTERS_PREFIX = "wal/clusters/"
OBJECT_MAGIC = b"SOW1"
_HEAD = struct.Struct(">4sI")
BODY_SUFFIX = "#data"
WAL_KIND = "WAL file"
_HEADER_READ = 4096  # one ranged read gets the magic, the length and the sealed header


class WalConflict(VaultError):
    """A different file is already archived under this name (or another segment size)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class PushResult:
    name: str
    object_name: str
    system_id: int
    size: int  # bytes of the file
    stored_size: int  # bytes written to the store (0 when it was archived already)
    already_archived: bool
    seconds: float


@dataclass(frozen=True)
class WalFile:
    name: str
    kind: WalKind
    timeline: int
    start_lsn: int | None  # None for timeline history files
    size: int | None  # bytes of the file (None when headers were not read)
    stored_size: int  # bytes of the object in the store
    stored_time: float | None  # unix time it was stored (None when headers were not read)
    system_id: int
    object_name: str


@dataclass(frozen=True)
class WalMeta:
    name: str
    system_id: int
    size: int
    sha256: str
    alg: int
    body_sha256: str
    stored: float
    segment_size: int | None

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> WalMeta:
        d: dict[str, Any] = json.loads(payload)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


# -- names ------------------------------------------------------------------------------


def object_name(system_id: int, name: str) -> str:
    wal = parse_wal_name(name)
    return f"{WAL_PREFIX}{system_id}/{wal.timeline:08X}/{name}"


def archived_clusters(repo: Repository) -> list[int]:
    """System identifiers of the clusters whose WAL this repository holds."""
    out = []
    for info in repo.storage.list(CLUSTERS_PREFIX):
        with contextlib.suppress(ValueError):
            out.append(int(info.name[len(CLUSTERS_PREFIX) :]))
    return sorted(out)


def _resolve(repo: Repository, system_id: int | None) -> int | None:
    """``system_id``, else the only cluster archived here (None when there is none)."""
    if system_id is not None:
        return system_id
    clusters = archived_clusters(repo)
    if len(clusters) > 1:
        raise ConfigError(
            f"{repo.location} holds the WAL of {len(clusters)} clusters "
            f"({', '.join(map(str, clusters))}): give the system identifier of the one you mean "
            "(pg_controldata shows it; a base backup records it)"
        )
    return clusters[0] if clusters else None


# -- cluster info -------------------------------------------------------------------------


def read_cluster_info(repo: Repository, system_id: int) -> dict[str, Any] | None:
    name = f"{CLUSTERS_PREFIX}{system_id}"
    try:
        payload = repo.get_sealed(name, "WAL cluster info")
    except ObjectNotFound:
        return None
    try:
        doc: dict[str, Any] = json.loads(payload)
        if doc["system_id"] != system_id:
            raise ValueError("another system id")
        return doc
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{name}: WAL cluster info is malformed ({e})", name) from None


def _ensure_cluster_info(repo: Repository, system_id: int, segment_size: int | None) -> None:
    info = read_cluster_info(repo, system_id)
    known = info.get("segment_size") if info else None
    if info is not None and (segment_size is None or known == segment_size):
        return
    if known is not None and segment_size is not None and known != segment_size:
        raise WalConflict(
            f"cluster {system_id} archived {known}-byte WAL segments into {repo.location}, "
            f"this one has {segment_size}: a different cluster with the same system identifier? "
            "archive it into another repository",
            str(system_id),
        )
    name = f"{CLUSTERS_PREFIX}{system_id}"
    doc = {
        "system_id": system_id,
        "segment_size": segment_size,
        "created": (info or {}).get("created", time.time()),
    }
    repo.storage.put(name, repo.seal(name, json.dumps(doc).encode()))


def wal_segment_size(repo: Repository, system_id: int | None = None) -> int:
    """The segment size of the cluster's archived WAL; ConfigError when none is archived."""
    sysid = _resolve(repo, system_id)
    info = read_cluster_info(repo, sysid) if sysid is not None else None
    size = (info or {}).get("segment_size")
    if not isinstance(size, int) or not valid_segment_size(size):
        raise ConfigError(
            f"no WAL segment of cluster {sysid if sysid is not None else '(none)'} is archived "
            f"in {repo.location} yet: set archive_command (scholar-ops-wal setup-hint)"
        )
    return size


# -- objects ----------------------------------------------------------------------------


def _parse_head(obj: str, data: bytes) -> tuple[int, int]:
    """(offset of the sealed header, its length)."""
    if len(data) < _HEAD.size:
        raise IntegrityError(f"{obj}: truncated WAL object", obj)
    magic, length = _HEAD.unpack_from(data, 0)
    if magic != OBJECT_MAGIC:
        raise IntegrityError(f"{obj}: not a WAL object of scholar-ops (bad magic)", obj)
    return _HEAD.size, length


def _decode_meta(repo: Repository, obj: str, sealed: bytes) -> WalMeta:
    payload = repo.unseal(obj, sealed, WAL_KIND)
    try:
        return WalMeta.from_json(payload)
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{obj}: WAL header is malformed ({e})", obj) from None


def read_meta(repo: Repository, obj: str) -> WalMeta | None:
    """The header of a WAL object (a ranged read); None when there is no such object."""
    try:
        head = repo.storage.get(obj, 0, _HEADER_READ)
    except ObjectNotFound:
        return None
    start, length = _parse_head(obj, head)
    if start + length > len(head):
        head += repo.storage.get(obj, len(head), start + length - len(head))
        if start + length > len(head):
            raise IntegrityError(f"{obj}: truncated WAL object", obj)
    return _decode_meta(repo, obj, head[start : start + length])


def _open(repo: Repository, obj: str, data: bytes) -> tuple[WalMeta, bytes]:
    start, length = _parse_head(obj, data)
    if start + length > len(data):
        raise IntegrityError(f"{obj}: truncated WAL object", obj)
    meta = _decode_meta(repo, obj, data[start : start + length])
    body = data[start + length :]
    if hashlib.sha256(body).hexdigest() != meta.body_sha256:
        raise IntegrityError(
            f"{obj}: the WAL data does not match its header (damaged, or replaced)", obj
        )
    try:
        payload = repo.unseal(obj + BODY_SUFFIX, body, WAL_KIND)
        plain = decompress(meta.alg, payload, meta.size)
    except IntegrityError as e:
        raise IntegrityError(str(e).replace(obj + BODY_SUFFIX + ":", obj + ":"), obj) from None
    except Exception as e:  # zstd/zlib errors: the sealed bytes decrypted but do not inflate
        raise IntegrityError(f"{obj}: WAL data does not decompress ({e})", obj) from None
    if len(plain) != meta.size or hashlib.sha256(plain).hexdigest() != meta.sha256:
        raise IntegrityError(f"{obj}: WAL data does not match its recorded digest", obj)
    return meta, plain


# -- push / fetch -----------------------------------------------------------------------


def push_wal(repo: Repository, path: Path, *, system_id: int | None = None) -> PushResult:
    """Archive one file PostgreSQL hands archive_command; durable when this returns.

    The same content pushed again succeeds without writing; different content under an
    existing name raises WalConflict and changes nothing.
    """
    t0 = time.monotonic()
    path = Path(path)
    wal = parse_wal_name(path.name)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            # Mapped, not read: hashing and compressing read the page cache directly
            # (a 16 MB copy less per segment).
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except OSError as e:
        raise SourceError(
            f"{wal.name}: cannot read {path}: {e.strerror}: archive_command must run in the data "
            "directory as its owner and pass %p"
        ) from None
    data = memoryview(mapped) if mapped is not None else memoryview(b"")
    try:
        return _push_data(repo, wal, data, system_id, path, t0)
    finally:
        data.release()
        if mapped is not None:
            mapped.close()


def _push_data(
    repo: Repository,
    wal: WalName,
    data: memoryview,
    system_id: int | None,
    path: Path,
    t0: float,
) -> PushResult:
    segment_size: int | None = None
    if wal.kind in ("segment", "partial"):
        header = read_segment_header(data, wal)
        segment_size = header.segment_size
        if system_id is not None and header.system_id != system_id:
            raise ConfigError(
                f"{wal.name} belongs to cluster {header.system_id}, not {system_id}: "
                "check the system identifier given"
            )
        system_id = header.system_id
    if system_id is None:
        system_id = system_id_of_datadir(datadir_of(path))
    if system_id is None:
        raise ConfigError(
            f"{wal.name}: cannot tell which cluster it belongs to (no readable "
            f"global/pg_control next to {path.parent}): run archive_command in the data "
            "directory, or give --system-id"
        )
    obj = object_name(system_id, wal.name)
    digest = hashlib.sha256(data).hexdigest()
    existing = read_meta(repo, obj)
    if existing is not None:
        if existing.size == len(data) and existing.sha256 == digest:
            return PushResult(wal.name, obj, system_id, len(data), 0, True, time.monotonic() - t0)
        raise WalConflict(
            f"{wal.name}: a different file is already archived under this name in "
            f"{repo.location} ({existing.size} bytes, sha256 {existing.sha256[:12]}…; this one "
            f"{len(data)} bytes, {digest[:12]}…): nothing was written. Is a second cluster "
            "archiving into the same place, or was the archive copied from elsewhere?",
            wal.name,
        )
    _ensure_cluster_info(repo, system_id, segment_size)
    alg, body = Compressor(repo.config.compression, repo.config.compression_level).compress(data)
    sealed_body = repo.seal(obj + BODY_SUFFIX, bytes(body))
    del body
    meta = WalMeta(
        name=wal.name,
        system_id=system_id,
        size=len(data),
        sha256=digest,
        alg=int(alg),
        body_sha256=hashlib.sha256(sealed_body).hexdigest(),
        stored=time.time(),
        segment_size=segment_size,
    )
    sealed_meta = repo.seal(obj, meta.to_json())
    blob = b"".join((_HEAD.pack(OBJECT_MAGIC, len(sealed_meta)), sealed_meta, sealed_body))
    del sealed_body
    repo.storage.put(obj, blob)
    return PushResult(wal.name, obj, system_id, meta.size, len(blob), False, time.monotonic() - t0)


def fetch_wal(repo: Repository, name: str, dest: Path, *, system_id: int | None = None) -> bool:
    """Write archived WAL file ``name`` to ``dest`` (atomically); False when it is not archived.

    Without ``system_id``: the cluster of the data directory ``dest`` lies in (restore_command
    writes into ``pg_wal/`` of a data directory restored from a base backup), else the only
    cluster archived in the repository.
    """
    dest = Path(dest)
    wal = parse_wal_name(name)
    if system_id is None:
        system_id = system_id_of_datadir(datadir_of(dest))
    sysid = _resolve(repo, system_id)
    if sysid is None:
        return False
    obj = object_name(sysid, wal.name)
    try:
        data = repo.storage.get(obj)
    except ObjectNotFound:
        return False
    meta, plain = _open(repo, obj, data)
    del data
    if meta.name != wal.name or meta.system_id != sysid:
        raise IntegrityError(f"{obj}: holds {meta.name} of cluster {meta.system_id}", obj)
    _write_atomic(dest, plain)
    return True


def _write_atomic(dest: Path, data: bytes) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- listing ----------------------------------------------------------------------------


def _entries(
    repo: Repository, system_id: int, timeline: int | None = None
) -> list[tuple[WalName, str, int]]:
    """(parsed name, object name, stored size) of every WAL object of a cluster."""
    prefix = f"{WAL_PREFIX}{system_id}/" + (f"{timeline:08X}/" if timeline is not None else "")
    out = []
    for info in repo.storage.list(prefix):
        try:
            wal = parse_wal_name(info.name.rsplit("/", 1)[-1])
        except ConfigError:
            continue  # not ours
        out.append((wal, info.name, info.size))
    return out


def list_wal(
    repo: Repository, *, system_id: int | None = None, details: bool = True
) -> list[WalFile]:
    """Every archived WAL file (of one cluster, or of every cluster), in WAL order.

    ``details`` reads each object's header (size, stored time); without, those are None.
    """
    clusters = [system_id] if system_id is not None else archived_clusters(repo)
    out: list[WalFile] = []
    for sysid in clusters:
        info = read_cluster_info(repo, sysid) or {}
        seg_size = info.get("segment_size")
        entries = _entries(repo, sysid)
        metas: list[WalMeta | None] = [None] * len(entries)
        if details and entries:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(8) as pool:
                metas = list(pool.map(lambda e: read_meta(repo, e[1]), entries))
        for (wal, obj, stored_size), meta in zip(entries, metas, strict=True):
            start = wal.start_lsn(seg_size) if wal.has_segment and seg_size else None
            out.append(
                WalFile(
                    name=wal.name,
                    kind=wal.kind,
                    timeline=wal.timeline,
                    start_lsn=start,
                    size=meta.size if meta else None,
                    stored_size=stored_size,
                    stored_time=meta.stored if meta else None,
                    system_id=sysid,
                    object_name=obj,
                )
            )
    return sorted(out, key=lambda f: (f.system_id, f.timeline, f.start_lsn or -1, f.name))


def last_archived(repo: Repository, *, system_id: int | None = None) -> tuple[str, float] | None:
    """The newest archived segment (highest timeline and position) and when it was stored.

    With several clusters and no ``system_id``: the most recently stored of their newest.
    """
    clusters = [system_id] if system_id is not None else archived_clusters(repo)
    best: tuple[str, float] | None = None
    for sysid in clusters:
        segments = [(w, o) for w, o, _ in _entries(repo, sysid) if w.kind in ("segment", "partial")]
        if not segments:
            continue
        wal, obj = max(segments, key=lambda e: (e[0].timeline, e[0].log, e[0].seg, e[0].kind))
        meta = read_meta(repo, obj)
        if meta is not None and (best is None or meta.stored > best[1]):
            best = (wal.name, meta.stored)
    return best


# -- continuity and retention -------------------------------------------------------------


def _history(repo: Repository, system_id: int, timeline: int) -> list[tuple[int, int]] | None:
    obj = object_name(system_id, f"{timeline:08X}.history")
    try:
        data = repo.storage.get(obj)
    except ObjectNotFound:
        return None
    _, plain = _open(repo, obj, data)
    try:
        return parse_history(plain.decode())
    except (ValueError, UnicodeDecodeError, ConfigError) as e:
        raise IntegrityError(f"{obj}: timeline history is malformed ({e})", obj) from None


def _describe_missing(timeline: int, segnos: list[int], seg_size: int) -> Iterable[str]:
    """Runs of consecutive missing segment numbers, one problem line each."""
    run: list[int] = []
    for n in [*sorted(segnos), None]:
        if n is not None and run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            first = segment_name(timeline, run[0], seg_size)
            if len(run) == 1:
                yield (
                    f"WAL segment {first} is missing from the archive (timeline {timeline}, "
                    f"{format_lsn(run[0] * seg_size)}): recovery cannot pass it"
                )
            else:
                last = segment_name(timeline, run[-1], seg_size)
                yield (
                    f"{len(run)} WAL segments {first} to {last} are missing from the archive "
                    f"(timeline {timeline}, {format_lsn(run[0] * seg_size)} to "
                    f"{format_lsn((run[-1] + 1) * seg_size)}): recovery cannot pass them"
                )
        run = [n] if n is not None else []


def check_wal_continuity(
    repo: Repository,
    timeline: int,
    start_lsn: int,
    end_lsn: int | None = None,
    *,
    system_id: int | None = None,
) -> list[str]:
    """Problems (each naming the missing segments) replaying from ``start_lsn`` on ``timeline``.

    Follows the newest timeline that branched from ``timeline`` after ``start_lsn`` (what
    recovery_target_timeline = 'latest' does), through the archived history files, up to
    ``end_lsn`` or, without it, to the newest archived segment. An empty list: no gap.
    """
    try:
        sysid = _resolve(repo, system_id)
        if sysid is None:
            return [f"no WAL is archived in {repo.location}: check archive_command"]
        seg_size = wal_segment_size(repo, sysid)
    except VaultError as e:
        return [str(e)]
    entries = _entries(repo, sysid)
    have: dict[int, set[int]] = {}
    for wal, _, _ in entries:
        if wal.kind == "segment":
            have.setdefault(wal.timeline, set()).add(wal.segno(seg_size))
    # The newest timeline descending from (timeline, start_lsn), and its switch points.
    path: list[tuple[int, int]] = []  # (timeline, where it ends) for every timeline before the last
    target = timeline
    problems: list[str] = []
    for tli in sorted({w.timeline for w, _, _ in entries if w.kind == "history"}, reverse=True):
        if tli <= timeline:
            break
        try:
            hist = _history(repo, sysid, tli)
        except IntegrityError as e:
            problems.append(str(e))
            continue
        if not hist:
            continue
        parents = [p for p, _ in hist]
        if timeline not in parents:
            continue
        i = parents.index(timeline)
        if hist[i][1] < start_lsn:
            continue  # branched off before the backup started: not reachable from it
        path = hist[i:]
        target = tli
        break
    segments_needed: list[tuple[int, int, int]] = []  # (timeline, first segno, last segno)
    begin = start_lsn
    for tli, switch in path:
        if end_lsn is not None and end_lsn < switch:
            segments_needed.append((tli, segno_of(begin, seg_size), segno_of(end_lsn, seg_size)))
            break
        segments_needed.append((tli, segno_of(begin, seg_size), segno_of(switch, seg_size) - 1))
        begin = switch
    else:
        on_target = have.get(target, set())
        if end_lsn is not None:
            last = segno_of(end_lsn, seg_size)
        else:  # to the newest archived segment, and at least the one recovery starts in
            last = max([*on_target, segno_of(begin, seg_size)])
        segments_needed.append((target, segno_of(begin, seg_size), last))
    for tli, first, last in segments_needed:
        missing = [n for n in range(first, last + 1) if n not in have.get(tli, set())]
        problems.extend(_describe_missing(tli, missing, seg_size))
    return problems


def prune_wal(
    repo: Repository, keep_from: list[tuple[int, int]], *, system_id: int | None = None
) -> int:
    """Delete the WAL no kept base backup needs: every segment, partial segment and backup
    history file before the oldest ``(timeline, start_lsn)`` of ``keep_from``. Timeline
    history files stay. With ``keep_from`` empty nothing is deleted (a retention that keeps
    no base backup never empties the archive). Returns the number of objects deleted.
    """
    if not keep_from:
        return 0
    sysid = _resolve(repo, system_id)
    if sysid is None:
        return 0
    seg_size = wal_segment_size(repo, sysid)
    cutoff = min(lsn for _, lsn in keep_from)
    cut_segno = segno_of(cutoff, seg_size)
    deleted = 0
    for wal, obj, _ in _entries(repo, sysid):
        if wal.kind == "history":
            continue
        if wal.kind == "backup":
            old = wal.start_lsn(seg_size) < cutoff
        else:
            old = wal.segno(seg_size) < cut_segno
        if old:
            with contextlib.suppress(ObjectNotFound):
                repo.storage.delete(obj)
                deleted += 1
    return deleted
