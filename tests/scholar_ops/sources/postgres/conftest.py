from __future__ import annotations

import uuid

import pytest

from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage


@pytest.fixture
def pg(pg_server):
    """Connection settings for the throwaway cluster; .with_db() picks a database."""
    return PgConnInfo(
        host=pg_server.host, port=pg_server.port, dbname="postgres", user=pg_server.user
    )


@pytest.fixture
def source_db(pg_server, pg):
    name = f"src_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(name)
    yield pg.with_db(name)
    pg_server.drop_database(name)


@pytest.fixture
def new_db_name(pg_server):
    name = f"dst_{uuid.uuid4().hex[:8]}"
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def local_repo(tmp_path):
    return Repository.init(
        LocalStorage(tmp_path / "repo"), MasterKey.from_string("pg-tests-master-key-000000")
    )
