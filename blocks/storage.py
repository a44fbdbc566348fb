"""Prefect-side glue: a store Storage from a prefect-aws ``S3Bucket`` block.

The store (``vault``) never imports Prefect; this module turns a block into the
engine's plain ``S3Storage`` (wrapped in ``RetryingStorage`` with the location's
circuit breaker, scholar_ops/vault/storage/breaker.py).

Retries: ``RetryingStorage`` already retries transient errors with backoff, and
a boto3 client left at botocore's defaults retries too (legacy mode, 5 attempts
per call), so one outage would cost up to 6 x 5 attempts. Unless the block's
``AwsClientParameters`` configures retries itself, the client used by the store
gets ``{"max_attempts": 2, "mode": "standard"}``: botocore smooths over a
dropped connection, the store's backoff does the rest. (botocore's
``max_attempts`` counts retries after the first call, so that is up to 3 calls;
it shows as ``total_max_attempts: 3`` on the client.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scholar_ops.redaction import redact_url
from scholar_ops.vault.storage import RetryingStorage, S3Storage
from scholar_ops.vault.storage.breaker import breaker_for

if TYPE_CHECKING:
    from scholar_ops.vault.storage.s3 import S3ObjectSettings

if TYPE_CHECKING:
    from prefect_aws import S3Bucket

#: botocore retry settings for the store's client when the block sets none.
STORE_BOTOCORE_RETRIES: dict[str, Any] = {"max_attempts": 2, "mode": "standard"}


def store_credentials(credentials: Any) -> Any:
    """``credentials`` (AwsCredentials or MinIOCredentials), with the store's botocore retries.

    Returns a copy when retries are added; the caller's block is never mutated.
    Whatever the block configures is kept: a botocore ``config`` with its own
    ``retries`` is used as is, any other ``config`` gets the store's ``retries``
    added to it.
    """
    params = getattr(credentials, "aws_client_parameters", None)
    if params is None:
        return credentials
    config: dict[str, Any] | None = params.config
    if config is not None and "retries" in config:
        return credentials
    new_config = {**(config or {}), "retries": dict(STORE_BOTOCORE_RETRIES)}
    new_params = params.model_copy(update={"config": new_config})
    return credentials.model_copy(update={"aws_client_parameters": new_params})


def s3_client_for_store(bucket: S3Bucket) -> Any:
    """The boto3 S3 client the store uses for ``bucket`` (see the module docstring).

    prefect-aws caches clients per credentials value (an LRU of 8), so repeated
    calls for the same block reuse one client.
    """
    return store_credentials(bucket.credentials).get_s3_client()


def storage_from_s3_bucket(
    bucket: S3Bucket, settings: S3ObjectSettings | None = None
) -> RetryingStorage:
    """Storage for objects in ``bucket.bucket_name`` under ``bucket.bucket_folder``.

    The boto3 client comes from the block's credentials (``AwsCredentials`` or
    ``MinIOCredentials``), including their ``aws_client_parameters`` (endpoint
    URL, botocore config), with the store's botocore retries unless the block
    sets its own. ``settings``: storage class, encryption and Object Lock of what is put.
    """
    client = s3_client_for_store(bucket)
    inner = S3Storage(client, bucket.bucket_name, bucket.bucket_folder, settings=settings)
    # one circuit breaker per endpoint and location in this process (storage.breaker)
    endpoint = redact_url(getattr(getattr(client, "meta", None), "endpoint_url", "") or "")
    return RetryingStorage(inner, breaker=breaker_for(f"{inner.location} at {endpoint}"))
