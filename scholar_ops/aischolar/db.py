"""PostgreSQL: the schema (created at start, idempotent) and a small connection pool."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id serial PRIMARY KEY,
    username text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS documents (
    id serial PRIMARY KEY,
    owner_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title text NOT NULL,
    content text NOT NULL,
    content_type text NOT NULL DEFAULT 'text/plain',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS documents_owner ON documents(owner_id);
CREATE TABLE IF NOT EXISTS chunks (
    id serial PRIMARY KEY,
    document_id integer NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal integer NOT NULL CHECK (ordinal >= 0),
    text text NOT NULL,
    embedding_dim integer NOT NULL,
    UNIQUE (document_id, ordinal)
);
"""


class Pool:
    """At most ``size`` open connections, reused; a broken one is dropped."""

    def __init__(self, dsn: str, size: int = 8) -> None:
        self._dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    def create_schema(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_advisory_lock(7240311)")
            try:
                conn.execute(SCHEMA)
            finally:
                conn.execute("SELECT pg_advisory_unlock(7240311)")

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        if not self._slots.acquire(timeout=30):
            raise TimeoutError("no database connection free within 30 s")
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self._dsn, connect_timeout=10)
            try:
                with conn.transaction():
                    yield conn
            except psycopg.OperationalError:
                conn.close()
                conn = None
                raise
        finally:
            if conn is not None and not conn.closed:
                self._idle.put(conn)
            self._slots.release()

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
