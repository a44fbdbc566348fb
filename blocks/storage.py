"""Prefect-side glue: a store Storage from a prefect-aws ``S3Bucket`` block.

The store (``vault``) never imports Prefect; this module turns a block into the
engine's plain ``S3Storage`` (wrapped in ``RetryingStorage``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vault.storage import RetryingStorage, S3Storage

if TYPE_CHECKING:
    from prefect_aws import S3Bucket


def storage_from_s3_bucket(bucket: S3Bucket) -> RetryingStorage:
    """Storage for objects in ``bucket.bucket_name`` under ``bucket.bucket_folder``.

    The boto3 client comes from the block's credentials (``AwsCredentials`` or
    ``MinIOCredentials``), including their ``aws_client_parameters`` (endpoint
    URL, botocore config). prefect-aws caches clients per credentials value.
    """
    client = bucket.credentials.get_s3_client()
    return RetryingStorage(S3Storage(client, bucket.bucket_name, bucket.bucket_folder))
