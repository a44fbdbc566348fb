"""The stack's blocks, made in a process of their own against the stack's Prefect server.

    python -m scholar_ops.stack.configure < settings.json

Run by ``Stack.up`` with PREFECT_API_URL and PREFECT_HOME pointing at the stack (set
before Prefect is imported, which is why this is a separate process). The settings
arrive as JSON on stdin (the test user's password among them: never on a command
line). It creates, and never overwrites:

- through ``scholar-ops setup``: the repository block (a local repository in
  ``<home>/repository``), the master key's Secret block (the key from
  ``<home>/master.key``, generated there by setup for a new repository), the
  PostgreSQL, Redis, Chroma and files targets named as deployments.yaml names them;
- the monitoring settings (the stack's Pushgateway, the targets, the application's
  endpoint), when the block is missing;
- the test user's Secret block and the test plan block (flows/testing/plans/aischolar.yaml
  with the stack's URLs), when missing;
- the second copy, when its repository block (``scholar-ops-offsite``, the copy-snapshots
  deployment's destination) is missing: through ``scholar-ops setup --repository-only``,
  a local repository in ``<home>/offsite-repository`` with a master key of its own (the
  Secret block ``scholar-ops-offsite-key`` and ``<home>/offsite.key``).

``parts`` in the settings says which: ``primary`` (all but the second copy) and
``offsite`` (a stack made before the second copy existed gets only that); default both.

Exit status: 0 done; 2 a block exists with other values (setup's message says which).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from blocks.names import DEFAULT_REPOSITORY_BLOCK
from scholar_ops.cli.common import (
    DEFAULT_CHROMA_TARGET,
    DEFAULT_MONITORING,
    DEFAULT_REDIS_TARGET,
    DEFAULT_TARGET,
)
from scholar_ops.stack.stack import OFFSITE_BLOCK, OFFSITE_KEY_SECRET, repository_paths

UPLOADS_TARGET = "aischolar-uploads"
CONFIG_TARGET = "aischolar-config"
TEST_PLAN_BLOCK = "scholar-ops-test-plan"
TEST_USER_SECRET = "aischolar-test-user"


def configure(s: dict[str, Any]) -> int:
    parts = s.get("parts", ["primary", "offsite"])
    if "primary" in parts:
        rc = _primary(s)
        if rc != 0:
            return rc
    if "offsite" in parts:
        return _offsite(s)
    return 0


def _primary(s: dict[str, Any]) -> int:
    from scholar_ops.cli import main as cli

    home = Path(s["home"])
    key_file = home / "master.key"
    repo = repository_paths(home)[DEFAULT_REPOSITORY_BLOCK]
    argv = ["setup", "--repo-path", str(repo), "--new-key-file", str(key_file)]
    if key_file.exists():
        argv += ["--master-key-file", str(key_file)]
    argv += [
        "--target", DEFAULT_TARGET, "--pg-host", "127.0.0.1", "--pg-port", str(s["postgres_port"]),
        "--pg-database", s["database"], "--pg-user", s["pg_user"], "--pg-sslmode", "disable",
        "--redis-target", DEFAULT_REDIS_TARGET, "--redis-host", "127.0.0.1",
        "--redis-port", str(s["redis_port"]),
        "--chroma-target", DEFAULT_CHROMA_TARGET, "--chroma-host", "127.0.0.1",
        "--chroma-port", str(s["chroma_port"]),
        "--files", f"{UPLOADS_TARGET}={s['uploads']}",
        "--files", f"{CONFIG_TARGET}={s['config_dir']}",
    ]  # fmt: skip
    for var in ("PGPASSWORD", "REDISCLI_AUTH", "REDIS_PASSWORD", "CHROMA_TOKEN"):
        os.environ.pop(var, None)  # the stack's servers take none
    rc = cli(argv)
    if rc != 0:
        return int(rc)
    _monitoring(s)
    _testing(s)
    return 0


def _offsite(s: dict[str, Any]) -> int:
    """The second copy's repository block, key and repository, unless the block exists
    (whatever it holds: a user's own second copy is never replaced)."""
    from blocks.repository import BackupRepository
    from scholar_ops.cli import main as cli

    if _exists(BackupRepository, OFFSITE_BLOCK):
        print(f"repository  {OFFSITE_BLOCK} [unchanged: it exists]")
        return 0
    # its own key: never one the environment gives (that would be the first repository's)
    for var in ("SCHOLAR_OPS_MASTER_KEY", "SCHOLAR_OPS_MASTER_KEY_FILE"):
        os.environ.pop(var, None)
    home = Path(s["home"])
    key_file = home / "offsite.key"
    argv = [
        "--repository", OFFSITE_BLOCK, "setup", "--repository-only",
        "--repo-path", str(repository_paths(home)[OFFSITE_BLOCK]),
        "--master-key-secret", OFFSITE_KEY_SECRET, "--new-key-file", str(key_file),
    ]  # fmt: skip
    if key_file.exists():
        argv += ["--master-key-file", str(key_file)]
    return int(cli(argv))


def _exists(cls: Any, name: str) -> bool:
    try:
        cls.load(name, _sync=True)
        return True
    except ValueError:
        return False


def _monitoring(s: dict[str, Any]) -> None:
    from blocks.monitoring import MonitoringSettings

    if _exists(MonitoringSettings, DEFAULT_MONITORING):
        print(f"monitoring  {DEFAULT_MONITORING} [unchanged: it exists]")
        return
    MonitoringSettings(
        pushgateway_url=s["pushgateway_url"],
        postgres_targets=[DEFAULT_TARGET],
        redis_targets=[DEFAULT_REDIS_TARGET],
        chroma_targets=[DEFAULT_CHROMA_TARGET],
        app_endpoints={"aischolar": s["app_url"] + "/health/live"},
        backup_interval_seconds=3600,
    ).save(DEFAULT_MONITORING)
    print(f"monitoring  {DEFAULT_MONITORING}: pushes to {s['pushgateway_url']} [created]")


def _testing(s: dict[str, Any]) -> None:
    import yaml
    from prefect.blocks.system import Secret

    from blocks.testing import FunctionalTestPlan
    from scholar_ops.functest.config import expand_vars
    from scholar_ops.project import project_root

    if not _exists(Secret, TEST_USER_SECRET):
        Secret(value={"username": s["test_user"], "password": s["test_password"]}).save(  # type: ignore[arg-type]
            TEST_USER_SECRET
        )
        print(f"test user   {s['test_user']} in Secret block {TEST_USER_SECRET} [created]")
    if _exists(FunctionalTestPlan, TEST_PLAN_BLOCK):
        print(f"test plan   {TEST_PLAN_BLOCK} [unchanged: it exists]")
        return
    os.environ.update(
        AISCHOLAR_URL=s["app_url"],
        AISCHOLAR_TEST_USER_SECRET=TEST_USER_SECRET,
        AISCHOLAR_TEST_CHROMA=s["chroma_url"],
    )
    plan_file = project_root() / "flows" / "testing" / "plans" / "aischolar.yaml"
    doc = expand_vars(yaml.safe_load(plan_file.read_text(encoding="utf-8")), str(plan_file))
    # stores.postgres and stores.redis name AISCHOLAR_TEST_DATABASE_URL and
    # AISCHOLAR_TEST_REDIS_URL: the stack sets them in its workers' environment
    FunctionalTestPlan(plan=doc).save(TEST_PLAN_BLOCK)
    print(f"test plan   {TEST_PLAN_BLOCK}: {plan_file.name} for {s['app_url']} [created]")


def main() -> int:
    settings = json.loads(sys.stdin.read())
    try:
        return configure(settings)
    except Exception as e:
        print(f"configure: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
