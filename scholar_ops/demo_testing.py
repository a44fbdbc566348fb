"""The functionality-testing part of ``make demo``: the reference AI Scholar application
started on the demo's PostgreSQL (a database of its own), a throwaway Redis and an
Chroma server; the functionality-tests flow run on the shipped plan
(flows/testing/plans/aischolar.yaml) and its report shown; then one fault injected
(search answers 500) and the failing report shown, naming it."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from scholar_ops.project import project_root

TEST_USER_SECRET = "demo-aischolar-test-user"


def run_testing_demo(
    data_dir: Path,
    pg: object,
    monitoring: str,
    step: Callable[[str], None],
) -> bool:
    """True when the healthy run passed and the broken one failed naming the fault."""
    from prefect.blocks.system import Secret

    from flows.testing.functionality_tests import TestsFailed, functionality_tests
    from scholar_ops.cli.testing import render
    from scholar_ops.sources.redis.server import throwaway_redis
    from scholar_ops.testbed.aischolar import running_aischolar
    from scholar_ops.testbed.chroma import chroma_server_in

    plan = project_root() / "flows" / "testing" / "plans" / "aischolar.yaml"
    create_database = pg.create_database  # type: ignore[attr-defined]
    database_url = create_database("aischolar_app")
    runs = data_dir / "test-runs"
    with (
        throwaway_redis(data_dir / "app-redis") as redis_server,
        chroma_server_in(data_dir / "app-chroma") as chroma,
        running_aischolar(
            database_url=database_url,
            redis_url=redis_server.url,
            chroma=chroma.url,
            admin_token=secrets.token_urlsafe(16),
            workdir=data_dir / "app",
        ) as app,
    ):
        step(
            f"the reference AI Scholar application at {app.url} (docs/aischolar.md): "
            "functionality-tests flow with flows/testing/plans/aischolar.yaml"
        )
        username, password = "sotest-operator", secrets.token_urlsafe(16)
        app.create_user(username, password)
        Secret(value={"username": username, "password": password}).save(  # type: ignore[arg-type]
            TEST_USER_SECRET, overwrite=True
        )
        print(f"test user {username} (password in the Secret block {TEST_USER_SECRET})")
        os.environ.update(
            AISCHOLAR_URL=app.url,
            AISCHOLAR_TEST_USER_SECRET=TEST_USER_SECRET,
            AISCHOLAR_TEST_DATABASE_URL=database_url,
            AISCHOLAR_TEST_REDIS_URL=redis_server.url,
            AISCHOLAR_TEST_CHROMA=chroma.url,
        )
        healthy = functionality_tests(
            plan=str(plan), monitoring=monitoring, artifact_dir=str(runs / "healthy")
        )
        print(render(_report_doc(runs / "healthy")))

        step("inject a fault (search answers 500), run the api and integration suites again")
        app.set_faults(search_500=True)
        broken_named = False
        # the failed run is expected: its report below says why, without Prefect's traceback
        logging.getLogger("prefect.flow_runs").setLevel(logging.CRITICAL)
        try:
            functionality_tests(
                plan=str(plan),
                suites=["api", "integration"],
                monitoring=monitoring,
                artifact_dir=str(runs / "broken"),
            )
        except TestsFailed as e:
            print(render(_report_doc(runs / "broken")))
            print(f"\nthe run failed: {e}")
            broken_named = "POST /api/search answered 500" in str(e)
        app.reset_faults()
        print(f"reports (report.json, junit.xml, screenshots) under {runs}")
        return healthy.overall_status == "passed" and broken_named


def _report_doc(where: Path) -> dict[str, object]:
    import json

    (run,) = [p for p in where.iterdir() if p.is_dir()]
    return dict(json.loads((run / "report.json").read_text()))
