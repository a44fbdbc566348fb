"""``ChromaTarget``: a Chroma vector store, embedded directory or server.

Exactly one of ``path`` (a ``PersistentClient`` directory on this machine) and
``host`` (a Chroma server, reached with ``HttpClient``). A server's token is held
by the block (``token``) or in a Prefect ``Secret`` block (``token_secret``).

Backups are logical (every collection, or ``collections``) unless ``physical`` is
set, which copies an embedded directory as it is (SQLite online backup plus the
segment files): faster to restore, but only into the same Chroma version.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from blocks.base import (
    BackupRequest,
    TargetBlock,
    blank_to_none,
    check_one_secret_source,
    empty_secret_to_none,
)
from scholar_ops.sources.chroma.conninfo import DEFAULT_DATABASE, DEFAULT_TENANT, ChromaSource
from scholar_ops.sources.chroma.dump import backup_chroma
from scholar_ops.sources.drill import DrillResult, drill_chroma
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot


class ChromaTarget(TargetBlock):
    """A Chroma store: an embedded directory or a server, and what to back up of it."""

    component: ClassVar[str] = "chroma"
    _block_type_name = "scholar-ops Chroma target"
    _description = (
        "A ChromaDB vector store that scholar-ops backs up and restores: an embedded "
        "(PersistentClient) directory or a Chroma server."
    )

    path: str | None = Field(
        default=None, description="Embedded store: the PersistentClient directory."
    )
    host: str | None = Field(default=None, description="Chroma server: host name or IP address.")
    port: int = Field(default=8000, ge=1, le=65535, description="Chroma server: TCP port.")
    ssl: bool = Field(default=False, description="Chroma server: use HTTPS.")
    token: SecretStr | None = Field(default=None, description="Chroma server: auth token.")
    token_secret: str | None = Field(
        default=None, description="Name of a Prefect Secret block holding the token (instead)."
    )
    token_header: str = Field(
        default="Authorization",
        description="Header carrying the token: Authorization (Bearer) or e.g. X-Chroma-Token.",
    )
    tenant: str = Field(default=DEFAULT_TENANT, description="Chroma tenant.")
    database: str = Field(default=DEFAULT_DATABASE, description="Chroma database.")
    collections: list[str] | None = Field(
        default=None, description="Collections to back up (empty: all of them)."
    )
    physical: bool = Field(
        default=False,
        description="Embedded store only: copy the directory itself instead of a logical export.",
    )
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="Records per request.")

    @field_validator("path", "host", "token_secret")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return blank_to_none(value)

    @field_validator("token")
    @classmethod
    def _empty_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return empty_secret_to_none(value)

    @field_validator("collections")
    @classmethod
    def _no_empty_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [v.strip() for v in value if v.strip()]
        return names or None

    @model_validator(mode="after")
    def _consistent(self) -> ChromaTarget:
        if (self.path is None) == (self.host is None):
            raise ValueError(
                "set exactly one of path (an embedded PersistentClient directory) and host "
                "(a Chroma server)"
            )
        check_one_secret_source(self.token, self.token_secret, "token", "token")
        if self.path is not None and (self.token is not None or self.token_secret is not None):
            raise ValueError("a token is for a Chroma server (host), not an embedded directory")
        if self.physical and self.path is None:
            raise ValueError("physical copies need an embedded directory (path), not a server")
        if self.physical and self.collections is not None:
            raise ValueError("a physical copy holds the whole directory: leave collections empty")
        return self

    def default_name(self) -> str:
        """The directory's name, or host:port."""
        if self.path is not None:
            return Path(self.path).name or self.path
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        kind = "physical copy" if self.physical else "logical export"
        return f"{self.source().describe()} ({kind})"

    def source(self) -> ChromaSource:
        """Connection settings for the engine, with the token resolved."""
        if self.path is not None:
            return ChromaSource.embedded(self.path, tenant=self.tenant, database=self.database)
        assert self.host is not None
        token = self.resolve_secret(self.token, self.token_secret, "token")
        return ChromaSource.server(
            self.host,
            self.port,
            ssl=self.ssl,
            token=token,
            token_header=self.token_header,
            tenant=self.tenant,
            database=self.database,
        )

    def backup(self, repo: Repository, request: BackupRequest) -> Snapshot:
        return backup_chroma(
            repo,
            self.source(),
            collections=self.collections,
            batch_size=self.batch_size,
            physical=self.physical,
            **request.engine_args(self.target_name),
        )

    def drill(self, repo: Repository, snap: Snapshot, scratch_dir: str | None) -> DrillResult:
        """Into a new embedded directory under ``scratch_dir``."""
        return drill_chroma(
            repo, self.target_name, snap=snap, scratch_dir=scratch_dir, batch_size=self.batch_size
        )
