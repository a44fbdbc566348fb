"""What a database holds: tables and their key columns, sequences, materialized views."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

_USER_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""
_NOT_EXTENSION_MEMBER = """
    NOT EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
"""


@dataclass
class TableInfo:
    schema: str
    name: str
    columns: list[str]
    key: list[str]  # primary-key columns, the dump order; empty = physical order
    est_bytes: int = 0

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def ident(self) -> sql.Composed:
        return sql.SQL(".").join([sql.Identifier(self.schema), sql.Identifier(self.name)])

    def column_list(self) -> sql.Composed:
        return sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)

    def copy_out(self) -> sql.Composed:
        order = (
            sql.SQL(" ORDER BY ") + sql.SQL(", ").join(sql.Identifier(c) for c in self.key)
            if self.key
            else sql.SQL("")
        )
        return sql.SQL("COPY (SELECT {cols} FROM ONLY {t}{order}) TO STDOUT").format(
            cols=self.column_list(), t=self.ident(), order=order
        )

    def copy_in(self, freeze: bool = False) -> sql.Composed:
        opts = sql.SQL(" WITH (FREEZE)" if freeze else "")
        if not self.columns:  # a table without columns still has rows (empty lines)
            return sql.SQL("COPY {t} FROM STDIN{o}").format(t=self.ident(), o=opts)
        return sql.SQL("COPY {t} ({cols}) FROM STDIN{o}").format(
            t=self.ident(), cols=self.column_list(), o=opts
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def list_tables(conn: psycopg.Connection[Any]) -> list[TableInfo]:
    """Every user table holding data (plain tables and leaf partitions), largest first."""
    rows = conn.execute(
        f"""
        SELECT n.nspname, c.relname, c.oid, pg_relation_size(c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND {_USER_SCHEMAS} AND {_NOT_EXTENSION_MEMBER}
        ORDER BY pg_relation_size(c.oid) DESC, n.nspname, c.relname
        """
    ).fetchall()
    tables = []
    for schema, name, oid, size in rows:
        cols = [
            r[0]
            for r in conn.execute(
                """SELECT attname FROM pg_attribute
                   WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
                   ORDER BY attnum""",
                (oid,),
            )
        ]
        key = [
            r[0]
            for r in conn.execute(
                """SELECT a.attname FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[])
                   WHERE i.indrelid = %s AND i.indisprimary
                   ORDER BY array_position(i.indkey::int2[], a.attnum)""",
                (oid,),
            )
        ]
        tables.append(TableInfo(schema, name, cols, key, int(size)))
    return tables


def list_sequences(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Current value of every sequence (pg_dump -s leaves these out)."""
    rows = conn.execute(
        f"""
        SELECT n.nspname, c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND {_USER_SCHEMAS} AND {_NOT_EXTENSION_MEMBER}
        ORDER BY 1, 2
        """
    ).fetchall()
    out = []
    for schema, name, oid in rows:
        ident = sql.SQL(".").join([sql.Identifier(schema), sql.Identifier(name)])
        row = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(ident)).fetchone()
        assert row is not None
        # Which tables need it: the one owning it (serial, identity), and those whose
        # column defaults call it. A restore of some tables brings their sequences.
        owner = conn.execute(
            """SELECT n.nspname || '.' || c.relname FROM pg_depend d
               JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE d.classid = 'pg_class'::regclass AND d.objid = %s
                 AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')""",
            (oid,),
        ).fetchone()
        users = conn.execute(
            """SELECT DISTINCT n.nspname || '.' || c.relname FROM pg_depend d
               JOIN pg_attrdef ad ON ad.oid = d.objid
               JOIN pg_class c ON c.oid = ad.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
                 AND d.refobjid = %s ORDER BY 1""",
            (oid,),
        ).fetchall()
        out.append(
            {
                "schema": schema,
                "name": name,
                "last_value": int(row[0]),
                "is_called": bool(row[1]),
                "owned_by": owner[0] if owner else None,
                "used_by": [u[0] for u in users],
            }
        )
    return out


def list_matviews(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Materialized views in creation order, with whether they hold data."""
    rows = conn.execute(
        f"""
        SELECT n.nspname, c.relname, c.relispopulated
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'm' AND {_USER_SCHEMAS}
        ORDER BY c.oid
        """
    ).fetchall()
    return [{"schema": s, "name": n, "populated": bool(p)} for s, n, p in rows]


def database_info(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute(
        """SELECT current_database(), pg_encoding_to_char(encoding), datcollate, datctype,
                  current_setting('server_version'), pg_database_size(current_database())
           FROM pg_database WHERE datname = current_database()"""
    ).fetchone()
    assert row is not None
    lo = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
    return {
        "database": row[0],
        "encoding": row[1],
        "collate": row[2],
        "ctype": row[3],
        "server_version": row[4],
        "database_size": int(row[5]),
        "large_objects": int(lo[0]) if lo else 0,
    }


def user_relation_count(conn: psycopg.Connection[Any]) -> int:
    """How many user relations a database holds (0 = empty, safe to restore into)."""
    row = conn.execute(
        f"""SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_USER_SCHEMAS}"""
    ).fetchone()
    return int(row[0]) if row else 0


def list_indexes(conn: psycopg.Connection[Any]) -> list[dict[str, str]]:
    """Index -> table, so a restore of some tables can bring their indexes along."""
    rows = conn.execute(
        f"""SELECT n.nspname, ic.relname, c.relname
            FROM pg_index i
            JOIN pg_class ic ON ic.oid = i.indexrelid
            JOIN pg_class c ON c.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE {_USER_SCHEMAS} ORDER BY 1, 2"""
    ).fetchall()
    return [{"schema": s, "index": i, "table": t} for s, i, t in rows]
