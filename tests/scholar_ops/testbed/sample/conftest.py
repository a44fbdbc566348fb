"""Helpers for the sample-data tests: a second fresh database on the same server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.fixtures.postgres import PgServer


@pytest.fixture
def other_db(pg_server: PgServer) -> Iterator[str]:
    """Another fresh, empty database (besides `pg_db`); yields its dsn."""
    name = f"test_other_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.create_database(name)
    try:
        yield dsn
    finally:
        pg_server.drop_database(name)
