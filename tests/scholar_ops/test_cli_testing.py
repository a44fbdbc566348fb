"""`scholar-ops test`: the functionality-tests flow from the command line, its report and
exit codes; a bad plan is one line and exit 2 before Prefect starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from prefect.blocks.system import Secret

from scholar_ops.cli import main
from scholar_ops.testbed.aischolar import AIScholar

ROOT = Path(__file__).resolve().parents[2]


def _plan(tmp_path: Path, app: AIScholar, secret: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(
        f"target: {{name: refapp, base_url: '{app.url}', probe_path: /health/live}}\n"
        f"credentials: {{secret_block: {secret}}}\n"
        "suites:\n"
        "  api:\n"
        "    endpoints:\n"
        "      - {method: GET, path: /api/me}\n"
        "      - {method: POST, path: /api/search, json: {query: x}}\n"
        "  integration: {}\n"
    )
    return path


def test_test_verb_prints_the_report_and_exits_by_verdict(
    aischolar_clean: AIScholar, prefect_harness: None, tmp_path: Path, capsys
) -> None:
    secret = f"cli-user-{uuid.uuid4().hex[:8]}"
    user = {"username": aischolar_clean.test_user, "password": aischolar_clean.test_password}
    Secret(value=user).save(secret)  # type: ignore[arg-type]
    plan = _plan(tmp_path, aischolar_clean, secret)
    out = tmp_path / "out"
    rc = main(["test", "--config", str(plan), "--suite", "api", "--output", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "full tests of refapp" in text and "PASSED, system_health_score 100" in text
    assert "integration" not in text  # not asked for
    aischolar_clean.set_faults(search_500=True)
    rc = main(
        [
            "test",
            "--config",
            str(plan),
            "--suite",
            "api,integration",
            "--output",
            str(out),
            "--monitoring",
            "",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    assert (
        "[critical] api: POST /api/search: POST /api/search answered 500, expected 200"
        in captured.out
    )
    assert "scholar-ops test: full tests of refapp failed" in captured.err
    assert aischolar_clean.test_password not in captured.out + captured.err
    assert len(list(out.iterdir())) == 2  # one directory per run


def test_a_bad_plan_is_one_line_and_exit_2_without_prefect(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "target: {base_url: 'http://127.0.0.1:1'}\nsuites:\n  api:\n    endpoints:\n"
        "      - {path: /, expect: {stauts: 200}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # a start-up here would take long
    started = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "scholar_ops.cli", "test", "--config", str(plan)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"scholar-ops test: {plan}: suites.api.endpoints.0.expect.stauts: Extra inputs are not permitted"
    ]
    assert time.monotonic() - started < 20
    missing = subprocess.run(
        [sys.executable, "-m", "scholar_ops.cli", "test", "--config", "nope.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert missing.returncode == 2
    assert "test plan nope.yaml does not exist: pass --config FILE" in missing.stderr
    wrong = subprocess.run(
        [sys.executable, "-m", "scholar_ops.cli", "test", "--config", str(plan), "--suite", "apis"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert wrong.returncode == 2 and "--suite 'apis': choose from api, database" in wrong.stderr


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
