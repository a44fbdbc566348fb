"""``PostgresTarget``: a PostgreSQL database to back up (and restore into).

The password is either held by the block itself (``password``, a secret field the
Prefect UI obfuscates) or kept in a separate Prefect ``Secret`` block named by
``password_secret``, which several targets (or other tools) can share and which
can be rotated without touching the target. At most one of the two is set; with
neither, libpq's own means apply (trust / peer auth, ``~/.pgpass``, a client
certificate).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from blocks.base import StrictBlock
from blocks.secrets import read_string_secret
from scholar_ops.sources.postgres.conninfo import PgConnInfo

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgresTarget(StrictBlock):
    """A PostgreSQL database: where to connect, as whom, and a short label for it."""

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
    label: str | None = Field(
        default=None,
        max_length=128,
        description=(
            "Short, non-secret name used in snapshots, artifacts and metrics "
            "(defaults to the block's name)."
        ),
    )

    @field_validator("host", "database", "user")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError(f"{info.field_name} must not be empty")
        return value.strip()

    @field_validator("password_secret", "label")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        # The UI submits an emptied text box as "" rather than null.
        if value is None or not value.strip():
            return None
        return value.strip()

    @field_validator("password")
    @classmethod
    def _empty_password_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() == "":
            return None
        return value

    @model_validator(mode="after")
    def _one_password_source(self) -> PostgresTarget:
        if self.password is not None and self.password_secret is not None:
            raise ValueError(
                "set either password or password_secret (the name of a Secret block "
                "holding the password), not both"
            )
        return self

    @property
    def target_name(self) -> str:
        """The label, else the block's name (else, unsaved, the database's): safe for
        snapshots, logs and metrics, and distinct for two servers' same-named databases."""
        return self.label or self._block_document_name or self.database

    @property
    def earlier_target_names(self) -> list[str]:
        """The name unlabelled targets' snapshots carried before (the database's): ``latest``
        falls back to it until the target's first backup under its new name."""
        if self.label or self.database == self.target_name:
            return []
        return [self.database]

    def resolve_password(self) -> str | None:
        """The password from the block itself or from the named Secret block, if any."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_secret is None:
            return None
        return read_string_secret(
            self.password_secret, f"PostgreSQL target {self.target_name!r}", "password"
        )

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
