"""``BackupRepository``: where the backup store lives and which key opens it.

Exactly one place: a local (or mounted) directory, or an S3 bucket given as a
nested prefect-aws ``S3Bucket`` block (bucket, folder, credentials, endpoint).
The master key is not in this block: it is read from the Prefect ``Secret``
block named by ``master_key_secret``, so who may edit the repository settings
and who may read the key can differ.

``compression``, ``compression_level`` and ``pack_size_mib`` are the settings a
new repository is created with (``open(create=True)``); an existing repository
keeps the ones recorded in its config.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from prefect_aws import S3Bucket
from pydantic import Field, field_validator, model_validator

from blocks.base import StrictBlock
from blocks.names import DEFAULT_MASTER_KEY_SECRET
from blocks.secrets import load_master_key
from blocks.storage import storage_from_s3_bucket
from scholar_ops.redaction import redact_url
from scholar_ops.vault.errors import RepositoryExists, RepositoryNotFound
from scholar_ops.vault.storage import open_storage

if TYPE_CHECKING:
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import Storage

log = logging.getLogger("blocks.repository")

Compression = Literal["zstd", "gzip", "none"]
_LEVELS = {"zstd": (1, 22), "gzip": (1, 9)}


class BackupRepository(StrictBlock):
    """The backup store: a local directory or an S3 bucket, and its master key's Secret block."""

    _block_type_name = "scholar-ops backup repository"
    _description = (
        "Where scholar-ops keeps its encrypted, deduplicated backups (a local directory "
        "or an S3 bucket) and the name of the Secret block holding the master key."
    )

    local_path: str | None = Field(
        default=None,
        description="Directory of a repository on a local or mounted filesystem (or file:///path).",
    )
    s3_bucket: S3Bucket | None = Field(
        default=None,
        description="S3 bucket (and folder, credentials, endpoint) holding the repository.",
    )
    master_key_secret: str = Field(
        default=DEFAULT_MASTER_KEY_SECRET,
        description="Name of the Prefect Secret block holding the repository's master key.",
    )
    compression: Compression = Field(
        default="zstd", description="Chunk compression for a new repository."
    )
    compression_level: int | None = Field(
        default=None,
        description="Compression level (zstd 1-22, gzip 1-9); empty for the default.",
    )
    pack_size_mib: int = Field(
        default=16, ge=4, le=256, description="Target pack object size in MiB for a new repository."
    )

    @field_validator("local_path")
    @classmethod
    def _local_path(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # the UI submits an emptied text box as ""
        value = value.strip()
        if value.lower().startswith("s3://"):
            raise ValueError(
                f"local_path {value!r} is an S3 URL: configure S3 through s3_bucket "
                "(an S3Bucket block) instead"
            )
        return value

    @field_validator("master_key_secret")
    @classmethod
    def _master_key_secret(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("master_key_secret must name a Secret block")
        return value.strip()

    @model_validator(mode="after")
    def _check(self) -> BackupRepository:
        if (self.local_path is None) == (self.s3_bucket is None):
            which = "both are" if self.local_path is not None else "neither is"
            raise ValueError(
                f"set exactly one of local_path (a directory) or s3_bucket (an S3Bucket block); {which} set"
            )
        level = self.compression_level
        if level is not None:
            if self.compression == "none":
                raise ValueError("compression_level must be empty when compression is 'none'")
            lo, hi = _LEVELS[self.compression]
            if not lo <= level <= hi:
                raise ValueError(
                    f"compression_level {level} is out of range for {self.compression} ({lo}-{hi})"
                )
        return self

    @property
    def pack_size(self) -> int:
        """Target pack size in bytes."""
        return self.pack_size_mib << 20

    @property
    def location(self) -> str:
        """Where the repository is, for people: a path or an s3:// URL (never credentials)."""
        if self.local_path is not None:
            return os.path.expanduser(self.local_path)
        bucket = self.s3_bucket
        assert bucket is not None
        folder = bucket.bucket_folder.strip("/")
        where = f"s3://{bucket.bucket_name}/{folder}".rstrip("/")
        params = getattr(bucket.credentials, "aws_client_parameters", None)
        endpoint = getattr(params, "endpoint_url", None)
        if endpoint:
            where += f" (endpoint {redact_url(endpoint)})"
        return where

    def storage(self) -> Storage:
        """The store's Storage: a LocalStorage, or S3 storage wrapped in retries."""
        if self.local_path is not None:
            path = self.local_path
            if not path.lower().startswith("file:"):
                path = str(Path(path).expanduser())
            return open_storage(path)
        assert self.s3_bucket is not None
        return storage_from_s3_bucket(self.s3_bucket)

    def master_key(self) -> MasterKey:
        """The master key, from the Secret block named by ``master_key_secret``."""
        return load_master_key(self.master_key_secret)

    def open(self, create: bool = False) -> Repository:
        """Open the repository; with ``create=True``, create it first if there is none.

        A new repository gets this block's compression, level and pack size.
        """
        from scholar_ops.vault.repository import Repository

        storage = self.storage()
        master = self.master_key()
        try:
            return Repository.open(storage, master)
        except RepositoryNotFound:
            if not create:
                raise
        try:
            repo = Repository.init(
                storage,
                master,
                compression=self.compression,
                compression_level=self.compression_level,
                pack_size=self.pack_size,
            )
        except RepositoryExists:
            # Created by someone else in the meantime (or incomplete: open says which).
            return Repository.open(storage, master)
        log.info("created a new scholar-ops repository at %s", self.location)
        return repo
