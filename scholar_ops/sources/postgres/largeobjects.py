"""Large objects: streamed into the store with the dump, put back with owners and grants.

``pg_dump --schema-only`` leaves large objects out (data and metadata). They are read
here inside the dump's snapshot transaction through the large-object API (never whole
in memory) as one stream entry of records ``>IQ`` (oid, length) followed by the bytes,
chunked and deduplicated like table data. Their owners, grants, sizes and digests are a
second, small entry. A restore creates each object with its oid, writes it in slices,
then gives it its owner and grants; verification compares each object's size and MD5
computed by the server.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
from psycopg import sql

from scholar_ops.vault.errors import SourceError

DATA_ENTRY = "largeobjects/data"
META_ENTRY = "largeobjects/meta.json"
_HEADER = struct.Struct(">IQ")
_SLICE = 1 << 20
_INV_READ = 0x40000
_INV_WRITE = 0x20000
_MD5_LIMIT = 256 << 20  # larger objects are checked by size only (md5(lo_get) is in memory)


def list_large_objects(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT m.oid, pg_get_userbyid(m.lomowner),
                  coalesce((SELECT json_agg(json_build_object(
                        'grantee', CASE WHEN a.grantee = 0 THEN NULL
                                        ELSE pg_get_userbyid(a.grantee) END,
                        'privilege', a.privilege_type, 'grantable', a.is_grantable))
                     FROM aclexplode(m.lomacl) a), '[]'::json)
           FROM pg_largeobject_metadata m ORDER BY m.oid"""
    ).fetchall()
    return [{"oid": int(o), "owner": owner, "acl": acl} for o, owner, acl in rows]


class LargeObjectStream(io.RawIOBase):
    """The records of every large object, read in slices through lo_open/loread."""

    def __init__(self, conn: psycopg.Connection[Any], objects: list[dict[str, Any]]) -> None:
        self.conn = conn
        self.objects = objects
        self._parts = self._generate()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def _generate(self) -> Iterator[bytes]:
        for obj in self.objects:
            try:
                fd = self._one("SELECT lo_open(%s, %s)", (obj["oid"], _INV_READ))
            except psycopg.errors.InsufficientPrivilege:
                raise SourceError(
                    f"the backup role may not read large object {obj['oid']} (owner "
                    f"{obj['owner']}): GRANT SELECT ON LARGE OBJECT {obj['oid']} to it, or back "
                    "up as a superuser"
                ) from None
            size = self._one("SELECT lo_lseek64(%s, 0, 2)", (fd,))
            self._one("SELECT lo_lseek64(%s, 0, 0)", (fd,))
            md5 = hashlib.md5(usedforsecurity=False)
            yield _HEADER.pack(obj["oid"], size)
            left = size
            while left > 0:
                row = self.conn.execute("SELECT loread(%s, %s)", (fd, min(_SLICE, left))).fetchone()
                data = bytes(row[0]) if row else b""
                if not data:
                    raise RuntimeError(f"large object {obj['oid']} ended before its size {size}")
                md5.update(data)
                left -= len(data)
                yield data
            self.conn.execute("SELECT lo_close(%s)", (fd,))
            obj["size"] = size
            obj["md5"] = md5.hexdigest()

    def _one(self, query: str, params: tuple[Any, ...]) -> int:
        row = self.conn.execute(query, params).fetchone()
        assert row is not None
        return int(row[0])

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        n = 0
        while n < len(view):
            if not self._pending:
                self._pending = next(self._parts, b"")
                if not self._pending:
                    break
            take = min(len(view) - n, len(self._pending))
            view[n : n + take] = self._pending[:take]
            self._pending = self._pending[take:]
            n += take
        return n


def meta_bytes(objects: list[dict[str, Any]]) -> bytes:
    return json.dumps({"format": "scholar-ops-pg-lo/1", "objects": objects}).encode()


def parse_meta(data: bytes) -> list[dict[str, Any]]:
    return list(json.loads(data).get("objects", []))


