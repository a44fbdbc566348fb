"""``BackupRepository``: where the backup store lives and which key opens it.

Exactly one place: a local (or mounted) directory, or an S3 bucket given as a
nested prefect-aws ``S3Bucket`` block (bucket, folder, credentials, endpoint).
The master key is not in this block: it is read from the Prefect ``Secret``
block named by ``master_key_secret``, so who may edit the repository settings
and who may read the key can differ.

``compression``, ``compression_level`` and ``pack_size_mib`` are the settings a
new repository is created with (``open(create=True)``); an existing repository
keeps the ones recorded in its config.

``size_limit`` (``"500 GB"``, ``"1.5 TiB"``; empty: none) caps the repository's size:
a backup that would pass it runs retention first and fails with RepositoryFull if
that is not enough; one that crosses it while running stops before the pack that would
(scholar_ops/vault/space.py).

S3 only: ``s3_pack_storage_class`` (packs, ``data/``, only; the rest stays STANDARD),
``s3_sse`` / ``s3_sse_kms_key_id`` (server-side encryption of every object) and
``s3_object_lock_mode`` / ``s3_object_lock_days`` (Object Lock retention of packs, index,
snapshots, key sets and config; the bucket must have Object Lock enabled):
scholar_ops/vault/storage/s3.py.

``fallback_repository`` names another repository block: a backup whose repository stays
unreachable (after the storage's retries, or with its circuit breaker open) goes there
instead and succeeds with a warning (tasks/targets.py); the copy-snapshots flow moves such
backups back into this repository once it is reachable (flows/backup/copy_snapshots.py).
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
from scholar_ops.vault.errors import ConfigError, RepositoryExists, RepositoryNotFound
from scholar_ops.vault.space import parse_size
from scholar_ops.vault.storage import open_storage

if TYPE_CHECKING:
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import Storage
    from scholar_ops.vault.storage.s3 import S3ObjectSettings

log = logging.getLogger("blocks.repository")

Compression = Literal["zstd", "gzip", "none"]
PackStorageClass = Literal[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "REDUCED_REDUNDANCY",
]
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

    size_limit: str | None = Field(
        default=None,
        description="Largest size the repository may grow to, e.g. '500 GB' or '1.5 TiB' "
        "(kB/MB/GB/TB powers of 1000, KiB/MiB/GiB/TiB of 1024); empty: no limit.",
    )

    s3_pack_storage_class: PackStorageClass | None = Field(
        default=None,
        description="S3 storage class of packs (data/ objects) only, e.g. STANDARD_IA or "
        "GLACIER_IR; metadata stays STANDARD. Empty: the bucket's default.",
    )
    s3_sse: Literal["AES256", "aws:kms"] | None = Field(
        default=None,
        description="S3 server-side encryption of every object: AES256 (SSE-S3) or aws:kms "
        "(SSE-KMS, with s3_sse_kms_key_id or the account's aws/s3 key). Empty: the bucket's default.",
    )
    s3_sse_kms_key_id: str | None = Field(
        default=None, description="KMS key id or ARN for s3_sse 'aws:kms'."
    )
    s3_object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = Field(
        default=None,
        description="S3 Object Lock retention mode of packs, index, snapshots, keys and config "
        "(the bucket must have Object Lock enabled). Empty: no retention set by scholar-ops.",
    )
    s3_object_lock_days: int | None = Field(
        default=None, ge=1, le=36500, description="Object Lock retention period in days."
    )

    fallback_repository: str | None = Field(
        default=None,
        description="Name of another BackupRepository block: a backup goes there, with a "
        "warning, when this repository stays unreachable after its retries.",
    )

    @field_validator("fallback_repository")
    @classmethod
    def _fallback(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else value.strip()

    @field_validator(
        "s3_pack_storage_class",
        "s3_sse",
        "s3_sse_kms_key_id",
        "s3_object_lock_mode",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("size_limit", mode="before")
    @classmethod
    def _size_limit(cls, value: object) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"size_limit must be a size like '500 GB', not {type(value).__name__}")
        try:
            parse_size(value)
        except ConfigError as e:
            raise ValueError(f"size_limit: {e}") from None
        return str(value).strip()

    @property
    def size_limit_bytes(self) -> int | None:
        """``size_limit`` in bytes (None: no limit)."""
        return None if self.size_limit is None else parse_size(self.size_limit)

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
        self.s3_settings()  # ConfigError -> ValueError: the S3 settings fit together
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

    def s3_settings(self) -> S3ObjectSettings | None:
        """What every object put into the bucket carries (None: nothing set)."""
        fields = (
            self.s3_pack_storage_class,
            self.s3_sse,
            self.s3_sse_kms_key_id,
            self.s3_object_lock_mode,
            self.s3_object_lock_days,
        )
        if all(f is None for f in fields):
            return None
        if self.s3_bucket is None:
            raise ValueError("the s3_* settings apply to an S3 repository (s3_bucket) only")
        from scholar_ops.vault.storage.s3 import S3ObjectSettings

        try:
            return S3ObjectSettings(*fields)
        except ConfigError as e:
            raise ValueError(str(e)) from None

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
        return storage_from_s3_bucket(self.s3_bucket, self.s3_settings())

    def master_key(self) -> MasterKey:
        """The master key, from the Secret block named by ``master_key_secret``."""
        return load_master_key(self.master_key_secret)

    def open(self, create: bool = False) -> Repository:
        """Open the repository; with ``create=True``, create it first if there is none.

        A new repository gets this block's compression, level and pack size; the opened
        one carries the block's size limit (``Repository.size_limit``).
        """
        repo = self._open(create)
        repo.size_limit = self.size_limit_bytes
        repo.flow_run_id = _flow_run_id()  # who, in the audit trail (vault.audit)
        return repo

    def _open(self, create: bool) -> Repository:
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


def _flow_run_id() -> str | None:
    """The Prefect flow run this process works for (None outside one)."""
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
    except Exception:  # no run context: the engine reads $PREFECT__FLOW_RUN_ID itself
        return None
    return str(run_id) if run_id else None
