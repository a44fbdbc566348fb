"""``RedisTarget``: a Redis server to back up (the whole server: every database).

The password is held by the block (``password``) or kept in a Prefect ``Secret``
block named by ``password_secret``; at most one of the two. With ACLs, ``username``
names the user; it needs the ``SYNC`` (or ``PSYNC``) command to stream the RDB, and
``SCAN``/``TYPE``/``DUMP`` for the survey and the sample.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from blocks.base import (
    BackupRequest,
    TargetBlock,
    blank_to_none,
    check_one_secret_source,
    empty_secret_to_none,
)
from scholar_ops.sources.drill import DrillResult, drill_redis
from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.dump import backup_redis
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot


class RedisTarget(TargetBlock):
    """A Redis server: where to connect, as whom, and a short label for it."""

    component: ClassVar[str] = "redis"
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

    @field_validator("host")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError(f"{info.field_name} must not be empty")
        return value.strip()

    @field_validator("username", "password_secret", "tls_ca_file")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return blank_to_none(value)

    @field_validator("password")
    @classmethod
    def _empty_password_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return empty_secret_to_none(value)

    @model_validator(mode="after")
    def _one_password_source(self) -> RedisTarget:
        check_one_secret_source(self.password, self.password_secret, "password", "password")
        return self

    def default_name(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        return self.conninfo().describe()

    def resolve_password(self) -> str | None:
        return self.resolve_secret(self.password, self.password_secret, "password")

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

    def estimate_bytes(self) -> int:
        """The server's dataset memory: about the RDB's size."""
        try:
            client = self.conninfo().client(retries=0)
            try:
                return int(client.info("memory").get("used_memory_dataset", 0))
            finally:
                client.close()
        except Exception:
            return 0  # the backup itself reports the connection problem

    def backup(self, repo: Repository, request: BackupRequest) -> Snapshot:
        return backup_redis(
            repo,
            self.conninfo(),
            **request.engine_args(self.target_name),
        )

    def drill(self, repo: Repository, snap: Snapshot, scratch_dir: str | None) -> DrillResult:
        """A throwaway redis-server loads the RDB in a scratch directory."""
        return drill_redis(repo, self.target_name, snap=snap, scratch_dir=scratch_dir)
