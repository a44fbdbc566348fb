"""Connection settings for a Redis target, shared by backup and restore.

The password is kept out of repr(), str() and describe(): it only reaches the
server (AUTH). ``db`` is the database a client selects; a backup always covers
every database (the RDB is the whole server).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


@dataclass(frozen=True)
class RedisConnInfo:
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca_file: str | None = None  # None: the system's trust store
    tls_verify: bool = True
    socket_timeout: float = 30.0  # seconds without an answer before a read fails
    connect_timeout: float = 10.0

    def __repr__(self) -> str:
        return f"RedisConnInfo({self.describe()})"

    __str__ = __repr__

    def describe(self) -> str:
        """user@host:port/db (tls): safe for logs and labels."""
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port}/{self.db}{' (tls)' if self.tls else ''}"

    def with_db(self, db: int) -> RedisConnInfo:
        return replace(self, db=db)

    def client(self, db: int | None = None, *, retries: int = 2) -> redis.Redis:
        """A redis-py client (bytes replies). ``retries`` repeat a command after a dropped
        connection: keep 0 for commands that must not run twice (RESTORE)."""
        kw: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db if db is None else db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "retry": Retry(ExponentialBackoff(cap=2.0, base=0.2), retries),
            "client_name": "scholar-ops",
            # RESP2 on purpose: every server speaks it, and raw replies have one shape
            # (scholar_ops.sources.redis.client reads some of them unparsed).
            "protocol": 2,
        }
        if self.tls:
            kw.update(
                ssl=True,
                ssl_ca_certs=self.tls_ca_file,
                ssl_cert_reqs="required" if self.tls_verify else "none",
                ssl_check_hostname=self.tls_verify,
            )
        return redis.Redis(**kw)

    def ssl_context(self) -> ssl.SSLContext:
        """For the replication socket (scholar_ops.sources.redis.sync)."""
        ctx = ssl.create_default_context(cafile=self.tls_ca_file)
        if not self.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