def iter_records(chunks: Iterable[bytes]) -> Iterator[tuple[int, int, Iterator[bytes]]]:
    """(oid, size, its bytes in pieces) for each record of a data stream; each piece
    iterator must be consumed before the next record is taken."""
    it = iter(chunks)
    buf = bytearray()

    def fill(n: int) -> bool:
        while len(buf) < n:
            piece = next(it, None)
            if piece is None:
                return False
            buf.extend(piece)
        return True

    while True:
        if not fill(_HEADER.size):
            if buf:
                raise ValueError("the large-object stream ends inside a record header")
            return
        oid, size = _HEADER.unpack(bytes(buf[: _HEADER.size]))
        del buf[: _HEADER.size]

        def body(size: int = size) -> Iterator[bytes]:
            left = size
            while left > 0:
                if not buf and not fill(1):
                    raise ValueError("the large-object stream ends inside an object")
                take = min(left, len(buf))
                out = bytes(buf[:take])
                del buf[:take]
                left -= take
                yield out

        yield oid, size, body()


def restore_large_objects(
    conn: psycopg.Connection[Any],
    chunks: Iterable[bytes],
    meta: list[dict[str, Any]],
    *,
    with_owner: bool,
) -> tuple[int, list[str]]:
    """Create every large object of the stream on ``conn`` (one transaction), then its
    owner and grants. Returns (objects restored, warnings)."""
    warnings: list[str] = []
    count = 0
    with conn.transaction():
        for oid, _size, body in iter_records(chunks):
            conn.execute("SELECT lo_create(%s)", (oid,))
            row = conn.execute("SELECT lo_open(%s, %s)", (oid, _INV_WRITE)).fetchone()
            assert row is not None
            fd = int(row[0])
            for piece in body:
                for start in range(0, len(piece), _SLICE):
                    conn.execute("SELECT lowrite(%s, %s)", (fd, piece[start : start + _SLICE]))
            conn.execute("SELECT lo_close(%s)", (fd,))
            count += 1
        if with_owner:
            have = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles")}
            for obj in meta:
                ident = sql.SQL(str(int(obj["oid"])))
                if obj.get("owner") in have:
                    conn.execute(
                        sql.SQL("ALTER LARGE OBJECT {} OWNER TO {}").format(
                            ident, sql.Identifier(obj["owner"])
                        )
                    )
                for item in obj.get("acl") or []:
                    grantee = item.get("grantee")
                    if grantee is not None and grantee not in have:
                        warnings.append(
                            f"large object {obj['oid']}: grant to missing role {grantee!r} left out"
                        )
                        continue
                    who = sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)
                    conn.execute(
                        sql.SQL("GRANT {} ON LARGE OBJECT {} TO {}{}").format(
                            sql.SQL(item["privilege"]),
                            ident,
                            who,
                            sql.SQL(" WITH GRANT OPTION" if item.get("grantable") else ""),
                        )
                    )
    return count, warnings


def verify_large_objects(conn: psycopg.Connection[Any], meta: list[dict[str, Any]]) -> list[str]:
    """Each object of the backup present with the same size and MD5 (computed by the server)."""
    problems: list[str] = []
    for obj in meta:
        oid = int(obj["oid"])
        size = obj.get("size")
        row = conn.execute(
            "SELECT (SELECT 1 FROM pg_largeobject_metadata WHERE oid = %s)", (oid,)
        ).fetchone()
        if not row or row[0] is None:
            problems.append(f"large object {oid} is missing")
            continue
        if size is None:
            continue
        if size <= _MD5_LIMIT:
            got = conn.execute("SELECT length(lo_get(%s)), md5(lo_get(%s))", (oid, oid)).fetchone()
            if got is None or int(got[0]) != int(size) or got[1] != obj.get("md5"):
                problems.append(f"large object {oid} differs from the backup (size or MD5)")
    return problems
