"""Verifying a restored Redis server against its snapshot's manifest: key counts per
database and type within the recorded ranges, the sampled keys' value digests, and the
function libraries."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scholar_ops.sources.redis.client import raw_client, redis_errors
from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.digests import SampleCheck, SampleLimits, check_sample
from scholar_ops.sources.redis.info import function_names
from scholar_ops.sources.redis.restore_rdb import backup_dbs, check_snapshot, server_from
from scholar_ops.sources.redis.survey import check_counts, survey_server
from scholar_ops.vault.snapshot import Snapshot

if TYPE_CHECKING:
    from scholar_ops.sources.redis.restore_into import RedisRestoreResult


def verify_copy(
    snap: Snapshot,
    target: RedisConnInfo,
    result: RedisRestoreResult,
    skipped_sample: dict[int, set[bytes]],
    volatile: dict[int, int],
    limits: SampleLimits,
    whole: bool,
) -> None:
    """The checks after restore_redis_into, added to ``result.mismatches``: counts per
    database and type, the target's key count, the sample (but the keys the restore left
    as they were), and with ``whole`` the number of function libraries."""
    databases: dict[str, Any] = snap.details["databases"]
    function_warnings = [w for w in result.warnings if w.startswith("function")]
    check = SampleCheck()
    with redis_errors(target, "verifying the restore"):
        for db in result.dbs:
            expected = databases.get(str(db))
            if expected is None:
                continue
            in_backup = result.keys.get(db, 0) + result.skipped.get(db, 0)
            result.mismatches += check_counts(db, expected, in_backup, result.types.get(db, {}))
            client = raw_client(target.client(db))
            try:
                held = int(client.dbsize())
                if held < in_backup - volatile.get(db, 0):
                    result.mismatches.append(
                        f"db {db}: the target holds {held} keys after restoring {in_backup}"
                    )
                skipped = skipped_sample.get(db, set())
                check_sample(
                    client, db, expected["sample"], limits, skip=skipped.__contains__, result=check
                )
            finally:
                client.close()
    expected_functions = snap.details.get("functions")  # None: the backup could not list them
    if (
        whole
        and expected_functions is not None
        and result.functions != len(expected_functions)
        and not function_warnings
    ):
        result.mismatches.append(
            f"{result.functions} function libraries restored, {len(expected_functions)} "
            "in the backup"
        )
    result.sample_checked = check.checked
    result.sample_expired = check.expired
    result.sample_unverifiable = check.unverifiable
    result.mismatches += check.mismatches


def verify_redis(
    conn: RedisConnInfo,
    snap: Snapshot,
    dbs: list[int] | None = None,
    *,
    sample_limits: SampleLimits | None = None,
) -> list[str]:
    """Mismatches between a server restored from ``snap`` (alone on it: e.g. one from
    restore_redis_fresh) and the manifest: counts per database and type, and the sample."""
    check_snapshot(snap)
    limits = sample_limits or SampleLimits()
    databases: dict[str, Any] = snap.details["databases"]
    chosen = sorted(set(dbs)) if dbs is not None else backup_dbs(snap)
    problems: list[str] = []
    with redis_errors(conn, "verifying a restored server"):
        counts = survey_server(conn, chosen)
        for db in chosen:
            expected = databases.get(str(db))
            if expected is None:
                continue
            types = counts[db]
            problems += check_counts(db, expected, sum(types.values()), dict(types))
            client = raw_client(conn.client(db))
            try:
                problems += check_sample(client, db, expected["sample"], limits).mismatches
            finally:
                client.close()
        if dbs is None:
            client = raw_client(conn.client())
            try:
                libraries = function_names(client)
            finally:
                client.close()
            expected_libraries = snap.details.get("functions")
            if expected_libraries is not None and libraries != expected_libraries:
                problems.append(
                    f"function libraries {libraries} restored, {expected_libraries} in the backup"
                )
    return problems


def verify_redis_rdb(snap: Snapshot, rdb_path: Path | str) -> list[str]:
    """Start a throwaway redis-server on ``rdb_path`` (an RDB written by
    ``restore_redis_rdb``; only read) and compare it with the manifest, as
    ``verify_redis`` does. Returns the mismatches."""
    with (
        tempfile.TemporaryDirectory(prefix="scholar-ops-redis-verify-") as tmp,
        server_from(snap, Path(tmp), keep_data=False, rdb=Path(rdb_path)) as server,
    ):
        return verify_redis(RedisConnInfo(host=server.host, port=server.port), snap)
