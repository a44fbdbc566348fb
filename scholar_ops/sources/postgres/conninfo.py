"""Connection settings for a PostgreSQL target, shared by dump and restore.

The password never goes into argv or a DSN that could be logged: subprocesses
get it through PGPASSWORD, psycopg through a keyword argument.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class PgConnInfo:
    host: str = "127.0.0.1"
    port: int = 5432
    dbname: str = "postgres"
    user: str = "postgres"
    password: str | None = None
    sslmode: str = "prefer"
    connect_timeout: int = 10

    def __repr__(self) -> str:
        return f"PgConnInfo({self.describe()})"

    def describe(self) -> str:
        """host:port/dbname as user: safe for logs and labels."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"

    def with_db(self, dbname: str) -> PgConnInfo:
        return replace(self, dbname=dbname)

    def connect_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "connect_timeout": self.connect_timeout,
            "application_name": "scholar-ops",
        }
        if self.password is not None:
            kw["password"] = self.password
        return kw

    def env(self) -> dict[str, str]:
        """Environment for pg_dump / pg_restore / psql subprocesses."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGDATABASE=self.dbname,
            PGUSER=self.user,
            PGSSLMODE=self.sslmode,
            PGCONNECT_TIMEOUT=str(self.connect_timeout),
            PGAPPNAME="scholar-ops",
        )
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env
