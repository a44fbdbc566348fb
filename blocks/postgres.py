"""``PostgresTarget``: a PostgreSQL database to back up (and restore into).

The password is either held by the block itself (``password``, a secret field the
Prefect UI obfuscates) or kept in a separate Prefect ``Secret`` block named by
``password_secret``, which several targets (or other tools) can share and which
can be rotated without touching the target. At most one of the two is set; with
neither, libpq's own means apply (trust / peer auth, ``~/.pgpass``, a client
certificate).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from blocks.base import (
    BackupRequest,
    TargetBlock,
    blank_to_none,
    check_one_secret_source,
    empty_secret_to_none,
)
from scholar_ops.sources.drill import DrillResult, drill_postgres, drill_postgres_base
from scholar_ops.sources.postgres.basebackup import backup_base
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.postgres.dump import backup_database
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot

#: Most a PostgreSQL drill's pg_restore and COPY may take in all.
DRILL_TIMEOUT_S = 6 * 3600.0

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgresTarget(TargetBlock):
    """A PostgreSQL database: where to connect, as whom, and a short label for it."""

    component: ClassVar[str] = "postgres"
    _block_type_name = "scholar-ops PostgreSQL target"
    _description = (
        "A PostgreSQL database that scholar-ops backs up and restores: connection "
        "settings, and the password either here or in a Secret block."
    )

    host: str = Field(
        default="127.0.0.1", description="Host name, IP address or Unix socket directory."
    )
    port: int = Field(default=5432, ge=1, le=65535, description="TCP port.")
    database: str = Field(description="Name of the database.")
    user: str = Field(default="postgres", description="Role to connect as.")
    password: SecretStr | None = Field(
        default=None,
        description="Password for `user`. Leave empty to use `password_secret` or libpq's own means.",
    )
    password_secret: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block holding the password (instead of `password`).",
    )
    sslmode: SslMode = Field(default="prefer", description="libpq sslmode.")
    connect_timeout: int = Field(
        default=10, ge=1, le=3600, description="Seconds to wait for a connection."
    )

    @field_validator("host", "database", "user")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError(f"{info.field_name} must not be empty")
        return value.strip()

    @field_validator("password_secret")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return blank_to_none(value)

    @field_validator("password")
    @classmethod
    def _empty_password_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return empty_secret_to_none(value)

    @model_validator(mode="after")
    def _one_password_source(self) -> PostgresTarget:
        check_one_secret_source(self.password, self.password_secret, "password", "password")
        return self

    def default_name(self) -> str:
        return self.database

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.database}"

    def resolve_password(self) -> str | None:
        """The password from the block itself or from the named Secret block, if any."""
        return self.resolve_secret(self.password, self.password_secret, "password")

    def conninfo(self) -> PgConnInfo:
        """Connection settings for the engine, with the password resolved."""
        return PgConnInfo(
            host=self.host,
            port=self.port,
            dbname=self.database,
            user=self.user,
            password=self.resolve_password(),
            sslmode=self.sslmode,
            connect_timeout=self.connect_timeout,
        )

    def estimate_bytes(self) -> int:
        import psycopg

        try:
            with psycopg.connect(**self.conninfo().connect_kwargs()) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
                return int(row[0]) if row else 0
        except psycopg.Error:
            return 0  # the backup itself reports the connection problem

    def backup(self, repo: Repository, request: BackupRequest) -> Snapshot:
        return backup_database(
            repo,
            self.conninfo(),
            **request.engine_args(self.target_name),
        )

    def drill(self, repo: Repository, snap: Snapshot, scratch_dir: str | None) -> DrillResult:
        """Into a new throwaway cluster (under ``scratch_dir``) from the worker's PostgreSQL
        binaries: the disaster case; the target's server is not touched."""
        return drill_postgres(
            repo,
            self.conninfo(),
            self.target_name,
            snap=snap,
            timeout_s=DRILL_TIMEOUT_S,
            scratch_dir=scratch_dir,
        )


class PostgresClusterTarget(PostgresTarget):
    """A whole PostgreSQL cluster for point-in-time recovery: physical base backups
    (``pg_basebackup`` streamed into the store) beside the WAL that its archive_command
    (``scholar-ops-wal push %p``) puts into the same repository. The role needs
    REPLICATION (and a ``replication`` line in pg_hba.conf); ``database`` is only where the
    figures are read from."""

    component: ClassVar[str] = "postgres-base"
    _block_type_name = "scholar-ops PostgreSQL cluster"
    _description = (
        "A PostgreSQL cluster that scholar-ops takes physical base backups of, for "
        "point-in-time recovery with the WAL archived by scholar-ops-wal."
    )

    def default_name(self) -> str:
        return f"{self.host}-{self.port}"

    def describe(self) -> str:
        return f"cluster {self.user}@{self.host}:{self.port}"

    def backup(self, repo: Repository, request: BackupRequest) -> Snapshot:
        return backup_base(repo, self.conninfo(), **request.engine_args(self.target_name))

    def drill(self, repo: Repository, snap: Snapshot, scratch_dir: str | None) -> DrillResult:
        """The base backup restored into a new data directory under ``scratch_dir`` and
        recovered to the end of the WAL archive, started, verified, removed."""
        return drill_postgres_base(
            repo, self.target_name, snap=snap, scratch_dir=scratch_dir, timeout_s=DRILL_TIMEOUT_S
        )
