"""Storage in an S3 bucket (or any S3-compatible service), through a boto3 client.

The client is handed in ready-made (the Prefect blocks layer builds it from an
``S3Bucket`` block); this module knows nothing about Prefect. Object ``name``
lives at key ``<prefix>/<name>``. S3 PUTs are atomic, so ``put`` is a single
``put_object``. botocore errors are translated into the store's errors:
missing keys into ObjectNotFound, throttling / 5xx / connection trouble into
TransientStorageError, everything else into StorageError naming the bucket, the
key and the S3 error code.

Note that the boto3 client may retry on its own (botocore's retry config);
RetryingStorage adds the store's retries on top.

``S3ObjectSettings`` adds what each ``put_object`` carries:

- ``storage_class`` for packs only (``data/``): e.g. ``STANDARD_IA`` or ``GLACIER_IR``
  (classes read back at once; archive classes that need a restore first are refused).
  Every other object (config, keys, index, snapshots, locks, WAL) stays ``STANDARD``:
  they are small and read often.
- ``sse`` (``AES256`` for SSE-S3, ``aws:kms`` for SSE-KMS with ``sse_kms_key_id``) on
  every object.
- ``lock_mode`` (``GOVERNANCE`` or ``COMPLIANCE``) and ``lock_days``: S3 Object Lock
  retention on the objects a snapshot is made of (``LOCKED_PREFIXES``: packs, index,
  snapshots, key sets, config), retained until ``lock_days`` after the write. The bucket
  must have been created with Object Lock enabled (so it is versioned). Locks, tombstones
  and WAL are not locked: the store deletes and replaces them as part of its work.

``delete`` HEADs the object first (S3 deletes of missing keys succeed); when that shows a
retention date still ahead, it raises ``ObjectLocked`` instead of deleting. (On a
versioned bucket a plain DELETE would only add a delete marker, hiding the locked
version; the store does not do that: prune keeps such objects and says so.) A delete the
credentials may not do (``AccessDenied``: a backup writer's, docs/s3-policies.md) raises
``DeleteDenied``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from botocore import exceptions as bce
from botocore.exceptions import BotoCoreError, ClientError

from scholar_ops.vault.errors import (
    ConfigError,
    DeleteDenied,
    ObjectLocked,
    ObjectNotFound,
    StorageError,
    TransientStorageError,
)
from scholar_ops.vault.storage.base import ObjectInfo
from scholar_ops.vault.storage.local import check_name, check_range

# S3 (and S3-compatible) error codes worth retrying, besides any 5xx or 429 status.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "PriorRequestNotComplete",
        "OperationAborted",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_INVALID_RANGE_CODES = frozenset({"InvalidRange", "416"})


#: Storage classes a pack may be written in: every one of them is read back at once.
PACK_STORAGE_CLASSES = (
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "REDUCED_REDUNDANCY",
)
SSE_MODES = ("AES256", "aws:kms")
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
#: Objects written under Object Lock retention: what a snapshot is made of.
LOCKED_PREFIXES = ("data/", "index/", "snapshots/", "keys/", "config")
PACK_PREFIX = "data/"

LockMode = Literal["GOVERNANCE", "COMPLIANCE"]


@dataclass(frozen=True)
class S3ObjectSettings:
    """What every ``put_object`` of the store carries (see the module docstring)."""

    storage_class: str | None = None  # packs only
    sse: str | None = None  # "AES256" or "aws:kms"
    sse_kms_key_id: str | None = None
    lock_mode: LockMode | None = None
    lock_days: int | None = None

    def __post_init__(self) -> None:
        if self.storage_class is not None and self.storage_class not in PACK_STORAGE_CLASSES:
            raise ConfigError(
                f"storage class {self.storage_class!r} cannot hold packs: use one of "
                f"{', '.join(PACK_STORAGE_CLASSES)} (GLACIER and DEEP_ARCHIVE need a restore "
                "before every read)"
            )
        if self.sse is not None and self.sse not in SSE_MODES:
            raise ConfigError(f"server-side encryption {self.sse!r}: use AES256 or aws:kms")
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ConfigError("a KMS key id needs server-side encryption 'aws:kms'")
        if (self.lock_mode is None) != (self.lock_days is None):
            raise ConfigError("Object Lock needs both a mode (GOVERNANCE/COMPLIANCE) and days")
        if self.lock_mode is not None and self.lock_mode not in LOCK_MODES:
            raise ConfigError(f"Object Lock mode {self.lock_mode!r}: use GOVERNANCE or COMPLIANCE")
        if self.lock_days is not None and not 1 <= self.lock_days <= 36500:
            raise ConfigError(f"Object Lock days must be 1-36500, not {self.lock_days}")

    def put_args(self, name: str, now: datetime | None = None) -> dict[str, Any]:
        """The extra ``put_object`` arguments for the object ``name``."""
        args: dict[str, Any] = {}
        if self.storage_class and name.startswith(PACK_PREFIX):
            args["StorageClass"] = self.storage_class
        if self.sse:
            args["ServerSideEncryption"] = self.sse
            if self.sse_kms_key_id:
                args["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.lock_mode and self.lock_days and name.startswith(LOCKED_PREFIXES):
            args["ObjectLockMode"] = self.lock_mode
            args["ObjectLockRetainUntilDate"] = (now or datetime.now(UTC)) + timedelta(
                days=self.lock_days
            )
        return args


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", "") or "")


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class S3Storage:
    """Objects in ``bucket`` under ``prefix``, through a boto3 S3 ``client``."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        settings: S3ObjectSettings | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        self.client = client
        self.settings = settings or S3ObjectSettings()
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    # -- helpers -----------------------------------------------------------

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _no_bucket(self, action: str, key: str) -> StorageError:
        return StorageError(
            f"cannot {action} {self._url(key)}: S3 bucket {self.bucket!r} does not exist "
            "(NoSuchBucket); create it or fix the bucket name"
        )

    def _error(self, exc: Exception, action: str, key: str, name: str | None) -> StorageError:
        """Translate a botocore exception raised while doing ``action`` on ``key``.

        ``name`` is the object name when a not-found error means a missing object.
        """
        where = self._url(key)
        if isinstance(exc, ClientError):
            code, status = _code(exc), _status(exc)
            message = exc.response.get("Error", {}).get("Message") or ""
            detail = f"{code or 'error'} (HTTP {status or '?'})"
            if message:
                detail += f": {message}"
            if code == "NoSuchBucket":
                return self._no_bucket(action, key)
            if name is not None and code in _NOT_FOUND_CODES:
                return ObjectNotFound(name, self.location)
            if code in TRANSIENT_CODES or status >= 500 or status == 429:
                return TransientStorageError(f"cannot {action} {where}: {detail}")
            hint = ""
            if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId"):
                hint = "; check the credentials and the bucket policy"
            return StorageError(f"cannot {action} {where}: {detail}{hint}")
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            return StorageError(
                f"cannot {action} {where}: no usable AWS credentials ({exc}); "
                "configure the credentials block"
            )
        if isinstance(exc, bce.SSLError):
            return StorageError(f"cannot {action} {where}: TLS failure: {exc}")
        if isinstance(exc, bce.ConnectionError | bce.HTTPClientError | bce.IncompleteReadError):
            return TransientStorageError(f"cannot {action} {where}: {type(exc).__name__}: {exc}")
        return StorageError(f"cannot {action} {where}: {type(exc).__name__}: {exc}")

    def _head(self, name: str, key: str, action: str) -> int:
        """Size of the object at ``key`` (see ``_head_object``)."""
        return int(self._head_object(name, key, action)["ContentLength"])

    def _head_object(self, name: str, key: str, action: str) -> dict[str, Any]:
        """HEAD of the object at ``key``. HEAD's bare 404 does not say whether the key or
        the bucket is missing, so a 404 is followed by a HEAD of the bucket."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as e:
            if not (isinstance(e, ClientError) and _code(e) in _NOT_FOUND_CODES):
                raise self._error(e, action, key, name) from e
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except (BotoCoreError, ClientError) as bucket_exc:
                if isinstance(bucket_exc, ClientError) and _code(bucket_exc) in (
                    _NOT_FOUND_CODES | {"NoSuchBucket"}
                ):
                    raise self._no_bucket(action, key) from e
                mapped = self._error(bucket_exc, action, key, None)
                if isinstance(mapped, TransientStorageError):
                    raise mapped from bucket_exc
                # e.g. 403 without s3:ListBucket: we cannot tell, so trust the key's 404
            raise ObjectNotFound(name, self.location) from e
        return dict(response)

    # -- Storage -----------------------------------------------------------

    def put(self, name: str, data: bytes) -> None:
        key = self._key(name)
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, **self.settings.put_args(name)
            )
        except (BotoCoreError, ClientError) as e:
            raise self._error(e, "write", key, None) from e

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        check_range(offset, length)
        key = self._key(name)
        if length == 0:
            self._head(name, key, "read")  # still report a missing object
            return b""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if length is not None:
            params["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            params["Range"] = f"bytes={offset}-"
        try:
            response = self.client.get_object(**params)
            body = response["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        except ClientError as e:
            if _code(e) in _INVALID_RANGE_CODES or _status(e) == 416:
                return b""  # the range starts at or past the end of the object
            raise self._error(e, "read", key, name) from e
        except BotoCoreError as e:
            raise self._error(e, "read", key, name) from e
        return data

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full_prefix = self.prefix + prefix
        strip = len(self.prefix)
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for obj in page.get("Contents", ()):
                    key: str = obj["Key"]
                    if key.endswith("/"):
                        continue  # a "folder" placeholder, not an object
                    yield ObjectInfo(key[strip:], int(obj["Size"]))
        except (BotoCoreError, ClientError) as e:
            raise self._error(e, "list", full_prefix, None) from e

    def stat(self, name: str) -> ObjectInfo:
        return ObjectInfo(name, self._head(name, self._key(name), "stat"))

    def locked_until(self, name: str) -> datetime | None:
        """The end of the object's Object Lock retention when it lies ahead, else None."""
        return _retained_until(self._head_object(name, self._key(name), "stat"))

    def delete(self, name: str) -> None:
        key = self._key(name)
        # S3 deletes of missing keys succeed; the interface wants ObjectNotFound.
        until = _retained_until(self._head_object(name, key, "delete"))
        if until is not None:
            raise ObjectLocked(name, until.isoformat(), self.location)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as e:
            if isinstance(e, ClientError) and _code(e) in ("AccessDenied", "403"):
                raise DeleteDenied(name, self.location) from e
            raise self._error(e, "delete", key, name) from e


def _retained_until(head: dict[str, Any]) -> datetime | None:
    until = head.get("ObjectLockRetainUntilDate")
    if not head.get("ObjectLockMode") or until is None:
        return None
    if isinstance(until, str):
        until = datetime.fromisoformat(until.replace("Z", "+00:00"))
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return until if until > datetime.now(UTC) else None
