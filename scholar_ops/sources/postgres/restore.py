"""Restoring a PostgreSQL snapshot written by sources.postgres.dump.

Order: create the database (or refuse a non-empty one unless told to replace
it: then everything goes into a new scratch database, which replaces the old one
only once it is complete and verified; a failed restore leaves the old one as it
was), replay the schema archive's pre-data section, load every table's COPY
stream (several tables at once), replay post-data (indexes, constraints,
triggers) with parallel pg_restore jobs, set sequences, refresh materialized
views, then compare each table's row count with the manifest.

A subset (schemas and/or tables) restores those tables with their indexes,
constraints and triggers; the rest of the schema's definitions come along
empty only where pg_restore's filters include them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scholar_ops.sources.postgres import largeobjects, roles
from scholar_ops.sources.postgres.catalog import TableInfo, user_relation_count
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.postgres.dump import SCHEMA_ENTRY
from scholar_ops.sources.postgres.tools import find_tool, run_checked, run_tool
from scholar_ops.vault import audit
from scholar_ops.vault.errors import (
    IntegrityError,
    SourceError,
    TargetNotEmpty,
    TargetUnsuitable,
    VaultError,
)
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer, pick_entry
from scholar_ops.vault.snapshot import Snapshot

log = logging.getLogger("scholar_ops.sources.postgres")


@dataclass
class RestoreOptions:
    clean: bool = False  # drop and recreate a target database that already holds objects
    schemas: list[str] | None = None
    tables: list[str] | None = None  # "schema.table" (or "table" for any schema)
    jobs: int = 2
    no_owner: bool = False  # leave ownership and privileges out altogether
    # the backup's roles the target cluster lacks: create them (never altering one that
    # exists), skip (create none; ownership and privileges are then left out), or fail
    roles: roles.RolesMode = "create"
    # (schema, table, policy) of row-level security policies left out (they name roles
    # the target lacks, with roles skip)
    leave_out_policies: list[tuple[str, str, str]] = field(default_factory=list)
    pg_bin_dir: str | Path | None = None
    timeout_s: float = 6 * 3600
    verify: bool = True
    # also compare every table's content, as COPY writes it, with the stored stream's
    # SHA-256 (exact; costs a read of the restored database: drills turn it on)
    verify_content: bool = False


@dataclass
class RestoreResult:
    database: str
    snapshot_id: str
    tables: int = 0
    rows: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    row_counts: dict[str, list[int]] = field(default_factory=dict)  # table -> [expected, restored]
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)
    large_objects: int = 0


def restore_database(
    repo: Repository,
    snap: Snapshot,
    target: PgConnInfo,
    options: RestoreOptions | None = None,
) -> RestoreResult:
    opts = options or RestoreOptions()
    if snap.details.get("format") != "scholar-ops-pg/1":
        raise VaultError(
            f"snapshot {snap.short_id} is not a PostgreSQL backup (component {snap.component})"
        )
    started = time.monotonic()
    deadline = started + opts.timeout_s
    result = RestoreResult(database=target.dbname, snapshot_id=snap.backup_id)
    tables = _selected_tables(snap, opts)
    pg_restore = find_tool("pg_restore", opts.pg_bin_dir)
    if opts.roles not in roles.ROLES_MODES:
        raise VaultError(f"roles must be one of {', '.join(roles.ROLES_MODES)}, not {opts.roles!r}")
    cluster = _cluster_objects(repo, snap)
    opts = _settle_roles(target, cluster, opts, result)
    into, created = _prepare_database(target, snap.details, opts)
    try:
        if created and cluster is not None:
            with psycopg.connect(
                **target.with_db("postgres").connect_kwargs(), autocommit=True
            ) as conn:
                result.warnings += roles.apply_database_objects(
                    conn, into.dbname, cluster, set(result.roles_created), not opts.no_owner
                )
        _restore_into(repo, snap, into, opts, tables, pg_restore, deadline, result)
        if into.dbname != target.dbname:
            if result.mismatches:
                result.warnings.append(
                    f"the existing database {target.dbname!r} was left as it was: the "
                    "restored copy differs from the backup"
                )
                _drop_database(into)
            else:
                _swap_in(target, into, result, keep_database_objects=cluster is not None)
    except BaseException:
        if into.dbname != target.dbname:
            _drop_database(into)  # the existing database is untouched
        raise
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _cluster_objects(repo: Repository, snap: Snapshot) -> roles.ClusterObjects | None:
    """The roles, database settings and extensions the backup recorded (None: older backups)."""
    if not any(e.name == roles.ROLES_ENTRY for e in snap.entries):
        return None
    buf = bytearray()
    for data in Restorer(repo).iter_entry(snap, pick_entry(snap, roles.ROLES_ENTRY)):
        buf += data
    return roles.ClusterObjects.from_json(json.loads(bytes(buf)))


def _settle_roles(
    target: PgConnInfo,
    cluster: roles.ClusterObjects | None,
    opts: RestoreOptions,
    result: RestoreResult,
) -> RestoreOptions:
    """Before anything is written: the extensions the target server lacks (one error),
    then the roles per ``opts.roles``. Returns the options to restore with."""
    if cluster is None:
        return opts
    admin = target.with_db("postgres")
    try:
        conn = psycopg.connect(**admin.connect_kwargs(), autocommit=True)
    except psycopg.OperationalError as e:
        raise SourceError(
            f"cannot connect to {admin.describe()}: {str(e).strip()}", transient=True
        ) from e
    with conn:
        lacking = roles.missing_extensions(conn, cluster)
        if lacking:
            raise TargetUnsuitable(
                f"{target.host}:{target.port} cannot create extension(s) "
                f"{', '.join(lacking)} that the backup uses: install them on that server "
                "(e.g. its postgresql-contrib or the extension's package), then restore again"
            )
        if opts.no_owner:
            return opts
        missing = sorted(r.name for r in cluster.roles if r.name not in roles.existing_roles(conn))
        if not missing:
            return opts
        if opts.roles == "fail":
            raise TargetUnsuitable(
                f"{target.host}:{target.port} lacks role(s) {', '.join(missing)} that own or hold "
                "privileges on the backup's objects: create them, or pass --roles create "
                "(or --roles skip to restore without owners and privileges)"
            )
        if opts.roles == "skip":
            result.warnings.append(
                f"role(s) {', '.join(missing)} do not exist on {target.host}:{target.port} "
                "(--roles skip): the database was restored without owners and privileges"
            )
            left_out = cluster.policies_naming(set(missing))
            if left_out:
                result.warnings.append(
                    "row-level security policies naming them were left out: "
                    + ", ".join(f"{p['schema']}.{p['table']}.{p['name']}" for p in left_out)
                )
            return replace(
                opts,
                no_owner=True,
                leave_out_policies=[(p["schema"], p["table"], p["name"]) for p in left_out],
            )
        try:
            outcome = roles.ensure_roles(conn, cluster, "create")
        except PermissionError as e:
            raise TargetUnsuitable(str(e)) from e
        result.roles_created = outcome.created
        result.warnings += outcome.warnings
        if outcome.created:
            log.info("created role(s) %s on %s", ", ".join(outcome.created), admin.describe())
    return opts


def _restore_into(
    repo: Repository,
    snap: Snapshot,
    target: PgConnInfo,
    opts: RestoreOptions,
    tables: list[dict[str, Any]],
    pg_restore: str,
    deadline: float,
    result: RestoreResult,
) -> None:
    """Schema, data, post-data, sequences and checks into the (new or empty) database."""
    with (
        audit.restoring(repo, snap),
        tempfile.TemporaryDirectory(prefix="scholar-ops-") as tmp,
    ):
        restorer = Restorer(repo)
        archive = Path(tmp) / "schema.pgdump"
        with archive.open("wb") as f:
            restorer.restore_entry(snap, pick_entry(snap, SCHEMA_ENTRY), f)
        plan = _plan(pg_restore, archive, snap, opts, tables, target)
        base = [pg_restore, "--no-password", "--exit-on-error", "-d", target.dbname]
        if opts.no_owner:
            base += ["--no-owner", "--no-privileges"]

        def pg_restore_list(
            section: str, lines: list[str] | None, what: str, jobs: int = 1
        ) -> None:
            args = [*base, f"--section={section}", f"--jobs={jobs}"]
            if lines is not None:
                listing = Path(tempfile.mkstemp(dir=tmp, suffix=".list")[1])
                listing.write_text("\n".join(lines) + "\n")
                args += ["-L", str(listing)]
            run_checked(
                [*args, str(archive)],
                env=target.env(),
                what=f"pg_restore ({what}) into {target.describe()}",
                timeout=max(1.0, deadline - time.monotonic()),
            )

        pg_restore_list("pre-data", plan.pre, "pre-data")

        def load(table: dict[str, Any]) -> tuple[int, int]:
            # A table's own indexes and constraints are built as soon as its rows are in,
            # while other tables still load (as pg_restore -j does).
            loaded = _load_table(repo, restorer, snap, table, target, opts, deadline)
            own = plan.per_table.get((table["schema"], table["name"]))
            if own:
                pg_restore_list("post-data", own, f"indexes of {table['schema']}.{table['name']}")
            return loaded

        with ThreadPoolExecutor(max(1, opts.jobs), thread_name_prefix="pg-load") as pool:
            futures = [pool.submit(load, t) for t in tables]
            for t, fut in zip(tables, futures, strict=True):
                rows, nbytes = fut.result()
                result.rows += rows
                result.bytes += nbytes
                result.row_counts[f"{t['schema']}.{t['name']}"] = [int(t["rows"]), rows]
        result.tables = len(tables)
        if not (opts.schemas or opts.tables):
            _restore_large_objects(restorer, snap, target, opts, result)
        # Foreign keys, triggers, partitioned indexes...: once every table is loaded.
        pg_restore_list("post-data", plan.rest, "post-data", jobs=max(1, opts.jobs))
    _finish(
        target,
        snap.details,
        opts,
        tables,
        result,
        {e.name: e.sha256 for e in snap.entries if e.sha256},
    )


def _restore_large_objects(
    restorer: Restorer,
    snap: Snapshot,
    target: PgConnInfo,
    opts: RestoreOptions,
    result: RestoreResult,
) -> None:
    names = {e.name for e in snap.entries}
    if largeobjects.META_ENTRY not in names:
        return
    meta = largeobjects.parse_meta(
        b"".join(restorer.iter_entry(snap, pick_entry(snap, largeobjects.META_ENTRY)))
    )
    data = restorer.iter_entry(snap, pick_entry(snap, largeobjects.DATA_ENTRY))
    with psycopg.connect(**target.connect_kwargs()) as conn:
        count, warnings = largeobjects.restore_large_objects(
            conn, data, meta, with_owner=not opts.no_owner
        )
        result.large_objects = count
        result.warnings += warnings
        if opts.verify:
            result.mismatches += largeobjects.verify_large_objects(conn, meta)


def _selected_tables(snap: Snapshot, opts: RestoreOptions) -> list[dict[str, Any]]:
    tables: list[dict[str, Any]] = snap.details["tables"]
    if opts.schemas:
        tables = [t for t in tables if t["schema"] in opts.schemas]
    if opts.tables:
        wanted = set(opts.tables)
        tables = [
            t for t in tables if f"{t['schema']}.{t['name']}" in wanted or t["name"] in wanted
        ]
        known = {f"{t['schema']}.{t['name']}" for t in snap.details["tables"]} | {
            t["name"] for t in snap.details["tables"]
        }
        missing = sorted(wanted - known)
        if missing:
            raise VaultError(
                f"snapshot {snap.short_id} has no table {', '.join(missing)}: "
                "give tables as schema.table (see the snapshot's details)"
            )
    return tables


def _prepare_database(
    target: PgConnInfo, details: dict[str, Any], opts: RestoreOptions
) -> tuple[PgConnInfo, bool]:
    """The database to restore into: the target (created when missing, or empty), or, to
    replace one that holds objects (``clean``), a new scratch database swapped in only
    once the restore succeeded and verified; a non-empty one without ``clean`` is refused."""
    admin = target.with_db("postgres")
    try:
        with psycopg.connect(**admin.connect_kwargs(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (target.dbname,)
            ).fetchone()
            if not exists:
                _create_database(conn, target.dbname, details)
                return target, True
            with psycopg.connect(**target.connect_kwargs()) as tconn:
                n = user_relation_count(tconn)
            if not n:
                return target, False
            if not opts.clean:
                raise TargetNotEmpty(
                    f"database {target.dbname!r} on {target.host}:{target.port} already holds {n} relations; "
                    "restore into a new database, or pass clean (--clean) to replace it (it is "
                    "replaced only once the restore has succeeded)"
                )
            scratch = _scratch_name(target.dbname)
            _create_database(conn, scratch, details)
            return target.with_db(scratch), True
    except psycopg.OperationalError as e:
        raise SourceError(
            f"cannot connect to {admin.describe()}: {str(e).strip()}", transient=True
        ) from e


def _scratch_name(dbname: str) -> str:
    suffix = f"__restoring_{os.urandom(3).hex()}"
    return dbname.encode()[: 63 - len(suffix)].decode(errors="ignore") + suffix


def _drop_database(db: PgConnInfo) -> None:
    """Drop a scratch database (best effort: a failure is logged, never raised)."""
    try:
        with psycopg.connect(**db.with_db("postgres").connect_kwargs(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.dbname))
            )
    except psycopg.Error as e:
        log.warning("could not drop the scratch database %s: %s", db.dbname, e)


def _swap_in(
    target: PgConnInfo,
    restored: PgConnInfo,
    result: RestoreResult,
    *,
    keep_database_objects: bool = False,
) -> None:
    """Replace ``target`` by the verified ``restored`` database: rename the old one away,
    the new one into its name, give it the old owner, then drop the old one."""
    old_name = _scratch_name(target.dbname).replace("__restoring_", "__replaced_")
    ident = sql.Identifier
    with psycopg.connect(**target.with_db("postgres").connect_kwargs(), autocommit=True) as conn:
        row = conn.execute(
            """SELECT pg_get_userbyid(datdba), datacl IS NOT NULL,
                      EXISTS (SELECT 1 FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)
               FROM pg_database d WHERE datname = %s""",
            (target.dbname,),
        ).fetchone()
        owner, has_acl, has_settings = row if row else (None, False, False)
        for attempt in range(5):
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname IN (%s, %s) AND pid <> pg_backend_pid()",
                (target.dbname, restored.dbname),
            )
            try:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        ident(target.dbname), ident(old_name)
                    )
                )
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        try:
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    ident(restored.dbname), ident(target.dbname)
                )
            )
        except psycopg.Error:
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    ident(old_name), ident(target.dbname)
                )
            )
            raise
        if owner is not None and not keep_database_objects:
            try:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        ident(target.dbname), ident(owner)
                    )
                )
            except psycopg.Error as e:
                result.warnings.append(f"the database's owner {owner!r} could not be kept: {e}")
        if (has_acl or has_settings) and not keep_database_objects:
            result.warnings.append(
                f"database {target.dbname!r} had database-level "
                + " and ".join(
                    w for w, on in (("privileges", has_acl), ("settings", has_settings)) if on
                )
                + " that the replacement does not carry: set them again"
            )
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident(old_name)))


def _create_database(conn: psycopg.Connection[Any], name: str, details: dict[str, Any]) -> None:
    create = sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {}").format(
        sql.Identifier(name), sql.Literal(details.get("encoding", "UTF8"))
    )
    try:
        conn.execute(
            create
            + sql.SQL(" LC_COLLATE {} LC_CTYPE {}").format(
                sql.Literal(details.get("collate", "C")), sql.Literal(details.get("ctype", "C"))
            )
        )
    except psycopg.errors.InvalidParameterValue as e:
        log.warning("creating %s with the server's default locale: %s", name, e)
        conn.execute(create)


_TOC_LINE = re.compile(r"^\d+; \d+ \d+ ")


@dataclass
class _Plan:
    pre: list[str] | None  # TOC lines for pre-data; None: everything
    per_table: dict[tuple[str, str], list[str]]  # post-data items built right after a table's data
    rest: list[str]  # the other post-data items, after all tables


def _plan(
    pg_restore: str,
    archive: Path,
    snap: Snapshot,
    opts: RestoreOptions,
    tables: list[dict[str, Any]],
    target: PgConnInfo,
) -> _Plan:
    """Which schema items pg_restore replays when: the subset, and per-table post-data."""
    toc = run_checked(
        [pg_restore, "-l", str(archive)], env=target.env(), what="pg_restore -l", timeout=300
    ).splitlines()
    entries = [line for line in toc if _TOC_LINE.match(line)]
    subset = bool(opts.schemas or opts.tables)
    table_keys = {(t["schema"], t["name"]) for t in tables}
    index_table = {
        (i["schema"], i["index"]): (i["schema"], i["table"])
        for i in snap.details.get("indexes", [])
        if (i["schema"], i["table"]) in table_keys
    }
    needed = _needed_sequences(snap.details.get("sequences", []), table_keys)
    selected = _subset(entries, opts, tables, index_table, needed) if subset else entries
    if opts.leave_out_policies:
        drop = tuple(f"POLICY {sc} {tb} {name} " for sc, tb, name in opts.leave_out_policies)
        kept = [line for line in selected if not _TOC_LINE.sub("", line).startswith(drop)]
        subset = subset or len(kept) != len(selected)
        selected = kept
    per_table: dict[tuple[str, str], list[str]] = {}
    rest: list[str] = []
    for line in selected:
        body = _TOC_LINE.sub("", line)
        owner = _owning_table(body, table_keys, index_table)
        if owner is None:
            rest.append(line)
        else:
            per_table.setdefault(owner, []).append(line)
    return _Plan(pre=selected if subset else None, per_table=per_table, rest=rest)


def _owning_table(
    body: str, table_keys: set[tuple[str, str]], index_table: dict[tuple[str, str], tuple[str, str]]
) -> tuple[str, str] | None:
    """The loaded table an INDEX or (non-FK) CONSTRAINT entry belongs to, if any."""
    if body.startswith("INDEX "):
        return next(
            (t for (s, i), t in index_table.items() if body.startswith(f"INDEX {s} {i} ")), None
        )
    if body.startswith("CONSTRAINT "):
        return next(
            ((s, n) for s, n in table_keys if body.startswith(f"CONSTRAINT {s} {n} ")), None
        )
    return None


def _needed_sequences(
    sequences: list[dict[str, Any]], table_keys: set[tuple[str, str]]
) -> set[tuple[str, str]] | None:
    """The sequences the chosen tables own or call in their defaults; None when the
    snapshot predates that record (then every sequence of their schemas comes along)."""
    if any("used_by" not in s for s in sequences):
        return None
    chosen = {f"{schema}.{name}" for schema, name in table_keys}
    return {
        (s["schema"], s["name"])
        for s in sequences
        if s.get("owned_by") in chosen or chosen.intersection(s.get("used_by") or [])
    }


def _subset(
    entries: list[str],
    opts: RestoreOptions,
    tables: list[dict[str, Any]],
    index_table: dict[tuple[str, str], tuple[str, str]],
    needed_sequences: set[tuple[str, str]] | None = None,
) -> list[str]:
    """TOC entries of the chosen schemas/tables (with their indexes, constraints, triggers,
    and the sequences, types and functions they depend on)."""
    table_keys = {(t["schema"], t["name"]) for t in tables}
    selected_schemas = {t["schema"] for t in tables} | set(opts.schemas or [])
    selected_schemas |= {schema for schema, _ in needed_sequences or ()}

    def sequence_needed(schema: str, rest: str) -> bool:
        name = rest.split(" ", 1)[0]
        if needed_sequences is not None:
            return (schema, name) in needed_sequences
        # An older snapshot: serial columns' sequences are named <table>_<column>_seq.
        return any(s == schema and name.startswith(f"{n}_") for s, n in table_keys)

    keep: list[str] = []
    for line in entries:
        body = _TOC_LINE.sub("", line)
        desc_schema = next(
            ((d, s) for d in _DESCS for s in selected_schemas if body.startswith(f"{d} {s} ")),
            None,
        )
        if body.startswith("SCHEMA ") and any(
            body.startswith(f"SCHEMA - {s} ") for s in selected_schemas
        ):
            keep.append(line)
        elif desc_schema is not None:
            desc, schema = desc_schema
            rest = body[len(desc) + len(schema) + 2 :]
            if desc in ("SEQUENCE", "SEQUENCE OWNED BY"):
                if opts.tables is None or sequence_needed(schema, rest):
                    keep.append(line)
            elif desc in ("TABLE", "DEFAULT"):
                if opts.tables is None or any(
                    rest.startswith(f"{n} ") for s, n in table_keys if s == schema
                ):
                    keep.append(line)
            elif desc in ("CONSTRAINT", "FK CONSTRAINT", "TRIGGER", "POLICY", "RULE"):
                if any(rest.startswith(f"{n} ") for s, n in table_keys if s == schema):
                    keep.append(line)
            elif desc == "INDEX":
                if any(rest.startswith(f"{i} ") for s, i in index_table if s == schema):
                    keep.append(line)
            elif opts.tables is None:
                keep.append(line)  # types, functions, views... of a selected schema
            elif desc in ("TYPE", "DOMAIN", "FUNCTION", "PROCEDURE", "AGGREGATE", "COLLATION"):
                keep.append(line)  # tables may depend on these
    return keep


_DESCS = sorted(
    [
        "TABLE", "SEQUENCE", "SEQUENCE OWNED BY", "DEFAULT", "CONSTRAINT", "FK CONSTRAINT", "TRIGGER",
        "POLICY", "RULE", "INDEX", "TYPE", "DOMAIN", "FUNCTION", "PROCEDURE", "AGGREGATE", "VIEW",
        "MATERIALIZED VIEW", "COMMENT", "ACL", "COLLATION", "TABLE ATTACH", "INDEX ATTACH",
    ],
    key=len,
    reverse=True,
)  # fmt: skip


def _load_table(
    repo: Repository,
    restorer: Restorer,
    snap: Snapshot,
    table: dict[str, Any],
    target: PgConnInfo,
    opts: RestoreOptions,
    deadline: float,
) -> tuple[int, int]:
    """Stream one table's COPY data from the store into psql. Returns (rows, bytes)."""
    info = TableInfo(table["schema"], table["name"], table["columns"], table["key"])
    psql = find_tool("psql", opts.pg_bin_dir)
    entry = pick_entry(snap, table["entry"])
    # TRUNCATE in the same transaction lets COPY write frozen rows (no later hint-bit
    # rewrite or anti-wraparound vacuum of the whole table); the table is new and empty.
    argv = [psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-1", "-d", target.dbname,
            "-c", sql.SQL("TRUNCATE ONLY {}").format(info.ident()).as_string(None),
            "-c", info.copy_in(freeze=True).as_string(None)]  # fmt: skip
    rows = nbytes = 0
    with run_tool(
        argv,
        env=target.env(),
        what=f"COPY into {info.qualified} on {target.describe()}",
        timeout=max(1.0, deadline - time.monotonic()),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    ) as proc:
        try:
            for data in restorer.iter_entry(snap, entry):
                proc.stdin.write(data)
                rows += data.count(b"\n")
                nbytes += len(data)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped reading: finish() reports its error
        except IntegrityError:
            raise
        proc.finish()
    return rows, nbytes


