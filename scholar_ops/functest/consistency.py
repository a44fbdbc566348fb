"""Cross-store consistency: the ids a PostgreSQL query yields against the ids of a
Chroma collection, both streamed in batches.

PostgreSQL is read through a server-side cursor (a large table is never loaded whole)
and Chroma through ``get(ids=..., include=[])`` / ``get(limit, offset, include=[])``.
Suspects are looked at again once, after a short pause, before they are reported:
a write in flight (a chunk committed a moment before its vector) is not an
inconsistency.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

#: suspects kept (and looked at again); beyond that they are counted unconfirmed
RECHECK_LIMIT = 10_000
#: seconds to let writes in flight land before the second look
RECHECK_DELAY = 0.5


@dataclass
class Mismatch:
    #: rows (or vectors) looked at
    checked: int = 0
    #: confirmed ids (vector ids), in the order found
    ids: list[str] = field(default_factory=list)
    #: suspects beyond RECHECK_LIMIT, counted without a second look
    unconfirmed: int = 0
    #: the pass stopped before the end (out of time)
    stopped_early: bool = False

    @property
    def count(self) -> int:
        return len(self.ids) + self.unconfirmed


@dataclass(frozen=True)
class IdMapping:
    """How a row id becomes a vector id (``chunk-{id}``) and back."""

    id_format: str

    def vector_id(self, row_id: Any) -> str:
        return self.id_format.replace("{id}", str(row_id))

    def row_key(self, vector_id: str) -> Any | None:
        """The row id in a vector id (digits as an int), None when it does not fit."""
        before, after = self.id_format.split("{id}")
        m = re.fullmatch(f"{re.escape(before)}(.+){re.escape(after)}", vector_id, re.DOTALL)
        if m is None:
            return None
        text = m.group(1)
        return int(text) if re.fullmatch(r"-?\d{1,18}", text) else text


def postgres_ids(conn: Any, query: str, batch: int) -> Generator[list[Any], None, None]:
    """The first column of ``query``, in batches, through a server-side cursor."""
    with conn.transaction(), conn.cursor(name="scholar_ops_consistency") as cur:
        cur.itersize = batch
        cur.execute(sql.SQL(query))
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                return
            yield [r[0] for r in rows]


def present_in_postgres(conn: Any, query: str, ids: list[Any]) -> set[str]:
    """Which of ``ids`` the query yields, as text. The query is wrapped (its planner
    pushes the filter down to the table's index)."""
    if not ids:
        return set()
    wrapped = sql.SQL("SELECT q.id FROM ({}) AS q(id) WHERE q.id = ANY(%s)").format(sql.SQL(query))
    try:
        rows = conn.execute(wrapped, (ids,)).fetchall()
    except Exception:
        # the column does not compare with these values: compare as text
        as_text = sql.SQL("SELECT q.id FROM ({}) AS q(id) WHERE q.id::text = ANY(%s)").format(
            sql.SQL(query)
        )
        rows = conn.execute(as_text, ([str(i) for i in ids],)).fetchall()
    return {str(r[0]) for r in rows}


def chroma_has(collection: Any, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    got = collection.get(ids=ids, include=[])
    return set(got.get("ids") or [])


def chroma_ids(collection: Any, batch: int) -> Iterator[list[str]]:
    """Every id of ``collection``, a page at a time."""
    offset = 0
    while True:
        got = collection.get(limit=batch, offset=offset, include=[])
        ids = list(got.get("ids") or [])
        if not ids:
            return
        yield ids
        offset += len(ids)
        if len(ids) < batch:
            return


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def missing_vectors(
    conn: Any,
    collection: Any,
    query: str,
    mapping: IdMapping,
    *,
    batch: int = 500,
    should_stop: Callable[[], bool] = lambda: False,
) -> Mismatch:
    """Rows of ``query`` whose vector is not in ``collection``."""
    out = Mismatch()
    suspects: list[tuple[Any, str]] = []  # (row id, vector id)
    with closing(postgres_ids(conn, query, batch)) as pages:
        for row_ids in pages:
            vector_ids = [mapping.vector_id(i) for i in row_ids]
            found = chroma_has(collection, vector_ids)
            out.checked += len(row_ids)
            for rid, vid in zip(row_ids, vector_ids, strict=True):
                if vid in found:
                    continue
                if len(suspects) < RECHECK_LIMIT:
                    suspects.append((rid, vid))
                else:
                    out.unconfirmed += 1
            if should_stop():
                out.stopped_early = True
                break
    if suspects:
        time.sleep(RECHECK_DELAY)
        for part in _batches(suspects, batch):
            rows = present_in_postgres(conn, query, [r for r, _ in part])
            found = chroma_has(collection, [v for _, v in part])
            out.ids += [v for r, v in part if str(r) in rows and v not in found]
    return out


def orphaned_vectors(
    conn: Any,
    collection: Any,
    query: str,
    mapping: IdMapping,
    *,
    batch: int = 500,
    should_stop: Callable[[], bool] = lambda: False,
) -> Mismatch:
    """Vectors of ``collection`` whose row ``query`` does not yield (or whose id is not
    a row's id at all)."""
    out = Mismatch()
    suspects: list[str] = []

    def suspect(vid: str) -> None:
        if len(suspects) < RECHECK_LIMIT:
            suspects.append(vid)
        else:
            out.unconfirmed += 1

    def orphans_among(vector_ids: list[str]) -> list[str]:
        keyed = [(v, mapping.row_key(v)) for v in vector_ids]
        present = present_in_postgres(conn, query, [k for _, k in keyed if k is not None])
        return [v for v, k in keyed if k is None or str(k) not in present]

    for page in chroma_ids(collection, batch):
        out.checked += len(page)
        for vid in orphans_among(page):
            suspect(vid)
        if should_stop():
            out.stopped_early = True
            break
    if suspects:
        time.sleep(RECHECK_DELAY)
        for part in _batches(suspects, batch):
            still = chroma_has(collection, part)
            out.ids += orphans_among([v for v in part if v in still])
    return out
