"""The S3 client the store uses: botocore retries turned down, the block left alone."""

from __future__ import annotations

from typing import Any

from prefect_aws import AwsClientParameters, AwsCredentials, MinIOCredentials, S3Bucket
from pydantic import SecretStr

from blocks.storage import (
    STORE_BOTOCORE_RETRIES,
    s3_client_for_store,
    storage_from_s3_bucket,
    store_credentials,
)
from scholar_ops.vault.storage import S3Storage


def _bucket(config=None, credentials_cls=AwsCredentials) -> S3Bucket:
    params = AwsClientParameters(endpoint_url="http://127.0.0.1:9", config=config)
    creds: AwsCredentials | MinIOCredentials
    if credentials_cls is MinIOCredentials:
        creds = MinIOCredentials(
            minio_root_user="u",
            minio_root_password=SecretStr("p"),
            region_name="us-east-1",
            aws_client_parameters=params,
        )
    else:
        creds = AwsCredentials(
            aws_access_key_id="a",
            aws_secret_access_key=SecretStr("s"),
            region_name="us-east-1",
            aws_client_parameters=params,
        )
    return S3Bucket(bucket_name="b", credentials=creds)


def _retries(client: Any) -> dict[str, Any]:
    return client.meta.config.retries


# botocore's `max_attempts` counts retries: {"max_attempts": 2} is 3 calls in all.
STORE_RETRIES = {"mode": "standard", "total_max_attempts": 3}


def test_default_client_gets_the_store_retries_without_touching_the_block():
    bucket = _bucket()
    before = bucket.model_dump()
    client = s3_client_for_store(bucket)
    assert _retries(client) == STORE_RETRIES
    assert bucket.credentials.aws_client_parameters.config is None
    assert bucket.model_dump() == before
    # The block's own client is still prefect-aws' default.
    assert _retries(bucket.credentials.get_s3_client()) == {"mode": "legacy"}
    assert STORE_BOTOCORE_RETRIES == {"max_attempts": 2, "mode": "standard"}
    inner = storage_from_s3_bucket(bucket).inner
    assert isinstance(inner, S3Storage) and inner.client is client  # cached per credentials


def test_minio_credentials_too():
    client = s3_client_for_store(_bucket(credentials_cls=MinIOCredentials))
    assert _retries(client) == STORE_RETRIES


def test_retries_set_on_the_block_are_kept():
    config = {"retries": {"max_attempts": 7, "mode": "adaptive"}}
    bucket = _bucket(config)
    assert store_credentials(bucket.credentials) is bucket.credentials
    assert _retries(s3_client_for_store(bucket)) == {"total_max_attempts": 8, "mode": "adaptive"}


def test_other_config_is_kept_and_gets_the_store_retries():
    bucket = _bucket({"connect_timeout": 3, "signature_version": "s3v4"})
    client = s3_client_for_store(bucket)
    assert client.meta.config.connect_timeout == 3
    assert client.meta.config.signature_version == "s3v4"
    assert _retries(client) == STORE_RETRIES
    assert bucket.credentials.aws_client_parameters.config == {
        "connect_timeout": 3,
        "signature_version": "s3v4",
    }
