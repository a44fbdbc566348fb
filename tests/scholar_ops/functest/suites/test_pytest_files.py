"""The pytest suite runs operators' own files in a child pytest and reads its JUnit XML:
pass, fail and skip come back as they are; the target and the test user reach the child
in its environment and the password never reaches a result or an artifact; no test
collected, a missing path, a child that outlives its time and a target that is down are
each reported as what they are."""

from __future__ import annotations

import hashlib
import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from scholar_ops.functest.context import Credentials, SuiteContext
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.suites.pytest_files import Settings, run
from scholar_ops.sources.process import free_port

OPERATOR_TESTS = Path(__file__).parent / "operator_tests"
#: extra pytest arguments (the suite's ``args``): the venv's hypothesis and schemathesis
#: plugins cost the child ~1.5 s to import and these files do not use them
FAST = ["-p", "no:schemathesis", "-p", "no:hypothesispytest"]


def ctx_for(tmp_path: Path, base_url: str = "http://127.0.0.1:9", **kwargs) -> SuiteContext:
    return SuiteContext(base_url=base_url, artifact_dir=tmp_path / "artifacts", **kwargs)


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / "ops" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


def test_pass_fail_and_skip_come_back_from_the_junit_xml(tmp_path):
    f = write(
        tmp_path,
        "check_basic.py",
        """
        import pytest

        def test_ok():
            assert 1 + 1 == 2

        def test_bad():
            assert 2 + 2 == 5, "arithmetic is broken"

        @pytest.mark.skip(reason="not on this deployment")
        def test_later():
            pass
        """,
    )
    suite = run(
        ctx_for(tmp_path), Settings(paths=[str(f)], probe=False, args=FAST, severity="critical")
    )
    t = {x.test_name: x for x in suite.tests}
    assert sorted(t) == ["check_basic.test_bad", "check_basic.test_later", "check_basic.test_ok"]
    assert t["check_basic.test_ok"].status == "passed"
    bad = t["check_basic.test_bad"]
    assert bad.status == "failed" and bad.severity == "critical" and bad.category == "pytest"
    assert bad.error_message == "AssertionError: arithmetic is broken"
    assert t["check_basic.test_later"].status == "skipped"
    assert "not on this deployment" in str(t["check_basic.test_later"].error_message)
    assert suite.status == "failed" and suite.failed_tests == 1 and suite.skipped_tests == 1
    xml, output = Path(suite.artifacts[0]), Path(suite.artifacts[1])
    assert xml.name == "junit.xml" and b"<testcase" in xml.read_bytes()
    assert "1 failed, 1 passed, 1 skipped" in output.read_text()


def test_the_target_and_test_user_reach_the_child_and_the_password_stays_out(tmp_path):
    password = 'pw&"<' + os.urandom(6).hex()
    digest = hashlib.sha256(password.encode()).hexdigest()
    f = write(
        tmp_path,
        "check_env.py",
        f"""
        import hashlib, os

        def test_target_and_user():
            assert os.environ["SCHOLAR_OPS_TEST_BASE_URL"] == "http://127.0.0.1:9"
            assert os.environ["SCHOLAR_OPS_TEST_PREFIX"] == "optest-"
            assert os.environ["SCHOLAR_OPS_TEST_USERNAME"] == "optest-user"
            password = os.environ["SCHOLAR_OPS_TEST_PASSWORD"].encode()
            assert hashlib.sha256(password).hexdigest() == "{digest}"

        def test_leaks_the_password():
            print("password is", os.environ["SCHOLAR_OPS_TEST_PASSWORD"])
            assert os.environ["SCHOLAR_OPS_TEST_PASSWORD"] == "something else"
        """,
    )
    ctx = ctx_for(
        tmp_path,
        credentials=Credentials("optest-user", SecretStr(password)),
        test_prefix="optest-",
    )
    suite = run(ctx, Settings(paths=[str(f)], probe=False, args=FAST))
    t = {x.test_name: x for x in suite.tests}
    assert t["check_env.test_target_and_user"].status == "passed"
    leak = t["check_env.test_leaks_the_password"]
    assert leak.status == "failed" and "***" in str(leak.error_message)
    assert password not in str(leak.error_message)
    assert suite.artifacts
    for artifact in suite.artifacts:
        data = Path(artifact).read_text()
        assert password not in data and "pw&amp;&quot;&lt;" not in data, artifact
        assert "***" in data, artifact  # the password was there, and was removed


def test_no_tests_collected_is_one_failed_result(tmp_path):
    f = write(tmp_path, "check_empty.py", "X = 1\n")
    suite = run(ctx_for(tmp_path), Settings(paths=[str(f)], probe=False, args=FAST))
    assert [x.status for x in suite.tests] == ["failed"]
    assert suite.tests[0].error_message == f"no tests were collected in {f}"
    assert suite.status == "failed"


def test_a_missing_path_is_a_suite_error_naming_it(tmp_path):
    suite = run(ctx_for(tmp_path), Settings(paths=["no/such/checks.py"], probe=False, args=FAST))
    assert suite.status == "error" and suite.tests == []
    assert "pytest path not found: no/such/checks.py" in str(suite.reason)


def test_a_child_that_outlives_its_time_is_killed_with_what_it_started(tmp_path):
    pidfile = tmp_path / "sleeper.pid"
    f = write(
        tmp_path,
        "check_slow.py",
        f"""
        import subprocess, time

        def test_hangs():
            p = subprocess.Popen(["sleep", "60"])
            open({str(pidfile)!r}, "w").write(str(p.pid))
            time.sleep(60)
        """,
    )
    t0 = time.monotonic()
    suite = run(
        ctx_for(tmp_path), Settings(paths=[str(f)], probe=False, args=FAST, timeout_seconds=4)
    )
    assert time.monotonic() - t0 < 15
    assert suite.status == "timed_out" and "pytest timed out" in str(suite.reason)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the test's child {pid} still runs")


def test_a_target_that_is_down_is_unavailable_before_running_anything(tmp_path):
    f = write(tmp_path, "check_x.py", "def test_x():\n    pass\n")
    ctx = ctx_for(tmp_path, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceUnavailable):
        run(ctx, Settings(paths=[str(f)]))
    assert not (tmp_path / "artifacts" / "pytest" / "junit.xml").exists()


def test_the_example_operator_file_passes_against_the_reference_app(aischolar_clean, tmp_path):
    # copied out of the project's tree, as an operator keeps it (no project conftest)
    ops = tmp_path / "ops"
    ops.mkdir()
    shutil.copy(OPERATOR_TESTS / "check_reference_app.py", ops)
    ctx = ctx_for(
        tmp_path,
        base_url=aischolar_clean.url,
        credentials=Credentials(
            aischolar_clean.test_user, SecretStr(aischolar_clean.test_password)
        ),
    )
    suite = run(ctx, Settings(paths=[str(ops / "check_reference_app.py")]))
    assert suite.status == "passed", [(x.test_name, x.error_message) for x in suite.tests]
    assert suite.total_tests == 4 and suite.passed_tests == 4
