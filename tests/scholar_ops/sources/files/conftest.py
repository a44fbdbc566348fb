from __future__ import annotations

import pytest

from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage


@pytest.fixture
def repo(tmp_path):
    return Repository.init(
        LocalStorage(tmp_path / "repo"), MasterKey.from_string("files-tests-master-key-0000")
    )


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "src"
    path.mkdir()
    return path
