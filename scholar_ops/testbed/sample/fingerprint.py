"""A fingerprint of a PostgreSQL database, to prove that a restored database equals
its source.

Four parts, each compared by DatabaseFingerprint.diff:

- the schema: ``pg_dump --schema-only --no-owner --no-privileges`` (comments kept),
  normalized: the lines that name the server or pg_dump version, the per-dump random
  ``\\restrict`` keys, session ``SET`` lines and ``set_config`` calls are dropped
  (``SET default_tablespace`` and ``default_table_access_method`` are kept: they
  belong to the objects that follow);
- the content of every user table (ordinary tables and partitions, with or without a
  primary key; system schemas excluded): row count and the md5 of the sorted md5s of
  the rows' text representation, so duplicate rows and row order are handled;
- every sequence's ``last_value`` and ``is_called``;
- whether each materialized view is populated.

Row text depends on session settings (time zone, date and float output), so the
checksums are taken with fixed settings (UTC, ISO dates, extra_float_digits = 3, hex
bytea), which makes fingerprints comparable across databases and servers.

Not covered: the contents of materialized views (pg_restore recomputes them with
REFRESH, so a stale one in the source comes back fresh), large objects, roles,
database-level settings and ownership/privileges (left out of the dump on purpose).
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

_T = TypeVar("_T")

_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

# Session settings that fix the text representation of rows.
_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "lc_monetary": "C",
}

_DROP_LINE = re.compile(
    r"^(?:"
    r"-- Dumped (?:from database|by pg_dump) version .*"
    r"|\\(?:un)?restrict .*"  # PostgreSQL >= 17.6/16.10/15.14: random key per dump
    # session settings; not default_tablespace / default_table_access_method, which
    # pg_dump sets before the objects they apply to
    r"|SET (?!default_tablespace |default_table_access_method )\w+ = .*;"
    r"|SELECT pg_catalog\.set_config\(.*\);"
    r")$"
)


@dataclass(frozen=True)
class TableChecksum:
    rows: int
    md5: str


@dataclass
class DatabaseFingerprint:
    """What a database holds, in a form that compares across databases. Two
    fingerprints are equal (``==``) exactly when ``diff`` finds nothing."""

    schema: str
    tables: dict[str, TableChecksum] = field(default_factory=dict)
    sequences: dict[str, tuple[int, bool]] = field(default_factory=dict)
    matviews: dict[str, bool] = field(default_factory=dict)

    def diff(self, other: DatabaseFingerprint, *, max_schema_lines: int = 40) -> list[str]:
        """The differences between this fingerprint and ``other``, one human-readable
        line each (this database's value first); empty when they are equal."""
        out: list[str] = []
        if self.schema != other.schema:
            lines = list(
                difflib.unified_diff(
                    self.schema.splitlines(),
                    other.schema.splitlines(),
                    "this",
                    "other",
                    lineterm="",
                    n=1,
                )
            )
            shown = lines[2 : 2 + max_schema_lines]
            more = len(lines) - 2 - len(shown)
            out.append(
                "schema differs:\n  "
                + "\n  ".join(shown)
                + (f"\n  ... {more} more diff lines" if more > 0 else "")
            )
        out.extend(_diff_dicts("table", self.tables, other.tables, _describe_table))
        out.extend(_diff_dicts("sequence", self.sequences, other.sequences, _describe_sequence))
        out.extend(_diff_dicts("materialized view", self.matviews, other.matviews, _describe_mv))
        return out

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


def _describe_table(a: TableChecksum, b: TableChecksum) -> str:
    if a.rows != b.rows:
        return f"{a.rows} rows vs {b.rows}"
    return f"same {a.rows} rows but different content (md5 {a.md5[:12]} vs {b.md5[:12]})"


def _describe_sequence(a: tuple[int, bool], b: tuple[int, bool]) -> str:
    if a[1] == b[1]:
        return f"last_value {a[0]} vs {b[0]}" + ("" if a[1] else " (neither called)")

    def show(v: tuple[int, bool]) -> str:
        return f"last_value {v[0]}{'' if v[1] else ' (not called)'}"

    return f"{show(a)} vs {show(b)}"


def _describe_mv(a: bool, b: bool) -> str:
    def show(v: bool) -> str:
        return "populated" if v else "not populated"

    return f"{show(a)} vs {show(b)}"


def _diff_dicts(
    kind: str, a: dict[str, _T], b: dict[str, _T], describe: Callable[[_T, _T], str]
) -> list[str]:
    out: list[str] = []
    for name in sorted(a.keys() | b.keys()):
        if name not in b:
            out.append(f"{kind} {name}: only in this database")
        elif name not in a:
            out.append(f"{kind} {name}: only in the other database")
        elif a[name] != b[name]:
            out.append(f"{kind} {name}: {describe(a[name], b[name])}")
    return out


def normalize_schema_dump(text: str) -> str:
    """A schema-only pg_dump with the lines that vary between dumps of equal databases
    (versions, restrict keys, session SETs) dropped and runs of blank lines collapsed."""
    out: list[str] = []
    for line in text.splitlines():
        if _DROP_LINE.match(line):
            continue
        if not line.strip() and (not out or not out[-1]):
            continue
        out.append(line.rstrip())
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def _split_password(dsn: str) -> tuple[str, dict[str, str]]:
    """(dsn without its password, environment carrying it as PGPASSWORD), so the
    password never appears on a command line."""
    params = conninfo_to_dict(dsn)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def schema_dump(
    dsn: str, pg_dump: str = "pg_dump", *, timeout: float = 300.0, owners: bool = False
) -> str:
    """The normalized schema-only dump of the database at ``dsn`` (with ``owners``:
    ownership and privileges included, to compare a restore into a new cluster)."""
    conninfo, env = _split_password(dsn)
    cmd = [
        pg_dump,
        "--schema-only",
        *([] if owners else ["--no-owner", "--no-privileges"]),
        "--no-password",
        f"--dbname={conninfo}",
    ]
    proc = subprocess.run(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"pg_dump --schema-only exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return normalize_schema_dump(proc.stdout.decode())


def _qualified(schema: str, name: str) -> str:
    """schema.name for display: double-quoted where not lower-case alphanumeric."""
    return f"{_quote(schema)}.{_quote(name)}"


def _quote(ident: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", ident):
        return ident
    return '"' + ident.replace('"', '""') + '"'


def _relations(conn: psycopg.Connection[Any], relkinds: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = ANY(%s) AND n.nspname <> ALL(%s) "
        "AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%' "
        'ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"',
        (list(relkinds), list(_SYSTEM_SCHEMAS)),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def table_checksums(conn: psycopg.Connection[Any]) -> dict[str, TableChecksum]:
    """Row count and content md5 of every user table (ordinary tables, partitions),
    each counted for its own rows only (``FROM ONLY``). The row is ``(t.*)``, not
    ``t``, which would mean a column named t if the table has one.

    The digests are aggregated in the server: fine for tables up to some ten million
    rows (string_agg's result is capped at 1 GB, 32 bytes a row)."""
    out: dict[str, TableChecksum] = {}
    for schema, name in _relations(conn, "r"):
        query = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h COLLATE \"C\"), '')) "
            "FROM (SELECT md5((t.*)::text) AS h FROM ONLY {} t) s"
        ).format(sql.Identifier(schema, name))
        row = conn.execute(query).fetchone()
        assert row is not None
        out[_qualified(schema, name)] = TableChecksum(rows=int(row[0]), md5=str(row[1]))
    return out


def sequence_values(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, bool]]:
    """(last_value, is_called) of every sequence, identity and serial ones included."""
    out: dict[str, tuple[int, bool]] = {}
    for schema, name in _relations(conn, "S"):
        query = sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
        row = conn.execute(query).fetchone()
        assert row is not None
        out[_qualified(schema, name)] = (int(row[0]), bool(row[1]))
    return out


def matview_flags(conn: psycopg.Connection[Any]) -> dict[str, bool]:
    """Whether each materialized view is populated."""
    rows = conn.execute(
        "SELECT schemaname, matviewname, ispopulated FROM pg_catalog.pg_matviews "
        "WHERE schemaname <> ALL(%s)",
        (list(_SYSTEM_SCHEMAS),),
    ).fetchall()
    return {_qualified(r[0], r[1]): bool(r[2]) for r in rows}


def database_fingerprint(
    dsn: str,
    pg_dump: str = "pg_dump",
    *,
    timeout: float = 300.0,
    owners: bool = False,
) -> DatabaseFingerprint:
    """The fingerprint of the database at ``dsn`` (a libpq URL or conninfo string).

    ``pg_dump`` is the pg_dump binary to use (best: the server's own version);
    ``timeout`` bounds the dump (seconds) and each checksum query (statement_timeout).
    With ``owners`` the schema part includes ownership and privileges.
    Read-only: everything runs in one REPEATABLE READ read-only transaction, so the
    content checksums are of one snapshot.
    """
    schema = schema_dump(dsn, pg_dump, timeout=timeout, owners=owners)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=30) as conn:
        for name, value in _SETTINGS.items():
            conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
        conn.execute(
            "SELECT pg_catalog.set_config('statement_timeout', %s, false)",
            (str(int(timeout * 1000)),),
        )
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            tables = table_checksums(conn)
            sequences = sequence_values(conn)
            matviews = matview_flags(conn)
        finally:
            conn.execute("ROLLBACK")
    return DatabaseFingerprint(schema=schema, tables=tables, sequences=sequences, matviews=matviews)
