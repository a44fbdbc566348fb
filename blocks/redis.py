"""``RedisTarget``: a Redis server to back up (the whole server: every database).

The password is held by the block (``password``) or kept in a Prefect ``Secret``
block named by ``password_secret``; at most one of the two. With ACLs, ``username``
names the user; it needs the ``SYNC`` (or ``PSYNC``) command to stream the RDB, and
``SCAN``/``TYPE``/``DUMP`` for the survey and the sample.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from blocks.base import StrictBlock
from blocks.secrets import read_string_secret
from scholar_ops.sources.redis.conninfo import RedisConnInfo


class RedisTarget(StrictBlock):
    """A Redis server: where to connect, as whom, and a short label for it."""

    _block_type_name = "scholar-ops Redis target"
    _description = (
        "A Redis server that scholar-ops backs up (every database, through the replication "
        "stream) and restores into; the password here or in a Secret block."
    )

    host: str = Field(default="127.0.0.1", description="Host name or IP address.")
    port: int = Field(default=6379, ge=1, le=65535, description="TCP port.")
    username: str | None = Field(default=None, description="ACL user (Redis 6+); empty: default.")
    password: SecretStr | None = Field(
        default=None, description="Password. Leave empty to use `password_secret` or none."
    )
    password_secret: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block holding the password (instead of `password`).",
    )
    tls: bool = Field(default=False, description="Connect with TLS.")
    tls_ca_file: str | None = Field(
        default=None, description="CA bundle for TLS (empty: the system's trust store)."
    )
    tls_verify: bool = Field(default=True, description="Verify the server's TLS certificate.")
    socket_timeout: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds without an answer before a read fails."
    )
    label: str | None = Field(
        default=None,
        max_length=128,
        description="Short, non-secret name for snapshots, artifacts and metrics (default: the block's name).",
    )

    @field_validator("host")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError(f"{info.field_name} must not be empty")
        return value.strip()

    @field_validator("username", "password_secret", "label", "tls_ca_file")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
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
    def _one_password_source(self) -> RedisTarget:
        if self.password is not None and self.password_secret is not None:
            raise ValueError(
                "set either password or password_secret (the name of a Secret block "
                "holding the password), not both"
            )
        return self

    @property
    def target_name(self) -> str:
        """The label, else the block's name (else, unsaved, host:port)."""
        return self.label or self._block_document_name or f"{self.host}:{self.port}"

    @property
    def earlier_target_names(self) -> list[str]:
        """The name unlabelled targets' snapshots carried before (host:port)."""
        old = f"{self.host}:{self.port}"
        return [] if self.label or old == self.target_name else [old]

    def resolve_password(self) -> str | None:
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_secret is None:
            return None
        return read_string_secret(
            self.password_secret, f"Redis target {self.target_name!r}", "password"
        )

    def conninfo(self) -> RedisConnInfo:
        return RedisConnInfo(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.resolve_password(),
            tls=self.tls,
            tls_ca_file=self.tls_ca_file,
            tls_verify=self.tls_verify,
            socket_timeout=self.socket_timeout,
        )