def _content_mismatches(
    conn: psycopg.Connection[Any],
    details: dict[str, Any],
    tables: list[dict[str, Any]],
    entries: dict[str, str],
) -> list[str]:
    """Tables whose COPY output (in the backup's key order, under the backup session's
    settings) differs from the stored stream, compared by SHA-256."""
    for name, value in (details.get("session") or {}).items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    out: list[str] = []
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for t in tables:
            want = entries.get(t["entry"])
            if not want:
                continue
            info = TableInfo(t["schema"], t["name"], t["columns"], t["key"])
            sha = hashlib.sha256()
            with conn.cursor().copy(info.copy_out()) as copy:
                for data in copy:
                    sha.update(data)
            if sha.hexdigest() != want:
                out.append(f"table {info.qualified}: content differs from the backup")
    return out


def _finish(
    target: PgConnInfo,
    details: dict[str, Any],
    opts: RestoreOptions,
    tables: list[dict[str, Any]],
    result: RestoreResult,
    snap_entries: dict[str, str] | None = None,
) -> None:
    schemas = {t["schema"] for t in tables} if (opts.schemas or opts.tables) else None
    with psycopg.connect(**target.connect_kwargs(), autocommit=True) as conn:
        for seq in details.get("sequences", []):
            if schemas is not None and seq["schema"] not in schemas:
                continue
            ident = sql.SQL(".").join([sql.Identifier(seq["schema"]), sql.Identifier(seq["name"])])
            exists = conn.execute(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (seq["schema"], seq["name"]),
            ).fetchone()
            if exists:
                conn.execute(
                    sql.SQL("SELECT setval({}, %s, %s)").format(sql.Literal(ident.as_string(conn))),
                    (seq["last_value"], seq["is_called"]),
                )
        for mv in details.get("matviews", []):
            if not mv["populated"] or (schemas is not None and mv["schema"] not in schemas):
                continue
            ident = sql.SQL(".").join([sql.Identifier(mv["schema"]), sql.Identifier(mv["name"])])
            try:
                conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(ident))
            except psycopg.Error as e:
                result.warnings.append(
                    f"could not refresh materialized view {mv['schema']}.{mv['name']}: {e}"
                )
        if not opts.verify:
            return
        if opts.verify_content and snap_entries is not None:
            result.mismatches += _content_mismatches(conn, details, tables, snap_entries)
        for t in tables:
            ident = sql.SQL(".").join([sql.Identifier(t["schema"]), sql.Identifier(t["name"])])
            row = conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(ident)).fetchone()
            actual = int(row[0]) if row else -1
            name = f"{t['schema']}.{t['name']}"
            result.row_counts[name] = [int(t["rows"]), actual]
            if actual != int(t["rows"]):
                result.mismatches.append(
                    f"table {name}: {actual} rows restored, {t['rows']} in the backup"
                )
