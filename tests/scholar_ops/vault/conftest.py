from __future__ import annotations

import pytest

from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.from_string("test-master-key-0123456789abcdef")


@pytest.fixture
def repo(storage, master) -> Repository:
    """A fresh repository on each backend (local filesystem and S3 through prefect-aws)."""
    return Repository.init(storage, master, pack_size=4 << 20)
