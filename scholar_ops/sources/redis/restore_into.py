"""Restoring a Redis snapshot into a running server: every key copied with DUMP/RESTORE.

``restore_redis_into``: the RDB goes into a temporary directory, a temporary
redis-server loads it (it needs as much memory as the data set), and every key is
copied with ``DUMP`` (and its ``PTTL``) from it and ``RESTORE`` into the target,
database by database, in pipelined batches of about 8 MiB (measured with ``MEMORY
USAGE`` first: bounded memory whatever the key sizes, but one key's DUMP). A reader
thread fetches the next batch while the last one is written (at most a few batches
in memory). Keys copied are unlinked from the temporary server, so its SCAN can
never return a key twice; TTLs go over as the remaining milliseconds (RDB expiry
times are absolute: a key whose TTL ran out since the backup is gone, as it would
be on the source). What happens to keys the target already holds is chosen by
``existing``:

``fail``     refuse (TargetNotEmpty) if a chosen database holds any key, before
             writing anything (a key that another client writes meanwhile stops
             the restore there);
``skip``     keep the target's keys, restore the others;
``replace``  overwrite keys of the same name (``RESTORE ... REPLACE``), keep the rest;
``flush``    ``FLUSHDB`` each chosen database first (once the backup is loaded and
             ready to copy), then restore.

Redis Functions (7.0+) come along when every database is restored. Then the
restore is verified (scholar_ops.sources.redis.verify): key counts per database
and per type against the manifest's ranges, the target's key count, and the
manifest's sample of value digests read back from the target. Mismatches are
reported, not raised.

The RDB must be loadable by the local redis-server (same or newer version than the
source's) and DUMP payloads restorable by the target (same or newer version than
the local redis-server). Standalone servers only (no cluster slots).
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis

from scholar_ops.sources.redis.client import ping, raw_client, redis_errors
from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.digests import SampleLimits, key_from_json
from scholar_ops.sources.redis.info import function_names
from scholar_ops.sources.redis.restore_rdb import (
    backup_dbs,
    check_snapshot,
    restore_redis_rdb,
    server_from,
)
from scholar_ops.sources.redis.server import RedisServer
from scholar_ops.sources.redis.survey import type_name
from scholar_ops.sources.redis.verify import verify_copy
from scholar_ops.vault.errors import ConfigError, SourceError, TargetNotEmpty, VaultError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot

ExistingMode = Literal["fail", "skip", "replace", "flush"]
_MODES = ("fail", "skip", "replace", "flush")
_SCAN_COUNT = 500
_MAX_BATCH_KEYS = 1000


@dataclass
class RedisRestoreResult:
    target: str
    snapshot_id: str
    existing: str
    dbs: list[int]
    keys: dict[int, int] = field(default_factory=dict)  # restored per database
    skipped: dict[int, int] = field(default_factory=dict)  # left as they were (existing="skip")
    types: dict[int, dict[str, int]] = field(default_factory=dict)  # in the backup, per database
    expired: int = 0  # had expired by the time they were copied
    bytes: int = 0  # DUMP payload bytes
    functions: int = 0  # function libraries restored
    sample_checked: int = 0
    sample_expired: int = 0
    sample_unverifiable: int = 0
    duration_s: float = 0.0
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def restored(self) -> int:
        return sum(self.keys.values())


def restore_redis_into(
    repo: Repository,
    snap: Snapshot,
    target: RedisConnInfo,
    *,
    existing: ExistingMode = "fail",
    dbs: list[int] | None = None,
    workdir: Path | str | None = None,
    batch_bytes: int = 8 << 20,
    verify: bool = True,
    sample_limits: SampleLimits | None = None,
) -> RedisRestoreResult:
    """Restore the snapshot into a running server (see the module docstring).

    ``dbs``: the databases to restore (default: every database the backup holds keys
    in); ``existing`` applies to them. ``workdir``: where the temporary RDB and server
    live (default: the system's temporary directory).
    """
    check_snapshot(snap)
    if existing not in _MODES:
        raise ConfigError(f"existing must be one of {', '.join(_MODES)}, not {existing!r}")
    if dbs is not None and any(not isinstance(d, int) or d < 0 for d in dbs):
        raise ConfigError(f"dbs must be database numbers (0, 1, ...), not {dbs!r}")
    started = time.monotonic()
    chosen = sorted(set(dbs)) if dbs is not None else backup_dbs(snap)
    result = RedisRestoreResult(
        target=target.describe(), snapshot_id=snap.backup_id, existing=existing, dbs=chosen
    )
    limits = sample_limits or SampleLimits()
    ping(target)
    if existing == "fail":
        _refuse_non_empty(target, chosen)
    with tempfile.TemporaryDirectory(prefix="scholar-ops-redis-restore-", dir=workdir) as tmp:
        restore_redis_rdb(repo, snap, tmp)
        with server_from(snap, Path(tmp), keep_data=True) as temp:
            if existing == "fail":
                # again (the RDB took a while), and the function libraries too
                libraries = (snap.details.get("functions") or []) if dbs is None else []
                _refuse_non_empty(target, chosen, libraries)
            elif existing == "flush":
                with redis_errors(target, "FLUSHDB"):
                    for db in chosen:
                        client = target.client(db, retries=0)
                        try:
                            client.flushdb(asynchronous=True)
                        finally:
                            client.close()
            skipped_sample: dict[int, set[bytes]] = {}
            volatile: dict[int, int] = {}
            for db in chosen:
                sample = {
                    key_from_json(s["key"])
                    for s in snap.details["databases"].get(str(db), {}).get("sample", [])
                }
                skipped_sample[db], volatile[db] = _copy_db(
                    temp, target, db, existing, sample, batch_bytes, result
                )
            if dbs is None:
                _copy_functions(temp, target, existing, result)
    if verify:
        verify_copy(snap, target, result, skipped_sample, volatile, limits, whole=dbs is None)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _refuse_non_empty(
    target: RedisConnInfo, dbs: list[int], libraries: list[str] | None = None
) -> None:
    held = {}
    clashes: list[str] = []
    with redis_errors(target, "checking that the target is empty"):
        for db in dbs:
            client = target.client(db)
            try:
                n = int(client.dbsize())
            finally:
                client.close()
            if n:
                held[db] = n
        if libraries:
            client = raw_client(target.client())
            try:
                clashes = sorted(set(libraries) & set(function_names(client) or []))
            finally:
                client.close()
    if held or clashes:
        which = ", ".join(
            [f"db {db} holds {n} keys" for db, n in held.items()]
            + [f"function library {name} exists" for name in clashes]
        )
        raise TargetNotEmpty(
            f"Redis at {target.describe()} is not empty ({which}); nothing was written. "
            "Choose existing='skip' (keep its keys), 'replace' (overwrite keys of the same "
            "name) or 'flush' (empty those databases first)"
        )


# The first byte of a DUMP payload is the value's RDB type (rdb.h): its TYPE, without asking.
_RDB_TYPES = {
    0: "string", 1: "list", 2: "set", 3: "zset", 4: "hash", 5: "zset", 9: "hash", 10: "list",
    11: "set", 12: "zset", 13: "hash", 14: "list", 15: "stream", 16: "hash", 17: "zset",
    18: "list", 19: "stream", 20: "set", 21: "stream", 22: "hash", 23: "hash", 24: "hash",
    25: "hash",
}  # fmt: skip


@dataclass
class _Group:
    keys: list[bytes]
    pttls: list[int]
    payloads: list[bytes | None]
    types: list[str]


def _read_groups(
    src: redis.Redis,
    batch_bytes: int,
    out: queue.Queue[_Group | BaseException | None],
    stop: threading.Event,
) -> None:
    """Producer: the temporary server's keys with their PTTL and DUMP, group by group.

    Runs in its own thread, so reading the next group overlaps writing the last one; the
    queue's bound keeps at most a few groups in memory. Copied keys are unlinked at
    once: SCAN cannot return them again.
    """
    try:
        cursor = 0
        while not stop.is_set():
            cursor, found = src.scan(cursor, count=_SCAN_COUNT)
            keys: list[bytes] = [k if isinstance(k, bytes) else k.encode() for k in found]
            for group in _groups(src, keys, batch_bytes):
                if stop.is_set():
                    return
                tx = src.pipeline(transaction=True)
                for k in group:
                    tx.pttl(k)
                    tx.dump(k)
                replies = tx.execute()
                payloads = replies[1::2]
                # The first byte of a DUMP payload is the value's RDB type; a module's type
                # is named by TYPE (as the backup's survey named it).
                types = [
                    (_RDB_TYPES.get(p[0]) or type_name(src.type(k))) if p else ""
                    for k, p in zip(group, payloads, strict=True)
                ]
                out.put(_Group(group, replies[::2], payloads, types))
                src.unlink(*group)
            if cursor == 0:
                break
        out.put(None)
    except BaseException as e:  # handed to the consumer, which raises it
        out.put(e)


def _copy_db(
    temp: RedisServer,
    target: RedisConnInfo,
    db: int,
    existing: str,
    sample: set[bytes],
    batch_bytes: int,
    result: RedisRestoreResult,
) -> tuple[set[bytes], int]:
    """DUMP from the temporary server, RESTORE into the target; returns (sampled keys
    skipped, keys restored with a TTL)."""
    src = temp.client(db, socket_timeout=300, protocol=2)
    # No retries on the target: a RESTORE sent twice after a dropped link would fail.
    dst = target.client(db, retries=0)
    replace = existing in ("replace", "flush")
    restored = skipped = volatile = 0
    types: Counter[str] = Counter()
    skipped_sample: set[bytes] = set()
    groups: queue.Queue[_Group | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_groups, args=(src, batch_bytes, groups, stop), name="redis-dump", daemon=True
    )
    reader.start()
    try:
        while True:
            group = groups.get()
            if group is None:
                break
            if isinstance(group, redis.RedisError):
                raise SourceError(
                    f"reading the temporary server of the restore failed: {group}"
                ) from None
            if isinstance(group, BaseException):
                raise group
            pipe = dst.pipeline(transaction=False)
            items = []
            for k, pttl, payload, typ in zip(
                group.keys, group.pttls, group.payloads, group.types, strict=True
            ):
                if payload is None or pttl == 0 or pttl == -2:
                    result.expired += 1  # expired meanwhile (PTTL 0: about to)
                    continue
                pipe.restore(k, max(0, pttl), payload, replace=replace)
                items.append((k, typ, len(payload), pttl > 0))
            with redis_errors(target, f"RESTORE into db {db}"):
                answers = pipe.execute(raise_on_error=False) if items else []
            for (k, typ, size, has_ttl), answer in zip(items, answers, strict=True):
                types[typ] += 1
                if isinstance(answer, Exception):
                    if str(answer).startswith("BUSYKEY") and existing == "skip":
                        skipped += 1
                        if k in sample:
                            skipped_sample.add(k)
                        continue
                    result.keys[db] = restored
                    raise _restore_error(target, db, k, answer, restored)
                restored += 1
                volatile += has_ttl
                result.bytes += size
    finally:
        stop.set()
        _drain(groups, reader)
        src.close()
        dst.close()
    result.keys[db] = restored
    result.skipped[db] = skipped
    result.types[db] = dict(sorted(types.items()))
    return skipped_sample, volatile


def _drain(groups: queue.Queue[_Group | BaseException | None], reader: threading.Thread) -> None:
    """Let the reader thread finish (it may be blocked on a full queue) and wait for it."""
    while reader.is_alive():
        with suppress(queue.Empty):
            groups.get(timeout=0.1)
    reader.join()


def _groups(src: redis.Redis, keys: list[bytes], batch_bytes: int) -> Iterator[list[bytes]]:
    """Keys in groups of about ``batch_bytes`` of memory (a large key alone)."""
    if not keys:
        return
    pipe = src.pipeline(transaction=False)
    for k in keys:
        pipe.execute_command("MEMORY", "USAGE", k, "SAMPLES", "5")
    sizes = pipe.execute()
    group: list[bytes] = []
    total = 0
    for k, size in zip(keys, sizes, strict=True):
        n = int(size or 0)
        if group and (total + n > batch_bytes or len(group) >= _MAX_BATCH_KEYS):
            yield group
            group, total = [], 0
        group.append(k)
        total += n
    if group:
        yield group


def _restore_error(
    target: RedisConnInfo, db: int, key: bytes, error: Exception, done: int
) -> VaultError:
    msg = str(error)
    name = repr(key if len(key) <= 60 else key[:60] + b"...")
    if msg.startswith("BUSYKEY"):
        return TargetNotEmpty(
            f"key {name} appeared in db {db} of {target.describe()} during the restore "
            f"(another client writes into it); {done} keys of that database were restored"
        )
    hint = ""
    if "payload version" in msg:
        hint = " (the target runs an older Redis than the one that loaded the backup)"
    elif msg.startswith("OOM"):
        hint = " (the target's maxmemory is too small for the backup)"
    return SourceError(
        f"RESTORE of key {name} into db {db} of {target.describe()} failed: {msg}{hint}; "
        f"{done} keys of that database were restored"
    )


def _copy_functions(
    temp: RedisServer, target: RedisConnInfo, existing: str, result: RedisRestoreResult
) -> None:
    src = temp.client()
    try:
        libraries = src.execute_command("FUNCTION", "LIST")
        if not libraries:
            return
        payload = src.execute_command("FUNCTION", "DUMP")
    except redis.ResponseError:
        return  # a server without functions
    finally:
        src.close()
    policy = "REPLACE" if existing in ("replace", "flush") else "APPEND"
    dst = target.client(retries=0)
    try:
        dst.execute_command("FUNCTION", "RESTORE", payload, policy)
        result.functions = len(libraries)
    except redis.ResponseError as e:
        if existing == "fail":
            raise TargetNotEmpty(
                f"the function libraries of the backup could not be added to "
                f"{target.describe()}: {e}"
            ) from None
        result.warnings.append(f"function libraries not restored: {e}")
    finally:
        dst.close()
