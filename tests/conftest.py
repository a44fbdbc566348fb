"""Shared fixtures. Each real service lives in its own module under tests/fixtures/
and is started on a free loopback port in a temporary directory, then stopped."""

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.s3",
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
    "tests.fixtures.chroma",
    "tests.fixtures.prefect",
    "tests.fixtures.sinks",
    "tests.fixtures.pushgateway",
    "tests.fixtures.prometheus",
]
