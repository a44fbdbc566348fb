"""Where the store's objects live.

``Storage`` (in ``base``) is the small interface every backend implements:
atomic ``put``, ranged ``get``, ``list`` by prefix, ``stat`` and ``delete``.
Backends:

- ``LocalStorage``: a directory on a local or mounted filesystem;
- ``S3Storage``: an S3 bucket through a boto3 client (the Prefect blocks layer,
  ``blocks.storage.storage_from_s3_bucket``, builds one from an ``S3Bucket`` block);
- ``RetryingStorage``: wraps any backend and retries TransientStorageError with
  exponential backoff and full jitter.

``open_storage`` opens a local repository from a path or ``file://`` URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from scholar_ops.vault.errors import ConfigError
from scholar_ops.vault.storage.base import ObjectInfo, Storage
from scholar_ops.vault.storage.local import LocalStorage
from scholar_ops.vault.storage.retry import RetryingStorage

if TYPE_CHECKING:
    from scholar_ops.vault.storage.s3 import S3Storage


def __getattr__(name: str) -> Any:
    # S3Storage (and so botocore) is imported when first asked for: the WAL command,
    # run by PostgreSQL once per segment, opens local repositories without it.
    if name == "S3Storage":
        from scholar_ops.vault.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LocalStorage",
    "ObjectInfo",
    "RetryingStorage",
    "S3Storage",
    "Storage",
    "open_storage",
]


def open_storage(url: str | Path) -> Storage:
    """Open a local repository given as a path or a ``file:///absolute/path`` URL.

    S3 needs credentials and a client, which come from the Prefect ``S3Bucket``
    block: use ``blocks.storage.storage_from_s3_bucket`` for those.
    """
    if isinstance(url, Path):
        return LocalStorage(url)
    if not url:
        raise ConfigError("no storage location given: pass a directory path or a file:// URL")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "s3":
        raise ConfigError(
            f"{url}: S3 storage is configured through an S3Bucket block; "
            "use blocks.storage.storage_from_s3_bucket(S3Bucket.load(...)) instead of a URL"
        )
    if scheme == "file":
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(
                f"{url}: file:// URLs must name a local path (file:///path), not host {parsed.netloc!r}"
            )
        path = unquote(parsed.path)
        if not path:
            raise ConfigError(f"{url}: the file:// URL has no path")
        return LocalStorage(path)
    if scheme:
        raise ConfigError(
            f"{url}: unsupported storage scheme {scheme!r}; use a directory path or file:///path "
            "(S3 goes through an S3Bucket block)"
        )
    return LocalStorage(url)
