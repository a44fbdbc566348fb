"""Backing up a PostgreSQL database as a deduplication-friendly logical dump.

One snapshot: the schema as a pg_dump archive and every table's rows as COPY text
ordered by primary key, all read inside one exported transaction snapshot, with
row counts, sequences and materialized views in the manifest (docs/formats.md,
"PostgreSQL"). Dumps are chunked finer than the store's default (128 KiB average)
so that a day of scattered updates touches few chunks.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from scholar_ops.sources.postgres import largeobjects, roles
from scholar_ops.sources.postgres.catalog import (
    TableInfo,
    database_info,
    list_indexes,
    list_matviews,
    list_sequences,
    list_tables,
)
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.postgres.tools import find_tool, run_tool
from scholar_ops.vault.archiver import BackupWriter, Progress
from scholar_ops.vault.chunker import ChunkerParams
from scholar_ops.vault.errors import SourceError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import BackupType, Snapshot

log = logging.getLogger("scholar_ops.sources.postgres")

COMPONENT = "postgres"
SCHEMA_ENTRY = "schema.pgdump"
TABLE_PREFIX = "tables/"
POSTGRES_CHUNKER = ChunkerParams(avg_size=128 << 10, min_size=32 << 10, max_size=512 << 10)
_COUNT_SLICE = 256 << 10
_SESSION_SETTINGS = (
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "extra_float_digits",
    "bytea_output",
    "lc_monetary",
)


class _RowCounter:
    """Passes a COPY text stream through, counting rows (one newline per row)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.rows = 0
        self.bytes = 0

    def readinto(self, b: memoryview) -> int:
        n: int = self.raw.readinto(b)
        view = memoryview(b)
        for start in range(0, n, _COUNT_SLICE):
            self.rows += view[start : min(n, start + _COUNT_SLICE)].tobytes().count(b"\n")
        self.bytes += n
        return n


@dataclass
class DumpOptions:
    pg_bin_dir: str | Path | None = None
    timeout_s: float = 6 * 3600
    order_by_key: bool = True


def dump_database(
    writer: BackupWriter, conninfo: PgConnInfo, options: DumpOptions | None = None
) -> dict[str, Any]:
    """Stream one database into ``writer`` as entries; returns the manifest details."""
    opts = options or DumpOptions()
    deadline = time.monotonic() + opts.timeout_s
    pg_dump = find_tool("pg_dump", opts.pg_bin_dir)
    psql = find_tool("psql", opts.pg_bin_dir)
    try:
        conn = psycopg.connect(**conninfo.connect_kwargs())
    except psycopg.OperationalError as e:
        raise SourceError(
            f"cannot connect to {conninfo.describe()}: {str(e).strip()}", transient=True
        ) from e
    # One REPEATABLE READ transaction: the catalog queries here and every psql/pg_dump
    # that imports the exported snapshot see the same state of the database.
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    with conn:
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        snapshot_id = str(row[0])
        info = database_info(conn)
        # The settings that shape COPY's text (a drill compares the restored tables' COPY
        # output with the stored streams under the same settings).
        session = dict(
            zip(
                _SESSION_SETTINGS,
                conn.execute(
                    "SELECT " + ", ".join(f"current_setting('{s}')" for s in _SESSION_SETTINGS)
                ).fetchone()
                or (),
                strict=False,
            )
        )
        tables = list_tables(conn)
        sequences = list_sequences(conn)
        matviews = list_matviews(conn)
        indexes = list_indexes(conn)
        cluster = roles.collect(conn)
        lost = roles.passwordless_logins(cluster)
        if lost:
            log.warning(
                "the backup role cannot read password hashes (pg_authid): after a restore into "
                "a new server, set the passwords of %s again",
                ", ".join(lost),
            )
        writer.add_stream(roles.ROLES_ENTRY, io.BytesIO(json.dumps(cluster.to_json()).encode()))
        env = conninfo.env()
        with run_tool(
            [
                pg_dump,
                "--schema-only",
                "--format=custom",
                f"--snapshot={snapshot_id}",
                "--no-password",
            ],
            env=env,
            what=f"pg_dump of {conninfo.describe()}",
            timeout=max(1.0, deadline - time.monotonic()),
        ) as proc:
            writer.add_stream(SCHEMA_ENTRY, proc.stdout)
            proc.finish()
        table_details = []
        for table in tables:
            table_details.append(
                _dump_table(writer, psql, env, snapshot_id, table, opts, deadline, conninfo)
            )
        los = largeobjects.list_large_objects(conn) if info["large_objects"] else []
        if los:
            writer.add_stream(largeobjects.DATA_ENTRY, largeobjects.LargeObjectStream(conn, los))
            writer.add_stream(largeobjects.META_ENTRY, io.BytesIO(largeobjects.meta_bytes(los)))
    return {
        **info,
        "cluster": cluster.summary(),
        "session": session,
        "passwordless_logins": lost,
        "tables": table_details,
        "sequences": sequences,
        "matviews": matviews,
        "indexes": indexes,
        "format": "scholar-ops-pg/1",
    }


def _dump_table(
    writer: BackupWriter,
    psql: str,
    env: dict[str, str],
    snapshot_id: str,
    table: TableInfo,
    opts: DumpOptions,
    deadline: float,
    conninfo: PgConnInfo,
) -> dict[str, Any]:
    if not opts.order_by_key:
        table = TableInfo(table.schema, table.name, table.columns, [], table.est_bytes)
    copy = table.copy_out().as_string(None)
    argv = [
        psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-1",
        "-c", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        "-c", f"SET TRANSACTION SNAPSHOT '{snapshot_id}'",
        # As pg_dump: a row-level security policy that would hide rows is an error, never
        # a silently partial table.
        "-c", "SET row_security = off",
        "-c", copy,
    ]  # fmt: skip
    with run_tool(
        argv,
        env=env,
        what=f"COPY of table {table.qualified} from {conninfo.describe()}",
        timeout=max(1.0, deadline - time.monotonic()),
    ) as proc:
        counter = _RowCounter(proc.stdout)
        entry = writer.add_stream(TABLE_PREFIX + table.qualified, counter)
        proc.finish()
    return {
        "schema": table.schema,
        "name": table.name,
        "entry": entry.name,
        "rows": counter.rows,
        "bytes": counter.bytes,
        "columns": table.columns,
        "key": table.key,
    }


def backup_database(
    repo: Repository,
    conninfo: PgConnInfo,
    *,
    target: str | None = None,
    backup_type: BackupType = "incremental",
    options: DumpOptions | None = None,
    retention_days: float | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> Snapshot:
    """Back one database up as one snapshot (component ``postgres``)."""
    with BackupWriter(
        repo,
        component=COMPONENT,
        target=target or conninfo.dbname,
        backup_type=backup_type,
        chunker=POSTGRES_CHUNKER,
        progress=progress,
    ) as writer:
        details = dump_database(writer, conninfo, options)
        details["source"] = conninfo.describe()
        return writer.commit(
            retention_days=retention_days, group=group, tags=tags or [], details=details
        )
