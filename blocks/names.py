"""The default block names every layer agrees on (importable without Prefect)."""

DEFAULT_REPOSITORY_BLOCK = "scholar-ops-repository"
DEFAULT_MASTER_KEY_SECRET = "scholar-ops-master-key"
DEFAULT_MONITORING_BLOCK = "scholar-ops-monitoring"
DEFAULT_TEST_PLAN = "scholar-ops-test-plan"
