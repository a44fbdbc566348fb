"""Shared fixtures. Each real service lives in its own module under tests/fixtures/
and is started on a free loopback port in a temporary directory, then stopped."""

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
    "tests.fixtures.chroma",
    "tests.fixtures.prefect",
    "tests.fixtures.sinks",
    "tests.fixtures.pushgateway",
    "tests.fixtures.prometheus",
    "tests.fixtures.aischolar",
    "tests.fixtures.datasette",
]


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _operator_home(tmp_path_factory, monkeypatch):
    """Where the command line keeps profiles and known snapshots: a fresh place per test,
    never the real user's ~/.config or ~/.local/state."""
    home = tmp_path_factory.mktemp("operator-home")
    monkeypatch.setenv("SCHOLAR_OPS_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("SCHOLAR_OPS_STATE_DIR", str(home / "state"))


#: Fixtures that start a real service (a server process, or a Prefect API): a test that
#: uses one, directly or through another fixture, is marked ``services``.
SERVICE_FIXTURES = frozenset(
    {
        "pg_server", "pg_db", "redis_server", "redis_client", "s3_server", "s3_bucket_block",
        "s3_storage", "storage", "chroma_server", "prefect_harness", "pushgateway",
        "prometheus_factory", "alertmanager_factory", "aischolar", "aischolar_clean", "datasette",
    }
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)
